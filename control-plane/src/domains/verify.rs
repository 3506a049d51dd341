//! The ownership checks: a DNS TXT lookup or an HTTP token fetch, made when a tenant asks.
//!
//! Both run outside any store transaction (they wait on the network) and answer a short,
//! operator-readable reason on failure; the caller records the outcome on the domain.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::Resolver;
use medgate_config::settings::ApiSettings;

use super::model::{Domain, VerificationMethod, HTTP_PATH};

/// How long one check may take (each DNS attempt, or the whole HTTP exchange).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The HTTP check reads at most this much of the answer.
const MAX_HTTP_BODY: usize = 4096;

/// Checks the domain by its configured method.
pub async fn check(settings: &ApiSettings, domain: &Domain) -> Result<(), String> {
    let v = &domain.verification;
    match v.method {
        VerificationMethod::DnsTxt => {
            dns_txt(settings.dns_resolver, &v.record_name, &v.expected_value).await
        }
        VerificationMethod::Http => {
            http(
                settings.domain_http_check_url.as_deref(),
                &domain.hostname,
                &v.token,
            )
            .await
        }
    }
}

/// Some TXT record at `name` must equal `expected` (a record's strings are joined, as DNS
/// splits long values into 255-byte pieces).
async fn dns_txt(resolver: Option<SocketAddr>, name: &str, expected: &str) -> Result<(), String> {
    let builder = match resolver {
        Some(addr) => Resolver::builder_with_config(
            ResolverConfig::from_parts(
                None,
                vec![],
                NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
            ),
            TokioConnectionProvider::default(),
        ),
        None => Resolver::builder_tokio()
            .map_err(|e| format!("no DNS resolver is configured on this system: {e}"))?,
    };
    let mut options = ResolverOpts::default();
    options.timeout = CHECK_TIMEOUT;
    options.attempts = 2;
    let resolver = builder.with_options(options).build();
    // The trailing dot keeps search domains out of the lookup.
    let lookup = match resolver.txt_lookup(format!("{name}.")).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
            return Err(format!("no TXT record found at {name}"))
        }
        Err(e) => return Err(format!("DNS lookup of {name} failed: {e}")),
    };
    let found: Vec<String> = lookup
        .iter()
        .map(|txt| {
            txt.txt_data()
                .iter()
                .map(|piece| String::from_utf8_lossy(piece))
                .collect::<String>()
        })
        .collect();
    if found.iter().any(|value| value == expected) {
        Ok(())
    } else {
        Err(format!(
            "the TXT records at {name} do not include {expected:?} (found {})",
            found.len()
        ))
    }
}

/// `GET <base>/.well-known/medgate-challenge/<token>` with `Host: <hostname>` must answer 200
/// with the token as its body. Redirects are not followed.
async fn http(base: Option<&str>, hostname: &str, token: &str) -> Result<(), String> {
    let base = base.map_or_else(
        || format!("http://{hostname}"),
        |b| b.trim_end_matches('/').to_owned(),
    );
    let url = format!("{base}{HTTP_PATH}{token}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CHECK_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let mut response = client
        .get(&url)
        .header(reqwest::header::HOST, hostname)
        .send()
        .await
        .map_err(|e| format!("fetching http://{hostname}{HTTP_PATH}{token} failed: {e}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!(
            "http://{hostname}{HTTP_PATH}{token} answered {}, not 200",
            response.status().as_u16()
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_HTTP_BODY {
            break;
        }
    }
    if String::from_utf8_lossy(&body).trim() == token {
        Ok(())
    } else {
        Err(format!(
            "http://{hostname}{HTTP_PATH}{token} did not answer the token"
        ))
    }
}
