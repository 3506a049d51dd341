//! Process settings: one YAML file, then `MEDGATE_*` environment variables on top.
//!
//! Precedence (lowest to highest): built-in defaults, the YAML file, the environment, and
//! finally explicit command-line flags (applied by the binary).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Everything a medgate process needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Directory for the embedded database, the demo credentials and generated secrets.
    pub data_dir: PathBuf,
    /// `sqlite://path` or `postgres://...`. Empty means `sqlite://<data_dir>/medgate.db`.
    pub database_url: String,
    /// `redis://host:port` for cluster-wide counters; optional on a single node.
    pub redis_url: Option<String>,
    pub api: ApiSettings,
    pub proxy: ProxySettings,
    pub auth: AuthSettings,
}

/// The management API listener and its request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Base URL under which operators reach the API (used in printed hints and links).
    pub public_url: Option<String>,
    /// DNS server (UDP) asked for domain verification TXT records; absent: the system's
    /// resolvers. Tests point it at a responder on 127.0.0.1.
    pub dns_resolver: Option<SocketAddr>,
    /// Where the HTTP domain check connects instead of `http://<hostname>`, e.g.
    /// `http://127.0.0.1:8089` (tests, or checks through an internal egress proxy). The
    /// `Host` header still names the domain.
    pub domain_http_check_url: Option<String>,
    /// Peers whose `X-Forwarded-For` is believed (IP addresses or CIDRs), besides loopback:
    /// the proxies and load balancers in front of the API. The client's address (audit
    /// entries, recharge attempt limits) is the right-most forwarded address that is not one
    /// of them.
    pub trusted_proxies: Vec<String>,
}

/// The data plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySettings {
    pub listen: SocketAddr,
    /// Worker threads of the proxy (Pingora service threads).
    pub threads: usize,
    /// Seconds in-flight requests get to finish when the proxy stops.
    pub grace_period_secs: u64,
    /// Longest a cluster-mode rate-limit call to Redis may take before the rule's
    /// `on_store_error` applies, milliseconds.
    pub redis_timeout_ms: u64,
    /// Control plane of a standalone `medgate proxy`, e.g. `http://10.0.0.5:8081`; several
    /// control planes of one cluster comma-separated (used in turn when one fails).
    pub control_plane_url: Option<String>,
    /// Token with role `node` for the control plane (minted from the HS256 secret if absent).
    pub node_token: Option<String>,
    /// The HTTPS listener; none unless `tls.listen` is set.
    pub tls: ProxyTlsSettings,
    /// Rotation of the usage and access-log spools in static mode.
    pub spool: SpoolSettings,
}

/// In static mode (no control plane) the proxy's usage events and access-log entries end up
/// in its spool files (`usage-spool.jsonl`, `access-log-spool.jsonl` in the data directory),
/// which are rotated by size. With a control plane the spools only hold what awaits delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSettings {
    /// A spool file is rotated (renamed `<name>.<UTC time>.jsonl`) once it reaches this size,
    /// 1 to 65536 MiB.
    pub max_file_mb: u64,
    /// Rotated files kept per spool, the newest; older ones are deleted. 0 keeps them all
    /// (ship them elsewhere before the disk fills).
    pub keep_files: usize,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        Self {
            max_file_mb: 64,
            keep_files: 10,
        }
    }
}

/// The proxy's HTTPS listener. Custom domains' certificates come with the snapshot and are
/// chosen by SNI; these files are the default certificate, served for every other name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyTlsSettings {
    /// e.g. `0.0.0.0:8443`; absent: no HTTPS listener.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain of the default certificate, the leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the default certificate.
    pub key_file: Option<PathBuf>,
}

/// The default certificate of the HTTPS listener, read from its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListenerMaterial {
    pub listen: SocketAddr,
    pub chain_pem: String,
    pub key_pem: String,
}

impl ProxyTlsSettings {
    /// Checks the combination without touching the disk.
    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |m: &str| Err(SettingsError::Invalid(m.into()));
        match (&self.listen, &self.cert_file, &self.key_file) {
            (None, None, None) | (Some(_), Some(_), Some(_)) => Ok(()),
            (_, Some(_), None) | (_, None, Some(_)) => {
                invalid("proxy.tls.cert_file and proxy.tls.key_file must be set together")
            }
            (Some(_), None, None) => invalid(
                "proxy.tls.listen needs the default certificate: set proxy.tls.cert_file and proxy.tls.key_file",
            ),
            (None, Some(_), Some(_)) => {
                invalid("proxy.tls.cert_file is set but proxy.tls.listen is not")
            }
        }
    }

    /// Reads and checks the default certificate (readable files, PEM, key matching the
    /// certificate). None when no HTTPS listener is configured.
    pub fn load(&self) -> Result<Option<TlsListenerMaterial>, SettingsError> {
        self.validate()?;
        let (Some(listen), Some(cert_file), Some(key_file)) =
            (self.listen, &self.cert_file, &self.key_file)
        else {
            return Ok(None);
        };
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                path: path.clone(),
                source,
            })
        };
        let chain_pem = read(cert_file)?;
        let key_pem = read(key_file)?;
        crate::tls::ServerCertificate::from_pem(&chain_pem, &key_pem).map_err(|e| {
            SettingsError::Invalid(format!(
                "proxy.tls ({} and {}): {e}",
                cert_file.display(),
                key_file.display()
            ))
        })?;
        Ok(Some(TlsListenerMaterial {
            listen,
            chain_pem,
            key_pem,
        }))
    }
}

/// How management tokens are signed and verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `HS256` (shared secret, the default), `RS256` or `ES256` (public key verification).
    pub jwt_algorithm: String,
    /// Shared secret for HS256. Prefer `MEDGATE_JWT_SECRET` over putting it in a file.
    pub jwt_secret: Option<String>,
    /// PEM public key for RS256/ES256 verification.
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM private key for RS256/ES256, needed only by `medgate token issue`.
    pub jwt_private_key_file: Option<PathBuf>,
    /// Expected `iss` claim; tokens with another issuer are refused.
    pub jwt_issuer: String,
    /// Server secret for HMAC hashes of API keys and recharge codes.
    pub hmac_secret: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./medgate-data"),
            database_url: String::new(),
            redis_url: None,
            api: ApiSettings::default(),
            proxy: ProxySettings::default(),
            auth: AuthSettings::default(),
        }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            max_body_bytes: 1024 * 1024,
            public_url: None,
            dns_resolver: None,
            domain_http_check_url: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            threads: 2,
            grace_period_secs: 5,
            redis_timeout_ms: 50,
            control_plane_url: None,
            node_token: None,
            tls: ProxyTlsSettings::default(),
            spool: SpoolSettings::default(),
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_algorithm: "HS256".into(),
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_private_key_file: None,
            jwt_issuer: "medgate".into(),
            hmac_secret: None,
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("invalid settings: {0}")]
    Invalid(String),
}

/// The environment variables medgate reads, with what they override.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("MEDGATE_DATA_DIR", "data_dir"),
    ("MEDGATE_DATABASE_URL", "database_url"),
    ("MEDGATE_REDIS_URL", "redis_url"),
    ("MEDGATE_API_LISTEN", "api.listen"),
    ("MEDGATE_API_PUBLIC_URL", "api.public_url"),
    ("MEDGATE_DNS_RESOLVER", "api.dns_resolver"),
    ("MEDGATE_DOMAIN_HTTP_CHECK_URL", "api.domain_http_check_url"),
    (
        "MEDGATE_TRUSTED_PROXIES",
        "api.trusted_proxies (comma-separated)",
    ),
    ("MEDGATE_PROXY_LISTEN", "proxy.listen"),
    ("MEDGATE_PROXY_THREADS", "proxy.threads"),
    ("MEDGATE_CONTROL_PLANE_URL", "proxy.control_plane_url"),
    ("MEDGATE_NODE_TOKEN", "proxy.node_token"),
    ("MEDGATE_PROXY_TLS_LISTEN", "proxy.tls.listen"),
    ("MEDGATE_PROXY_TLS_CERT_FILE", "proxy.tls.cert_file"),
    ("MEDGATE_PROXY_TLS_KEY_FILE", "proxy.tls.key_file"),
    ("MEDGATE_MAX_BODY_BYTES", "api.max_body_bytes"),
    ("MEDGATE_JWT_ALGORITHM", "auth.jwt_algorithm"),
    ("MEDGATE_JWT_SECRET", "auth.jwt_secret"),
    ("MEDGATE_JWT_PUBLIC_KEY_FILE", "auth.jwt_public_key_file"),
    ("MEDGATE_JWT_PRIVATE_KEY_FILE", "auth.jwt_private_key_file"),
    ("MEDGATE_JWT_ISSUER", "auth.jwt_issuer"),
    ("MEDGATE_HMAC_SECRET", "auth.hmac_secret"),
];

/// An IP address (a one-address network) or a CIDR.
fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

impl ApiSettings {
    /// `trusted_proxies` parsed (entries that do not parse are refused at load).
    pub fn trusted_proxy_networks(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|entry| parse_network(entry))
            .collect()
    }
}

impl Settings {
    /// Loads the YAML file (if any), then applies the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("MEDGATE_"))
            .collect();
        Self::load_with_env(file, &env)
    }

    /// Same as [`Settings::load`] with an explicit environment, so tests need no global state.
    pub fn load_with_env(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Self, SettingsError> {
        let mut settings = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        settings.apply_env(env)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parses one YAML file; unknown keys are an error, so typos never pass silently.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(&text).map_err(|source| SettingsError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), SettingsError> {
        let get = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        if let Some(v) = get("MEDGATE_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("MEDGATE_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("MEDGATE_REDIS_URL") {
            self.redis_url = Some(v);
        }
        if let Some(v) = get("MEDGATE_API_LISTEN") {
            self.api.listen = parse_env("MEDGATE_API_LISTEN", &v)?;
        }
        if let Some(v) = get("MEDGATE_API_PUBLIC_URL") {
            self.api.public_url = Some(v);
        }
        if let Some(v) = get("MEDGATE_DNS_RESOLVER") {
            self.api.dns_resolver = Some(parse_env("MEDGATE_DNS_RESOLVER", &v)?);
        }
        if let Some(v) = get("MEDGATE_DOMAIN_HTTP_CHECK_URL") {
            self.api.domain_http_check_url = Some(v);
        }
        if let Some(v) = get("MEDGATE_TRUSTED_PROXIES") {
            self.api.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = get("MEDGATE_PROXY_LISTEN") {
            self.proxy.listen = parse_env("MEDGATE_PROXY_LISTEN", &v)?;
        }
        if let Some(v) = get("MEDGATE_PROXY_THREADS") {
            self.proxy.threads = parse_env("MEDGATE_PROXY_THREADS", &v)?;
        }
        if let Some(v) = get("MEDGATE_CONTROL_PLANE_URL") {
            self.proxy.control_plane_url = Some(v);
        }
        if let Some(v) = get("MEDGATE_NODE_TOKEN") {
            self.proxy.node_token = Some(v);
        }
        if let Some(v) = get("MEDGATE_PROXY_TLS_LISTEN") {
            self.proxy.tls.listen = Some(parse_env("MEDGATE_PROXY_TLS_LISTEN", &v)?);
        }
        if let Some(v) = get("MEDGATE_PROXY_TLS_CERT_FILE") {
            self.proxy.tls.cert_file = Some(v.into());
        }
        if let Some(v) = get("MEDGATE_PROXY_TLS_KEY_FILE") {
            self.proxy.tls.key_file = Some(v.into());
        }
        if let Some(v) = get("MEDGATE_MAX_BODY_BYTES") {
            self.api.max_body_bytes = parse_env("MEDGATE_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = get("MEDGATE_JWT_ALGORITHM") {
            self.auth.jwt_algorithm = v;
        }
        if let Some(v) = get("MEDGATE_JWT_SECRET") {
            self.auth.jwt_secret = Some(v);
        }
        if let Some(v) = get("MEDGATE_JWT_PUBLIC_KEY_FILE") {
            self.auth.jwt_public_key_file = Some(v.into());
        }
        if let Some(v) = get("MEDGATE_JWT_PRIVATE_KEY_FILE") {
            self.auth.jwt_private_key_file = Some(v.into());
        }
        if let Some(v) = get("MEDGATE_JWT_ISSUER") {
            self.auth.jwt_issuer = v;
        }
        if let Some(v) = get("MEDGATE_HMAC_SECRET") {
            self.auth.hmac_secret = Some(v);
        }
        Ok(())
    }

    /// Checks what can be checked without touching the network or the disk.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let url = self.effective_database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(SettingsError::Invalid(format!(
                "database_url must start with sqlite:// or postgres:// (got {:?})",
                redact_url(&url)
            )));
        }
        if let Some(redis) = &self.redis_url {
            if !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
                return Err(SettingsError::Invalid(
                    "redis_url must start with redis:// or rediss://".into(),
                ));
            }
        }
        match self.auth.jwt_algorithm.as_str() {
            "HS256" => {
                if let Some(secret) = &self.auth.jwt_secret {
                    if secret.len() < 32 {
                        return Err(SettingsError::Invalid(
                            "auth.jwt_secret must be at least 32 characters".into(),
                        ));
                    }
                }
            }
            "RS256" | "ES256" => {
                if self.auth.jwt_public_key_file.is_none() {
                    return Err(SettingsError::Invalid(format!(
                        "auth.jwt_algorithm {} needs auth.jwt_public_key_file",
                        self.auth.jwt_algorithm
                    )));
                }
            }
            other => {
                return Err(SettingsError::Invalid(format!(
                    "auth.jwt_algorithm must be HS256, RS256 or ES256 (got {other:?})"
                )))
            }
        }
        for entry in &self.api.trusted_proxies {
            if parse_network(entry).is_none() {
                return Err(SettingsError::Invalid(format!(
                    "api.trusted_proxies: {entry:?} is neither an IP address nor a CIDR \
                     (e.g. 10.0.0.0/8)"
                )));
            }
        }
        if !(1..=64).contains(&self.proxy.threads) {
            return Err(SettingsError::Invalid(
                "proxy.threads must be between 1 and 64".into(),
            ));
        }
        if let Some(urls) = &self.proxy.control_plane_url {
            if urls
                .split(',')
                .any(|url| !url.trim().starts_with("http://"))
            {
                return Err(SettingsError::Invalid(
                    "proxy.control_plane_url must be http://host:port (a trusted internal \
                     network), or several of them comma-separated"
                        .into(),
                ));
            }
        }
        if !(1..=65_536).contains(&self.proxy.spool.max_file_mb) {
            return Err(SettingsError::Invalid(
                "proxy.spool.max_file_mb must be between 1 and 65536".into(),
            ));
        }
        self.proxy.tls.validate()?;
        if self.proxy.tls.listen.is_some() && self.proxy.tls.listen == Some(self.proxy.listen) {
            return Err(SettingsError::Invalid(
                "proxy.tls.listen must differ from proxy.listen".into(),
            ));
        }
        if let Some(url) = &self.api.domain_http_check_url {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(SettingsError::Invalid(
                    "api.domain_http_check_url must be an http:// or https:// URL".into(),
                ));
            }
        }
        if self.api.max_body_bytes < 1024 {
            return Err(SettingsError::Invalid(
                "api.max_body_bytes must be at least 1024".into(),
            ));
        }
        Ok(())
    }

    /// The database URL, defaulting to an SQLite file inside the data directory.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("medgate.db").display()
            )
        } else {
            self.database_url.clone()
        }
    }

    /// The URL operators use to reach the management API.
    pub fn api_url(&self) -> String {
        self.api
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.api.listen))
    }
}

fn parse_env<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, SettingsError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| SettingsError::Env {
        name,
        message: e.to_string(),
    })
}

/// Hides the password of a URL so it can be printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_use_sqlite_in_the_data_dir_and_the_documented_ports() {
        let s = Settings::load_with_env(None, &env(&[])).expect("defaults are valid");
        assert_eq!(s.api.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(s.proxy.listen.to_string(), "127.0.0.1:8080");
        assert!(s
            .effective_database_url()
            .starts_with("sqlite://./medgate-data/medgate.db"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("medgate.yaml");
        std::fs::write(
            &file,
            "database_url: sqlite://from-file.db\napi:\n  listen: 127.0.0.1:9000\n",
        )
        .expect("write");
        let s = Settings::load_with_env(
            Some(&file),
            &env(&[("MEDGATE_DATABASE_URL", "postgres://u:secret@db/medgate")]),
        )
        .expect("valid");
        assert_eq!(s.database_url, "postgres://u:secret@db/medgate");
        assert_eq!(
            s.api.listen.port(),
            9000,
            "file value kept where env is silent"
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("medgate.yaml");
        std::fs::write(&file, "databse_url: sqlite://typo.db\n").expect("write");
        let err = Settings::load_with_env(Some(&file), &env(&[])).expect_err("typo refused");
        assert!(err.to_string().contains("databse_url"), "{err}");
    }

    #[test]
    fn spool_rotation_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("medgate.yaml");
        std::fs::write(
            &file,
            "proxy:\n  spool:\n    max_file_mb: 8\n    keep_files: 0\n",
        )
        .expect("write");
        let settings = Settings::load_with_env(Some(&file), &env(&[])).expect("valid");
        assert_eq!(
            settings.proxy.spool,
            SpoolSettings {
                max_file_mb: 8,
                keep_files: 0
            }
        );
        std::fs::write(&file, "proxy:\n  spool:\n    max_file_mb: 0\n").expect("write");
        let err = Settings::load_with_env(Some(&file), &env(&[])).expect_err("zero size");
        assert!(err.to_string().contains("proxy.spool.max_file_mb"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = Settings::load_with_env(None, &env(&[("MEDGATE_API_LISTEN", "nope")]))
            .expect_err("bad address");
        assert!(err.to_string().contains("MEDGATE_API_LISTEN"));
        let err = Settings::load_with_env(None, &env(&[("MEDGATE_JWT_SECRET", "short")]))
            .expect_err("short secret");
        assert!(err.to_string().contains("32"));
        let err = Settings::load_with_env(None, &env(&[("MEDGATE_DATABASE_URL", "mysql://x")]))
            .expect_err("unsupported db");
        assert!(err.to_string().contains("sqlite"));
    }

    #[test]
    fn the_tls_listener_needs_readable_matching_pem_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["gateway.test".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, cert.pem()).expect("write");
        std::fs::write(&key_file, key.serialize_pem()).expect("write");
        let cert_path = cert_file.to_str().expect("utf-8");
        let key_path = key_file.to_str().expect("utf-8");

        let s = Settings::load_with_env(None, &env(&[])).expect("valid");
        assert_eq!(s.proxy.tls.load().expect("no listener"), None);
        let s = Settings::load_with_env(
            None,
            &env(&[
                ("MEDGATE_PROXY_TLS_LISTEN", "127.0.0.1:8443"),
                ("MEDGATE_PROXY_TLS_CERT_FILE", cert_path),
                ("MEDGATE_PROXY_TLS_KEY_FILE", key_path),
            ]),
        )
        .expect("valid");
        let material = s.proxy.tls.load().expect("loads").expect("listener");
        assert_eq!(material.listen.port(), 8443);

        let err = Settings::load_with_env(
            None,
            &env(&[
                ("MEDGATE_PROXY_TLS_LISTEN", "127.0.0.1:8443"),
                ("MEDGATE_PROXY_TLS_CERT_FILE", cert_path),
            ]),
        )
        .expect_err("key missing");
        assert!(err.to_string().contains("set together"), "{err}");
        let err = Settings::load_with_env(
            None,
            &env(&[("MEDGATE_PROXY_TLS_LISTEN", "127.0.0.1:8443")]),
        )
        .expect_err("no certificate");
        assert!(err.to_string().contains("cert_file"), "{err}");

        let mut tls = s.proxy.tls.clone();
        tls.key_file = Some(dir.path().join("missing.pem"));
        let err = tls.load().expect_err("unreadable");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        tls.key_file = Some(cert_file.clone());
        let err = tls.load().expect_err("a certificate is no key");
        assert!(err.to_string().contains("private key"), "{err}");
    }

    #[test]
    fn passwords_are_redacted_for_printing() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
