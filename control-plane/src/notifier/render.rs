//! What a notification says: the e-mail subject and text of each kind, and the webhook body.

use serde_json::{json, Value};

use super::outbox::Notification;
use crate::tenants::Tenant;
use crate::validate::CURRENCIES;

/// An e-mail's subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub subject: String,
    pub body: String,
}

/// `1234` minor units of `CNY` as `12.34 CNY`.
pub fn money(minor: i64, currency: &str) -> String {
    let exponent = CURRENCIES
        .iter()
        .find(|(c, _)| *c == currency)
        .map_or(2, |(_, e)| *e);
    if exponent == 0 {
        return format!("{minor} {currency}");
    }
    let scale = 10i64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let scale = scale.unsigned_abs();
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / scale,
        abs % scale,
        width = exponent as usize
    )
}

fn text<'a>(payload: &'a Value, key: &str) -> &'a str {
    payload[key].as_str().unwrap_or("?")
}

fn int(payload: &Value, key: &str) -> i64 {
    payload[key].as_i64().unwrap_or_default()
}

/// The e-mail for `n` (`tenant`: the notification's tenant, when it still exists).
pub fn email(platform: &str, n: &Notification, tenant: Option<&Tenant>) -> Content {
    let p = &n.payload;
    let who = tenant.map_or_else(
        || n.tenant_id.clone().unwrap_or_else(|| "the platform".into()),
        |t| format!("{} ({})", t.name, t.code),
    );
    let (subject, lead) = match n.kind.as_str() {
        "low_balance" => {
            let currency = text(p, "currency");
            (
                format!("[{platform}] Low balance: {who}"),
                format!(
                    "The balance of {who} is {}, below its low-balance threshold of {}.\n\n\
                     Top it up (recharge card or adjustment) to keep its API keys working \
                     without interruption.",
                    money(int(p, "balance_minor"), currency),
                    money(int(p, "threshold_minor"), currency),
                ),
            )
        }
        "overage" => {
            let metric = text(p, "metric");
            let amount = |key: &str| match (metric, tenant) {
                ("spend", Some(t)) => money(int(p, key), &t.currency),
                ("spend", None) => format!("{} (minor units)", int(p, key)),
                _ => format!("{} tokens", int(p, key)),
            };
            (
                format!(
                    "[{platform}] Usage at {}% of the allowance: {who}",
                    int(p, "threshold")
                ),
                format!(
                    "{who} has used {} of its {} allowance in {} ({}% threshold of a {} \
                     overage rule).",
                    amount("usage"),
                    amount("allowance"),
                    text(p, "period"),
                    int(p, "threshold"),
                    text(p, "mode"),
                ),
            )
        }
        super::ALERT_KIND => {
            let state = text(p, "state");
            (
                format!("[{platform}] Alert {state}: {}", text(p, "name")),
                format!(
                    "Alert rule \"{}\" is {state}: {} = {} (threshold {}) at {}.",
                    text(p, "name"),
                    text(p, "metric"),
                    p["value"].as_f64().unwrap_or_default(),
                    p["threshold"].as_f64().unwrap_or_default(),
                    text(p, "at"),
                ),
            )
        }
        other => (
            format!("[{platform}] Notification: {other}"),
            serde_json::to_string_pretty(p).unwrap_or_else(|_| p.to_string()),
        ),
    };
    Content {
        subject,
        body: format!(
            "{lead}\n\n--\nNotification {} ({}), created {}. Sent by {platform}.\n",
            n.id, n.kind, n.created_at
        ),
    }
}

/// The JSON body POSTed to the notification webhook.
pub fn webhook_body(n: &Notification) -> Vec<u8> {
    let body = json!({
        "id": n.id,
        "kind": n.kind,
        "tenant_id": n.tenant_id,
        "created_at": n.created_at,
        "payload": n.payload,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_uses_the_currency_exponent() {
        assert_eq!(money(1234, "CNY"), "12.34 CNY");
        assert_eq!(money(-5, "USD"), "-0.05 USD");
        assert_eq!(money(700, "JPY"), "700 JPY");
    }
}
