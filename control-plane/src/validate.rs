//! Field rules shared by resources. Each returns a 422 naming the field.

use std::net::IpAddr;

use crate::error::{ApiError, ApiResult};

/// Currencies with their minor-unit exponent (ISO 4217), for money in integer minor units.
pub const CURRENCIES: &[(&str, u32)] = &[
    ("CNY", 2),
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("SGD", 2),
    ("AUD", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("JPY", 0),
    ("KRW", 0),
];

pub fn text(field: &str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let len = value.chars().count();
    if value.trim().len() != value.len() {
        return Err(ApiError::invalid(
            field,
            "must not start or end with whitespace",
        ));
    }
    if len < min || len > max {
        return Err(ApiError::invalid(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Lowercase slug: letters, digits and hyphens, starting with a letter or digit.
pub fn slug(field: &str, value: &str) -> ApiResult<()> {
    let ok = (2..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(field, "must be 2-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen"))
    }
}

pub fn email(field: &str, value: &str) -> ApiResult<()> {
    let ok = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(field, "must be an email address"))
    }
}

pub fn currency(field: &str, value: &str) -> ApiResult<()> {
    if CURRENCIES.iter().any(|(c, _)| *c == value) {
        Ok(())
    } else {
        let known: Vec<&str> = CURRENCIES.iter().map(|(c, _)| *c).collect();
        Err(ApiError::invalid(
            field,
            format!("must be one of {}", known.join(", ")),
        ))
    }
}

/// IANA time zone name, e.g. `Asia/Shanghai`.
pub fn timezone(field: &str, value: &str) -> ApiResult<()> {
    value.parse::<chrono_tz::Tz>().map(|_| ()).map_err(|_| {
        ApiError::invalid(
            field,
            "must be an IANA time zone such as Asia/Shanghai or UTC",
        )
    })
}

/// BCP 47 language tag of the simple `ll` or `ll-CC` form, e.g. `zh-CN`.
pub fn locale(field: &str, value: &str) -> ApiResult<()> {
    let mut parts = value.split('-');
    let lang = parts.next().unwrap_or_default();
    let region = parts.next();
    let ok = (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
        && parts.next().is_none();
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be a language tag such as zh-CN or en-US",
        ))
    }
}

/// A browser origin: `http(s)://host[:port]`, no path.
pub fn origin(field: &str, value: &str) -> ApiResult<()> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        !r.is_empty()
            && !r.contains('/')
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{value:?} is not an origin like https://app.example.com"),
        ))
    }
}

/// An IPv4 or IPv6 network in CIDR notation.
pub fn cidr(field: &str, value: &str) -> ApiResult<()> {
    let err = || ApiError::invalid(field, format!("{value:?} is not a CIDR such as 10.0.0.0/8"));
    let (addr, prefix) = value.split_once('/').ok_or_else(err)?;
    let addr: IpAddr = addr.parse().map_err(|_| err())?;
    let prefix: u8 = prefix.parse().map_err(|_| err())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(err());
    }
    Ok(())
}

pub fn positive(field: &str, value: Option<u64>) -> ApiResult<()> {
    match value {
        Some(0) => Err(ApiError::invalid(field, "must be greater than 0")),
        _ => Ok(()),
    }
}

pub fn non_negative_money(field: &str, value: i64) -> ApiResult<()> {
    if value < 0 {
        Err(ApiError::invalid(
            field,
            "must not be negative (amounts are in minor units)",
        ))
    } else {
        Ok(())
    }
}

/// Model identifiers as used in requests: letters, digits and `-._:/`.
pub fn model_name(field: &str, value: &str) -> ApiResult<()> {
    let ok = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{value:?} is not a model name"),
        ))
    }
}

/// An upstream base URL: `http(s)://host[:port][/path]`, without credentials, query or
/// fragment (the URL is shown by the API; credentials belong in write-only fields).
pub fn http_url(field: &str, value: &str) -> ApiResult<()> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Err(ApiError::invalid(
            field,
            "must start with http:// or https://",
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let authority_ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    let rest_ok = value.len() <= 2048
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@'));
    if authority_ok && rest_ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be a base URL like https://api.example.com/v1 (no credentials, query or fragment)",
        ))
    }
}

/// A lowercase DNS host name (no port, no trailing dot): labels of `a-z0-9-`, 1 to 63 bytes,
/// not starting or ending with a hyphen, 253 bytes at most. `min_labels` 2 asks for a fully
/// qualified name (custom domains); IP addresses are refused either way.
pub fn hostname(field: &str, value: &str, min_labels: usize) -> ApiResult<()> {
    let labels: Vec<&str> = value.split('.').collect();
    let ok = (1..=253).contains(&value.len())
        && labels.len() >= min_labels
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && value.parse::<IpAddr>().is_err()
        && !labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{value:?} is not a lowercase host name such as api.clinic.example"),
        ))
    }
}

/// A plain identifier from another component (request ids, key ids): 1 to `max` letters,
/// digits and `-_.:`, safe to store, log and filter on.
pub fn plain_id(field: &str, value: &str, max: usize) -> ApiResult<()> {
    let ok = (1..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be 1 to {max} letters, digits or -_.:"),
        ))
    }
}

/// A CA bundle (PEM) trusted for an upstream URL instead of the system roots: certificates
/// only, usable as trust anchors, and only for an `https://` URL.
pub fn upstream_ca(field: &str, url: &str, pem: &str) -> ApiResult<()> {
    if !url.starts_with("https://") {
        return Err(ApiError::invalid(
            field,
            "applies to https:// URLs only; remove it or use https://",
        ));
    }
    medgate_config::tls::parse_ca_bundle(pem)
        .map(|_| ())
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_accept_good_and_refuse_bad_values() {
        assert!(slug("code", "city-clinic-1").is_ok());
        assert!(slug("code", "City").is_err());
        assert!(slug("code", "-x").is_err());
        assert!(email("e", "a@b.cn").is_ok());
        assert!(email("e", "nope").is_err());
        assert!(timezone("tz", "Asia/Shanghai").is_ok());
        assert!(timezone("tz", "Mars/Base").is_err());
        assert!(locale("l", "zh-CN").is_ok());
        assert!(locale("l", "zh_cn").is_err());
        assert!(origin("o", "https://app.example.com:8443").is_ok());
        assert!(origin("o", "https://app.example.com/path").is_err());
        assert!(cidr("c", "10.0.0.0/8").is_ok());
        assert!(cidr("c", "::1/129").is_err());
        assert!(currency("c", "CNY").is_ok());
        assert!(currency("c", "XXX").is_err());
        assert!(text("n", " padded", 1, 10).is_err());
        assert!(text("n", "", 1, 10).is_err());
        assert!(http_url("u", "https://api.example.com/v1").is_ok());
        assert!(http_url("u", "http://127.0.0.1:8080").is_ok());
        assert!(http_url("u", "ftp://x").is_err());
        assert!(http_url("u", "https://").is_err());
        assert!(http_url("u", "https://user:pw@host/v1").is_err());
        assert!(http_url("u", "https://host/v1?key=abc").is_err());
        assert!(hostname("h", "api.clinic.example", 2).is_ok());
        assert!(hostname("h", "localhost", 1).is_ok());
        assert!(hostname("h", "localhost", 2).is_err());
        assert!(hostname("h", "API.example.com", 2).is_err());
        assert!(hostname("h", "10.0.0.1", 1).is_err());
        assert!(hostname("h", "a..b", 1).is_err());
        assert!(hostname("h", "-a.b", 1).is_err());
        assert!(plain_id("r", "req-01.a:b_c", 64).is_ok());
        assert!(plain_id("r", "", 64).is_err());
        assert!(plain_id("r", "a b", 64).is_err());
    }
}
