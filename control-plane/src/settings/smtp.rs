//! SMTP settings (API §9 `GET`/`PUT /api/settings/smtp`) and the test send
//! (`POST /api/settings/smtp/test`).
//!
//! The notifier sends every e-mail of the product with these settings. `password` is
//! write-only: a `PUT` with it stores it sealed with the server secret
//! ([`crate::notifier::sealed`]), a `PUT` without it keeps the stored one, `null` clears it;
//! reads show only `password_set`. SMTP is off while `host` is null.
//!
//! The test send uses the stored settings, synchronously: 200 when the server accepted the
//! message, 409 when SMTP is not configured, 502 (`smtp_failed`, with the server's answer)
//! when the server could not be reached or refused it.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::general::{bounded, FieldErrors};
use super::store;
use crate::api::extract::{present, ApiJson};
use crate::api::{request_id, ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorEnvelope};
use crate::notifier::email::{self, Mail, MailError};
use crate::notifier::sealed::SealKey;
use crate::state::AppState;
use crate::store::Store;
use crate::validate;

/// The row name of this section in `system_settings`.
pub const SECTION: &str = "smtp";
/// Bounds of `timeout_secs`.
pub const TIMEOUT_SECS: (u32, u32) = (1, 120);

/// How the connection to the SMTP server is protected.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain SMTP (only for a relay on the same host or network; credentials are refused
    /// unless the host is a loopback address).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// The SMTP settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpSettings {
    pub host: Option<String>,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    /// Sealed ([`SealKey::seal`]); never shown.
    pub password: Option<String>,
    pub from: Option<String>,
    pub timeout_secs: u32,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            tls: TlsMode::Starttls,
            username: None,
            password: None,
            from: None,
            timeout_secs: 10,
        }
    }
}

impl SmtpSettings {
    /// Whether e-mail can be sent (a host and a sender are set).
    pub fn configured(&self) -> bool {
        self.host.is_some() && self.from.is_some()
    }
}

/// What `GET`/`PUT /api/settings/smtp` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SmtpSettingsView {
    /// Host name or IP address of the SMTP server; null: e-mail is off.
    pub host: Option<String>,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    /// Whether a password is stored (the password itself is write-only).
    pub password_set: bool,
    /// The sender, `noreply@example.com` or `Medgate <noreply@example.com>`.
    pub from: Option<String>,
    /// Longest wait for the server, per command (1 to 120 s).
    pub timeout_secs: u32,
    /// Whether e-mail can be sent (host and sender set).
    pub configured: bool,
}

impl From<&SmtpSettings> for SmtpSettingsView {
    fn from(s: &SmtpSettings) -> Self {
        Self {
            host: s.host.clone(),
            port: s.port,
            tls: s.tls,
            username: s.username.clone(),
            password_set: s.password.is_some(),
            from: s.from.clone(),
            timeout_secs: s.timeout_secs,
            configured: s.configured(),
        }
    }
}

/// Body of `PUT /api/settings/smtp`: omitted fields keep their value, `null` clears an
/// optional one.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettingsUpdate {
    /// Host name or IP address; `null` turns e-mail off.
    #[serde(default, deserialize_with = "present")]
    pub host: Option<Option<String>>,
    /// 1 to 65535 (587 for STARTTLS, 465 for TLS, 25 for a local relay).
    pub port: Option<i64>,
    pub tls: Option<TlsMode>,
    /// Up to 256 characters; set together with `password`.
    #[serde(default, deserialize_with = "present")]
    pub username: Option<Option<String>>,
    /// Write-only, up to 1024 characters: omitted keeps the stored one, `null` clears it.
    #[serde(default, deserialize_with = "present")]
    pub password: Option<Option<String>>,
    /// The sender mailbox; required while a host is set.
    #[serde(default, deserialize_with = "present")]
    pub from: Option<Option<String>>,
    /// 1 to 120.
    pub timeout_secs: Option<i64>,
}

/// Body of `POST /api/settings/smtp/test`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpTestInput {
    /// Where to send the test message.
    pub to: String,
}

/// What a successful test send answers.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SmtpTestResult {
    pub sent: bool,
    pub to: String,
    /// `host:port` of the server that accepted the message.
    pub server: String,
    /// The server's final answer, e.g. `250 OK`.
    pub response: String,
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl SmtpSettingsUpdate {
    /// Applies the update to `s`, checking every field; nothing is applied when one is wrong.
    pub fn apply_to(
        self,
        s: &mut SmtpSettings,
        settings: &medgate_config::Settings,
    ) -> ApiResult<()> {
        let mut errors = FieldErrors::default();
        let mut next = s.clone();
        if let Some(host) = self.host {
            next.host = host.map(|h| h.to_ascii_lowercase());
            if let Some(h) = &next.host {
                if h.parse::<IpAddr>().is_err() {
                    errors.check(validate::hostname("host", h, 1));
                }
            }
        }
        if let Some(port) = self.port {
            if let Some(p) = bounded(&mut errors, "port", port, (1, 65535)) {
                next.port = u16::try_from(p).unwrap_or(587);
            }
        }
        if let Some(tls) = self.tls {
            next.tls = tls;
        }
        if let Some(username) = self.username {
            if let Some(u) = &username {
                errors.check(validate::text("username", u, 1, 256));
            }
            next.username = username;
        }
        if let Some(t) = self.timeout_secs {
            if let Some(t) = bounded(&mut errors, "timeout_secs", t, TIMEOUT_SECS) {
                next.timeout_secs = t;
            }
        }
        if let Some(from) = self.from {
            if let Some(f) = &from {
                if let Err(why) = email::check_mailbox(f) {
                    errors.push("from", why);
                }
            }
            next.from = from;
        }
        let mut new_password = None;
        match self.password {
            None => {}
            Some(None) => next.password = None,
            Some(Some(p)) => {
                if p.is_empty() || p.chars().count() > 1024 || p.chars().any(char::is_control) {
                    errors.push(
                        "password",
                        "must be 1 to 1024 characters without control characters",
                    );
                } else {
                    new_password = Some(p);
                }
            }
        }
        if next.host.is_some() && next.from.is_none() {
            errors.push(
                "from",
                "is required while a host is set (the sender of every e-mail)",
            );
        }
        let has_password = next.password.is_some() || new_password.is_some();
        if next.username.is_some() != has_password {
            errors.push(
                if next.username.is_some() {
                    "password"
                } else {
                    "username"
                },
                "username and password go together (both set, or both null)",
            );
        }
        if next.tls == TlsMode::None
            && next.username.is_some()
            && next.host.as_deref().is_some_and(|h| !is_loopback(h))
        {
            errors.push(
                "tls",
                "credentials would cross the network in clear text: use starttls or tls",
            );
        }
        errors.finish()?;
        if let Some(p) = new_password {
            next.password = Some(SealKey::from_settings(settings, "the SMTP password")?.seal(&p));
        }
        *s = next;
        Ok(())
    }
}

/// The SMTP settings in force.
pub async fn load(store: &Store) -> ApiResult<SmtpSettings> {
    store::current(store).await
}

impl store::Section for SmtpSettings {
    const NAME: &'static str = SECTION;
    type Update = SmtpSettingsUpdate;

    fn apply(
        &mut self,
        update: SmtpSettingsUpdate,
        process: &medgate_config::Settings,
    ) -> ApiResult<()> {
        update.apply_to(self, process)
    }
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/settings/smtp",
            "settings.get_smtp",
            "Get the SMTP settings (the password is never returned)",
        )
        .access(Access::PlatformRead)
        .resource("smtp_settings")
        .response::<SmtpSettingsView>(),
        get_smtp,
    )
    .add(
        Endpoint::put(
            "/api/settings/smtp",
            "settings.update_smtp",
            "Update the SMTP settings (omitted fields keep their value; the password is \
             write-only)",
        )
        .access(Access::PlatformAdmin)
        .resource("smtp_settings")
        .request::<SmtpSettingsUpdate>()
        .response::<SmtpSettingsView>(),
        put_smtp,
    )
    .add(
        Endpoint::post(
            "/api/settings/smtp/test",
            "settings.test_smtp",
            "Send a test e-mail with the stored SMTP settings (502 with the server's answer \
             when it fails)",
        )
        .access(Access::PlatformAdmin)
        .resource("smtp_settings")
        .error(
            502,
            "The SMTP server refused the message or could not be reached",
        )
        .request::<SmtpTestInput>()
        .response::<SmtpTestResult>(),
        test_smtp,
    )
}

async fn get_smtp(State(state): State<AppState>) -> ApiResult<Json<SmtpSettingsView>> {
    Ok(Json(SmtpSettingsView::from(&load(state.store()).await?)))
}

async fn put_smtp(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(input): ApiJson<SmtpSettingsUpdate>,
) -> ApiResult<Response> {
    let password_changed = input.password.is_some();
    let saved: SmtpSettings = store::update(&state, input, &principal.subject).await?;
    Ok(store::updated(
        SECTION,
        SmtpSettingsView::from(&saved),
        "password_changed",
        password_changed,
    ))
}

async fn test_smtp(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(input): ApiJson<SmtpTestInput>,
) -> ApiResult<Response> {
    validate::email("to", &input.to)?;
    let smtp = load(state.store()).await?;
    let Some(host) = smtp.host.clone().filter(|_| smtp.configured()) else {
        return Err(ApiError::conflict(
            "smtp_not_configured",
            "SMTP is not configured: PUT /api/settings/smtp with a host and a sender first",
        ));
    };
    let general = super::general::load(state.store()).await?;
    let mail = Mail {
        to: input.to.clone(),
        subject: format!("[{}] SMTP test", general.platform_name),
        body: format!(
            "This is a test message from {}, sent by {} at {}.\n\nIf you can read it, the \
             platform's SMTP settings work: low-balance, overage and alert notifications \
             will reach their recipients.\n",
            general.platform_name,
            principal.subject,
            crate::store::now()
        ),
    };
    let server = format!("{host}:{}", smtp.port);
    let target = AuditTarget::new(SECTION, None);
    match email::send(state.settings(), &smtp, &mail).await {
        Ok(response) => Ok(target
            .with_details(json!({ "test_to": input.to, "sent": true }))
            .attach(Json(SmtpTestResult {
                sent: true,
                to: input.to,
                server,
                response,
            }))),
        Err(MailError::NotConfigured) => Err(ApiError::conflict(
            "smtp_not_configured",
            "SMTP is not configured: PUT /api/settings/smtp with a host and a sender first",
        )),
        Err(err) => {
            let details = json!({
                "server": server,
                "tls": smtp.tls,
                "permanent": err.is_permanent(),
                "error": err.to_string(),
            });
            let body = ErrorEnvelope {
                error: ErrorBody {
                    code: "smtp_failed".into(),
                    message: format!("the test message to {} was not sent: {err}", input.to),
                    details: details.clone(),
                    request_id: request_id::current(),
                },
            };
            let response = (StatusCode::BAD_GATEWAY, Json(body)).into_response();
            Ok(target
                .with_details(json!({ "test_to": input.to, "sent": false, "error": details }))
                .attach(response))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> medgate_config::Settings {
        let mut s = medgate_config::Settings::default();
        s.auth.hmac_secret = Some("h".repeat(32));
        s
    }

    fn apply(s: &mut SmtpSettings, body: serde_json::Value) -> ApiResult<()> {
        let input: SmtpSettingsUpdate = serde_json::from_value(body).expect("parses");
        input.apply_to(s, &settings())
    }

    #[test]
    fn passwords_are_sealed_kept_and_cleared() {
        let mut s = SmtpSettings::default();
        apply(
            &mut s,
            json!({ "host": "SMTP.Example.com", "from": "Medgate <noreply@example.com>",
                    "username": "mailer", "password": "hunter2-secret" }),
        )
        .expect("valid");
        assert_eq!(s.host.as_deref(), Some("smtp.example.com"));
        let sealed = s.password.clone().expect("sealed");
        assert!(!sealed.contains("hunter2"));
        let key = SealKey::from_settings(&settings(), "x").expect("key");
        assert_eq!(key.unseal(&sealed).as_deref(), Some("hunter2-secret"));
        apply(&mut s, json!({ "port": 2525 })).expect("valid");
        assert_eq!(s.password.as_deref(), Some(sealed.as_str()), "kept");
        apply(&mut s, json!({ "username": null, "password": null })).expect("valid");
        assert_eq!(s.password, None);
    }

    #[test]
    fn invalid_fields_are_refused_together() {
        let mut s = SmtpSettings::default();
        let err = apply(
            &mut s,
            json!({ "host": "smtp.example.com", "port": 0, "timeout_secs": 1000,
                    "username": "u", "tls": "none" }),
        )
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
        assert_eq!(fields, ["port", "timeout_secs", "from", "password", "tls"]);
        assert_eq!(s, SmtpSettings::default());
        // Credentials over plain SMTP are fine on the same host.
        apply(
            &mut s,
            json!({ "host": "127.0.0.1", "port": 2525, "tls": "none", "from": "a@b.example",
                    "username": "u", "password": "p" }),
        )
        .expect("loopback");
    }
}
