//! General system settings (API §9 `GET`/`PUT /api/settings`): platform name, defaults,
//! retention periods, access-log sampling and the platform's notification recipients.
//!
//! `PUT` takes any subset of the fields (omitted ones keep their value, `null` clears an
//! optional one), refuses unknown fields, checks every field and answers one 422 listing
//! every invalid field (`details.errors`). Platform admins write; platform admins and
//! auditors read. `notification_webhook_secret` is write-only: it is stored sealed with the
//! server secret ([`crate::notifier::sealed`]) and shown only as
//! `notification_webhook_secret_set`.
//!
//! Retention is enforced by [`retention::purge_expired`] (every hour, once cluster-wide, see
//! [`retention::spawn_purger`]); log sampling applies when proxies ship access logs
//! ([`keep_access_log`]).

pub mod retention;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::store;
use crate::api::extract::{present, ApiJson};
use crate::api::{ApiBuilder, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::notifier::{sealed::SealKey, webhook};
use crate::state::AppState;
use crate::store::Store;
use crate::validate;

pub use retention::{purge_expired, purge_expired_at, spawn_purger, PurgeReport, PURGE_INTERVAL};

/// The row name of this section in `system_settings`.
pub const SECTION: &str = "general";
/// Bounds of `access_log_retention_days`.
pub const ACCESS_LOG_RETENTION_DAYS: (u32, u32) = (1, 3650);
/// Bounds of `usage_retention_days`. The lower bound is the longest billing period an invoice
/// may cover (`billing::invoices::period::MAX_PERIOD_DAYS`), so raw usage outlives any period
/// it can be invoiced in; the purge never deletes unbilled rows anyway.
pub const USAGE_RETENTION_DAYS: (u32, u32) = (400, 3650);
/// Most platform notification recipients.
pub const MAX_NOTIFICATION_EMAILS: usize = 20;

/// The general settings as stored. Fields missing from an older stored document take their
/// defaults, so adding a field never makes a stored section unreadable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeneralSettings {
    pub platform_name: String,
    pub default_currency: String,
    pub default_timezone: String,
    pub access_log_retention_days: u32,
    pub usage_retention_days: u32,
    pub log_sampling: f64,
    pub notification_emails: Vec<String>,
    pub notification_webhook_url: Option<String>,
    /// Sealed ([`SealKey::seal`]); never shown.
    pub notification_webhook_secret: Option<String>,
}

impl Default for GeneralSettings {
    fn default() -> Self {
        Self {
            platform_name: "medgate".into(),
            default_currency: "CNY".into(),
            default_timezone: "Asia/Shanghai".into(),
            access_log_retention_days: 90,
            usage_retention_days: 1825,
            log_sampling: 1.0,
            notification_emails: Vec::new(),
            notification_webhook_url: None,
            notification_webhook_secret: None,
        }
    }
}

/// What `GET`/`PUT /api/settings` answer.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct GeneralSettingsView {
    /// Shown in notification subjects and e-mails, e.g. `[medgate] Low balance`.
    pub platform_name: String,
    /// ISO 4217 code (one of the currencies money is kept in, e.g. `CNY`).
    pub default_currency: String,
    /// IANA time zone, e.g. `Asia/Shanghai`.
    pub default_timezone: String,
    /// Days access logs are kept (1 to 3650). A tenant's own, shorter
    /// `access_log_retention_days` (tenant config) applies to its rows.
    pub access_log_retention_days: u32,
    /// Days raw usage rows are kept (400 to 3650). Only rows billed by a paid, void or
    /// uncollectible invoice and carrying no balance debit are ever deleted.
    pub usage_retention_days: u32,
    /// Fraction (0.0 to 1.0) of successful (status < 400) requests whose access log is kept;
    /// errors are always kept. The choice is a hash of the request id, so a re-sent batch
    /// keeps the same entries.
    pub log_sampling: f64,
    /// Platform operators copied on every product notification (low balance, overage).
    pub notification_emails: Vec<String>,
    /// Receives every product notification as a signed JSON POST.
    pub notification_webhook_url: Option<String>,
    /// Whether the webhook's signing secret is set (the secret itself is write-only).
    pub notification_webhook_secret_set: bool,
}

impl From<&GeneralSettings> for GeneralSettingsView {
    fn from(s: &GeneralSettings) -> Self {
        Self {
            platform_name: s.platform_name.clone(),
            default_currency: s.default_currency.clone(),
            default_timezone: s.default_timezone.clone(),
            access_log_retention_days: s.access_log_retention_days,
            usage_retention_days: s.usage_retention_days,
            log_sampling: s.log_sampling,
            notification_emails: s.notification_emails.clone(),
            notification_webhook_url: s.notification_webhook_url.clone(),
            notification_webhook_secret_set: s.notification_webhook_secret.is_some(),
        }
    }
}

/// Body of `PUT /api/settings`: omitted fields keep their value, `null` clears an optional
/// one.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneralSettingsUpdate {
    /// 1 to 100 characters.
    pub platform_name: Option<String>,
    pub default_currency: Option<String>,
    pub default_timezone: Option<String>,
    /// 1 to 3650.
    pub access_log_retention_days: Option<i64>,
    /// 400 to 3650.
    pub usage_retention_days: Option<i64>,
    /// 0.0 to 1.0.
    pub log_sampling: Option<f64>,
    /// Up to 20 addresses (replaces the list).
    pub notification_emails: Option<Vec<String>>,
    /// `http(s)://` URL; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    pub notification_webhook_url: Option<Option<String>>,
    /// 16 to 256 characters, the HMAC-SHA256 key of `X-Medgate-Signature`; required with a
    /// webhook URL. Write-only: omitted keeps the stored one, `null` removes it.
    #[serde(default, deserialize_with = "present")]
    pub notification_webhook_secret: Option<Option<String>>,
}

/// Field errors of one request, reported together.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub(crate) fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    /// Records the error of a `validate::*` check, if any.
    pub(crate) fn check(&mut self, result: ApiResult<()>) {
        if let Err(e) = result {
            match e {
                ApiError::Unprocessable {
                    details, message, ..
                } => {
                    let field = details["field"].as_str().unwrap_or_default().to_owned();
                    let msg = details["message"].as_str().map_or(message, str::to_owned);
                    self.0.push((field, msg));
                }
                other => self.0.push((String::new(), other.to_string())),
            }
        }
    }

    /// Ok when there was no error; else one 422 naming every field (`details.field` and
    /// `details.message` are the first, `details.errors` all of them).
    pub(crate) fn finish(self) -> ApiResult<()> {
        let Some((field, message)) = self.0.first().cloned() else {
            return Ok(());
        };
        let errors: Vec<Value> = self
            .0
            .iter()
            .map(|(f, m)| json!({ "field": f, "message": m }))
            .collect();
        let summary: Vec<String> = self.0.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        Err(ApiError::Unprocessable {
            code: "validation_failed",
            message: summary.join("; "),
            details: json!({ "field": field, "message": message, "errors": errors }),
        })
    }
}

/// Checks `value` against `lo..=hi` and converts it.
pub(crate) fn bounded(
    errors: &mut FieldErrors,
    field: &str,
    value: i64,
    (lo, hi): (u32, u32),
) -> Option<u32> {
    match u32::try_from(value) {
        Ok(v) if (lo..=hi).contains(&v) => Some(v),
        _ => {
            errors.push(field, format!("must be between {lo} and {hi}"));
            None
        }
    }
}

impl GeneralSettingsUpdate {
    /// Applies the update to `s`, checking every field; nothing is applied when one is wrong.
    pub fn apply_to(
        self,
        s: &mut GeneralSettings,
        settings: &medgate_config::Settings,
    ) -> ApiResult<()> {
        let mut errors = FieldErrors::default();
        let mut next = s.clone();
        if let Some(v) = self.platform_name {
            errors.check(validate::text("platform_name", &v, 1, 100));
            next.platform_name = v;
        }
        if let Some(v) = self.default_currency {
            errors.check(validate::currency("default_currency", &v));
            next.default_currency = v;
        }
        if let Some(v) = self.default_timezone {
            errors.check(validate::timezone("default_timezone", &v));
            next.default_timezone = v;
        }
        if let Some(v) = self.access_log_retention_days {
            let field = "access_log_retention_days";
            if let Some(v) = bounded(&mut errors, field, v, ACCESS_LOG_RETENTION_DAYS) {
                next.access_log_retention_days = v;
            }
        }
        if let Some(v) = self.usage_retention_days {
            let field = "usage_retention_days";
            if let Some(v) = bounded(&mut errors, field, v, USAGE_RETENTION_DAYS) {
                next.usage_retention_days = v;
            }
        }
        if let Some(v) = self.log_sampling {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                next.log_sampling = v;
            } else {
                errors.push("log_sampling", "must be a fraction between 0.0 and 1.0");
            }
        }
        if let Some(list) = self.notification_emails {
            check_emails(&mut errors, "notification_emails", &list);
            next.notification_emails = list;
        }
        if let Some(url) = self.notification_webhook_url {
            if let Some(u) = &url {
                if let Err(why) = webhook::check_url(u) {
                    errors.push("notification_webhook_url", why);
                }
            }
            next.notification_webhook_url = url;
        }
        match self.notification_webhook_secret {
            None => {}
            Some(None) => next.notification_webhook_secret = None,
            Some(Some(secret)) => {
                errors.check(validate::text(
                    "notification_webhook_secret",
                    &secret,
                    16,
                    256,
                ));
                if errors.0.is_empty() {
                    let key = SealKey::from_settings(settings, "notification_webhook_secret")?;
                    next.notification_webhook_secret = Some(key.seal(&secret));
                }
            }
        }
        if next.notification_webhook_url.is_some() && next.notification_webhook_secret.is_none() {
            errors.push(
                "notification_webhook_secret",
                "is required with a notification_webhook_url (deliveries are signed with it)",
            );
        }
        errors.finish()?;
        *s = next;
        Ok(())
    }
}

/// Up to [`MAX_NOTIFICATION_EMAILS`] distinct addresses.
pub(crate) fn check_emails(errors: &mut FieldErrors, field: &str, list: &[String]) {
    if list.len() > MAX_NOTIFICATION_EMAILS {
        errors.push(
            field,
            format!("at most {MAX_NOTIFICATION_EMAILS} addresses"),
        );
        return;
    }
    for (i, e) in list.iter().enumerate() {
        let name = format!("{field}[{i}]");
        errors.check(validate::email(&name, e));
        if list[..i].iter().any(|p| p.eq_ignore_ascii_case(e)) {
            errors.push(&name, "appears twice");
        }
    }
}

/// The general settings in force.
pub async fn load(store: &Store) -> ApiResult<GeneralSettings> {
    store::current(store).await
}

impl store::Section for GeneralSettings {
    const NAME: &'static str = SECTION;
    type Update = GeneralSettingsUpdate;

    fn apply(
        &mut self,
        update: GeneralSettingsUpdate,
        process: &medgate_config::Settings,
    ) -> ApiResult<()> {
        update.apply_to(self, process)
    }
}

/// Whether the access log of a request is kept under `sampling` (see
/// [`GeneralSettingsView::log_sampling`]): always for errors (status 400 and up), else for a
/// `sampling` fraction of request ids, chosen by a hash so the choice is stable.
pub fn keep_access_log(request_id: &str, status: u16, sampling: f64) -> bool {
    if status >= 400 || sampling >= 1.0 {
        return true;
    }
    if sampling <= 0.0 || sampling.is_nan() {
        return false;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(request_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The top 53 bits as a uniform fraction in [0, 1).
    let fraction = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
    fraction < sampling
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/settings",
            "settings.get",
            "Get the system settings (platform name, defaults, retention, log sampling, \
             notification recipients)",
        )
        .access(Access::PlatformRead)
        .resource("system_settings")
        .response::<GeneralSettingsView>(),
        get_settings,
    )
    .add(
        Endpoint::put(
            "/api/settings",
            "settings.update",
            "Update the system settings (omitted fields keep their value; every invalid \
             field is reported)",
        )
        .access(Access::PlatformAdmin)
        .resource("system_settings")
        .request::<GeneralSettingsUpdate>()
        .response::<GeneralSettingsView>(),
        put_settings,
    )
}

async fn get_settings(State(state): State<AppState>) -> ApiResult<Json<GeneralSettingsView>> {
    Ok(Json(GeneralSettingsView::from(&load(state.store()).await?)))
}

async fn put_settings(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(input): ApiJson<GeneralSettingsUpdate>,
) -> ApiResult<Response> {
    let secret_changed = input.notification_webhook_secret.is_some();
    let saved: GeneralSettings = store::update(&state, input, &principal.subject).await?;
    Ok(store::updated(
        SECTION,
        GeneralSettingsView::from(&saved),
        "notification_webhook_secret_changed",
        secret_changed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_errors_and_a_stable_fraction() {
        assert!(keep_access_log("r1", 500, 0.0));
        assert!(keep_access_log("r1", 404, 0.0));
        assert!(!keep_access_log("r1", 200, 0.0));
        assert!(keep_access_log("r1", 200, 1.0));
        let kept = (0..10_000)
            .filter(|i| keep_access_log(&format!("req-{i}"), 200, 0.25))
            .count();
        assert!((2_200..=2_800).contains(&kept), "{kept}");
        for i in 0..100 {
            let id = format!("req-{i}");
            assert_eq!(
                keep_access_log(&id, 200, 0.5),
                keep_access_log(&id, 200, 0.5)
            );
        }
    }

    #[test]
    fn updates_report_every_invalid_field() {
        let mut s = GeneralSettings::default();
        let input: GeneralSettingsUpdate = serde_json::from_value(json!({
            "default_currency": "usd",
            "default_timezone": "Mars/Base",
            "access_log_retention_days": 0,
            "usage_retention_days": 30,
            "log_sampling": 1.5,
            "notification_emails": ["ops@example.com", "OPS@example.com", "nope"],
        }))
        .expect("parses");
        let err = input
            .apply_to(&mut s, &medgate_config::Settings::default())
            .expect_err("invalid");
        let ApiError::Unprocessable { details, .. } = err else {
            panic!("422 expected");
        };
        let fields: Vec<&str> = details["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("field"))
            .collect();
        assert_eq!(
            fields,
            [
                "default_currency",
                "default_timezone",
                "access_log_retention_days",
                "usage_retention_days",
                "log_sampling",
                "notification_emails[1]",
                "notification_emails[2]",
            ]
        );
        assert_eq!(s, GeneralSettings::default(), "nothing applied");
    }
}
