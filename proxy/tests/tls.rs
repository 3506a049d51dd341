//! The HTTPS listener end to end, in static mode, with a CA made in the test: the certificate
//! is chosen by SNI (a.test and b.test have their own, any other name gets the default), a
//! new gateway file swaps a domain's certificate without a restart while a broken one leaves
//! the others alone, routes redirect plain HTTP to HTTPS, and `https://` targets are verified
//! against the CA they name (and the system roots otherwise).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::Json;
use medgate_config::tls::{parse_certificates, parse_private_key, CertificateInfo};
use medgate_config::TlsListenerMaterial;
use medgate_proxy::{ConfigSource, ProxyHandle, ProxyOptions};
use medgate_testkit::{Issued, MockUpstream, TestCa};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use serde_json::{json, Value};
use support::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Records whatever certificate the server sends (the tests look at it themselves).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The leaf certificate the listener at `addr` serves for `server_name` (an IP address sends
/// no SNI).
async fn served(addr: SocketAddr, server_name: &str) -> CertificateInfo {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            connector.connect(name.clone(), tcp).await
        };
        match attempt.await {
            Ok(tls) => {
                let (_, conn) = tls.get_ref();
                let leaf = conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .expect("a certificate");
                return CertificateInfo::of(leaf, 0).expect("readable");
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "no TLS handshake: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn fingerprint(issued: &Issued) -> String {
    let chain = parse_certificates(&issued.cert_pem).expect("chain");
    CertificateInfo::of(&chain[0], 0)
        .expect("leaf")
        .fingerprint_sha256
}

/// A client that trusts only the test CA and sends `host` to the HTTPS listener.
fn https_client(ca: &TestCa, host: &str, addr: SocketAddr) -> reqwest::Client {
    https_client_builder(ca, host, addr)
        .build()
        .expect("client")
}

fn https_client_builder(ca: &TestCa, host: &str, addr: SocketAddr) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("CA"))
        .resolve(host, addr)
        .redirect(reqwest::redirect::Policy::none())
}

/// A plain-HTTP backend that answers with the path and the forwarded scheme it saw.
async fn backend() -> String {
    async fn echo(req: Request) -> Json<Value> {
        Json(json!({
            "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or_default(),
            "proto": req.headers().get("x-forwarded-proto").and_then(|v| v.to_str().ok()),
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().fallback(echo)).await;
    });
    url
}

/// An HTTPS backend with a certificate for 127.0.0.1 from `ca`; answers `{"tls":"ok"}`.
async fn tls_backend(ca: &TestCa) -> String {
    let issued = ca.issue(&["127.0.0.1"]);
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            parse_certificates(&issued.cert_pem).expect("chain"),
            parse_private_key(&issued.key_pem).expect("key"),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"tls":"ok"}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    url
}

fn domain(host: &str, cert: &Issued) -> Value {
    json!({ "hostname": host, "tenant_id": "t1",
            "certificate": { "chain_pem": cert.cert_pem, "key_pem": cert.key_pem } })
}

fn route(id: &str, prefix: &str, target: Value) -> Value {
    json!({ "id": id, "name": id, "tenant_id": null, "match": { "path_prefix": prefix },
            "targets": [target] })
}

fn write_gateway(file: &Path, domains: Value, routes: Value) {
    write_gateway_with(file, domains, routes, json!({}));
}

/// The gateway file with `extra`'s top-level keys (models, API keys) added.
fn write_gateway_with(file: &Path, domains: Value, routes: Value, extra: Value) {
    let mut config = json!({
        "tenants": [{ "id": "t1", "code": "t1", "status": "active", "quotas": null,
                      "allowed_models": [], "log_request_payloads": false,
                      "cors_allowed_origins": [], "isolation": null }],
        "domains": domains,
        "routes": routes,
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, serde_yaml::to_string(&config).expect("yaml")).expect("write");
    std::fs::rename(tmp, file).expect("rename");
}

struct Fixture {
    proxy: Option<ProxyHandle>,
    http: String,
    https: SocketAddr,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(p) = self.proxy.take() {
            p.stop();
        }
    }
}

fn options(dir: &tempfile::TempDir, file: &Path, default: &Issued) -> ProxyOptions {
    ProxyOptions {
        listen: format!("127.0.0.1:{}", free_port()).parse().expect("addr"),
        data_dir: dir.path().to_owned(),
        source: ConfigSource::StaticFile(file.to_owned()),
        threads: 2,
        grace_period_secs: 1,
        redis_url: None,
        redis_timeout: Duration::from_secs(2),
        spool: Default::default(),
        tls: Some(TlsListenerMaterial {
            listen: format!("127.0.0.1:{}", free_port()).parse().expect("addr"),
            chain_pem: default.cert_pem.clone(),
            key_pem: default.key_pem.clone(),
        }),
    }
}

async fn start(default: &Issued, domains: Value, routes: Value) -> Fixture {
    start_with(default, domains, routes, json!({})).await
}

async fn start_with(default: &Issued, domains: Value, routes: Value, extra: Value) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    write_gateway_with(&file, domains, routes, extra);
    let options = options(&dir, &file, default);
    let https = options.tls.as_ref().expect("tls").listen;
    let proxy = medgate_proxy::start(options).expect("proxy starts");
    assert_eq!(proxy.tls_listen, Some(https));
    let http = format!("http://{}", proxy.listen);
    support::wait_ready(&http).await;
    Fixture {
        proxy: Some(proxy),
        http,
        https,
        file,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_chosen_by_sni_and_swapped_without_a_restart() {
    let ca = TestCa::new("medgate test CA");
    let default = ca.issue(&["gateway.test"]);
    let a = ca.issue(&["a.test"]);
    let b = ca.issue(&["b.test", "*.b.test"]);
    let f = start(
        &default,
        json!([domain("a.test", &a), domain("b.test", &b)]),
        json!([]),
    )
    .await;

    let seen = served(f.https, "a.test").await;
    assert_eq!(seen.dns_names, vec!["a.test"]);
    assert_eq!(seen.fingerprint_sha256, fingerprint(&a));
    assert_eq!(
        served(f.https, "B.TEST").await.fingerprint_sha256,
        fingerprint(&b)
    );
    assert_eq!(
        served(f.https, "api.b.test").await.fingerprint_sha256,
        fingerprint(&b),
        "a wildcard name within the domain"
    );
    for other in ["unknown.test", "x.a.test", "127.0.0.1"] {
        assert_eq!(
            served(f.https, other).await.dns_names,
            vec!["gateway.test"],
            "{other} gets the default certificate"
        );
    }

    // A client that verifies against the CA gets through, and the gateway answers over TLS.
    let port = f.https.port();
    let reply = https_client(&ca, "a.test", f.https)
        .get(format!("https://a.test:{port}/healthz"))
        .send()
        .await
        .expect("verified TLS to a.test");
    assert_eq!(reply.status(), 200);

    // A new file replaces a.test's certificate and breaks b.test's: a.test changes without a
    // restart, b.test falls back to the default, nothing else is affected.
    let a2 = ca.issue(&["a.test"]);
    let mut broken = ca.issue(&["b.test"]);
    broken.key_pem = ca.issue(&["b.test"]).key_pem;
    write_gateway(
        &f.file,
        json!([domain("a.test", &a2), domain("b.test", &broken)]),
        json!([]),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while served(f.https, "a.test").await.fingerprint_sha256 != fingerprint(&a2) {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served(f.https, "b.test").await.dns_names,
        vec!["gateway.test"],
        "a broken certificate is left out, its domain gets the default"
    );
    let reply = https_client(&ca, "a.test", f.https)
        .get(format!("https://a.test:{port}/healthz"))
        .send()
        .await
        .expect("verified TLS to a.test after the swap");
    assert_eq!(reply.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https_on_routes_that_ask() {
    let ca = TestCa::new("medgate test CA");
    let default = ca.issue(&["gateway.test"]);
    let a = ca.issue(&["a.test"]);
    let target = backend().await;
    let mut secure = route("secure", "/app", json!({ "url": target }));
    secure["https_redirect"] = json!(true);
    let plain = route("plain", "/open", json!({ "url": target }));
    let f = start(
        &default,
        json!([domain("a.test", &a)]),
        json!([secure, plain]),
    )
    .await;
    let port = f.https.port();

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let reply = http
        .post(format!("{}/app/records?page=2", f.http))
        .header("host", "A.test:8080")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(reply.status(), 308);
    assert_eq!(
        reply.headers()["location"],
        format!("https://a.test:{port}/app/records?page=2").as_str()
    );

    let reply = http
        .get(format!("{}/open/x", f.http))
        .header("host", "a.test")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        reply.status(),
        200,
        "a route without the flag is not redirected"
    );
    let body: Value = reply.json().await.expect("json");
    assert_eq!(body["proto"], "http");

    // Over TLS the same route is served, and the target learns the scheme.
    let reply = https_client(&ca, "a.test", f.https)
        .get(format!("https://a.test:{port}/app/records?page=2"))
        .send()
        .await
        .expect("sent over TLS");
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.expect("json");
    assert_eq!(body["path"], "/app/records?page=2");
    assert_eq!(body["proto"], "https");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_listener_speaks_http2_and_http1_as_the_client_offers() {
    let ca = TestCa::new("medgate test CA");
    let default = ca.issue(&["gateway.test"]);
    let a = ca.issue(&["a.test"]);
    let target = backend().await;
    let f = start(
        &default,
        json!([domain("a.test", &a)]),
        json!([route("app", "/app", json!({ "url": target }))]),
    )
    .await;
    let port = f.https.port();
    let url = format!("https://a.test:{port}/app/records?page=2");

    // A client offering h2 in ALPN gets HTTP/2; the HTTP/1.1 target sees the same request.
    let reply = https_client(&ca, "a.test", f.https)
        .get(&url)
        .send()
        .await
        .expect("sent over TLS");
    assert_eq!(reply.version(), reqwest::Version::HTTP_2);
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.expect("json");
    assert_eq!(body["path"], "/app/records?page=2");
    assert_eq!(body["proto"], "https");

    // Several requests share one HTTP/2 connection concurrently.
    let client = https_client(&ca, "a.test", f.https);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let request = client.get(format!("https://a.test:{port}/app/{i}"));
            tokio::spawn(async move { (i, request.send().await) })
        })
        .collect();
    for task in tasks {
        let (i, reply) = task.await.expect("task");
        let reply = reply.expect("sent");
        assert_eq!(reply.version(), reqwest::Version::HTTP_2);
        let body: Value = reply.json().await.expect("json");
        assert_eq!(body["path"], format!("/app/{i}"));
    }

    // A client offering only HTTP/1.1 gets HTTP/1.1.
    let http1 = https_client_builder(&ca, "a.test", f.https)
        .http1_only()
        .build()
        .expect("client");
    let reply = http1.get(&url).send().await.expect("sent over TLS");
    assert_eq!(reply.version(), reqwest::Version::HTTP_11);
    assert_eq!(reply.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chat_completions_work_over_http2() {
    let ca = TestCa::new("medgate test CA");
    let default = ca.issue(&["gateway.test"]);
    let upstream = MockUpstream::start().await;
    let models = json!({
        "models": [{ "id": "m1", "name": "gpt-small", "enabled": true,
                     "provider": "openai_compatible",
                     "upstreams": [{ "url": upstream.base_url(), "weight": 1, "api_key": null }],
                     "upstream_model": "gpt-small", "connect_timeout_ms": 2000,
                     "read_timeout_ms": 10000, "available_to_all_tenants": true,
                     "parameters": {} }],
        "api_keys": [{ "id": "key_1", "tenant_id": "t1", "prefix": "mg_0123456789ab",
                       "secrets": [{ "sha256": support::sha(support::KEY), "valid_until": null }],
                       "expires_at": null, "allowed_models": [] }],
        "tenant_models": [],
    });
    let f = start_with(&default, json!([]), json!([]), models).await;
    let port = f.https.port();
    let client = https_client(&ca, "gateway.test", f.https);
    let url = format!("https://gateway.test:{port}/v1/chat/completions");
    let body = json!({ "model": "gpt-small", "stream": true,
                       "messages": [{ "role": "user", "content": "one two three" }] });

    let reply = client
        .post(&url)
        .bearer_auth(support::KEY)
        .json(&body)
        .send()
        .await
        .expect("sent over TLS");
    assert_eq!(reply.version(), reqwest::Version::HTTP_2);
    assert_eq!(reply.status(), 200);
    assert!(reply
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream")));
    let text = reply.text().await.expect("stream");
    assert!(text.contains("data: [DONE]"), "{text}");
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "one two three", "the echo arrives whole: {text}");

    // Not streamed, and a refusal, over the same HTTP/2 connection.
    let mut plain = body.clone();
    plain["stream"] = json!(false);
    let reply = client
        .post(&url)
        .bearer_auth(support::KEY)
        .json(&plain)
        .send()
        .await
        .expect("sent");
    assert_eq!(reply.version(), reqwest::Version::HTTP_2);
    let completion: Value = reply.json().await.expect("json");
    assert_eq!(completion["object"], "chat.completion");
    let reply = client.post(&url).json(&plain).send().await.expect("sent");
    assert_eq!(reply.status(), 401);
    upstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_targets_are_verified_against_their_ca() {
    let ca = TestCa::new("medgate test CA");
    let default = ca.issue(&["gateway.test"]);
    let upstream = tls_backend(&ca).await;
    let other_ca = TestCa::new("another CA");
    let routes = json!([
        route(
            "trusted",
            "/trusted",
            json!({ "url": upstream, "ca_pem": ca.pem() })
        ),
        route("system-roots", "/system", json!({ "url": upstream })),
        route(
            "wrong-ca",
            "/wrong",
            json!({ "url": upstream, "ca_pem": other_ca.pem() })
        ),
    ]);
    let f = start(&default, json!([]), routes).await;
    let get = |path: &str| reqwest::get(format!("{}{path}", f.http));

    let reply = get("/trusted/x").await.expect("sent");
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.json::<Value>().await.expect("json")["tls"], "ok");
    for path in ["/system/x", "/wrong/x"] {
        assert_eq!(
            get(path).await.expect("sent").status(),
            502,
            "{path}: an unverifiable target is a bad gateway"
        );
    }
    // The verified route still works: a failed handshake left no connection to reuse.
    assert_eq!(get("/trusted/y").await.expect("sent").status(), 200);
}

#[test]
fn a_bad_default_certificate_stops_the_start_with_a_clear_error() {
    let ca = TestCa::new("medgate test CA");
    let mut default = ca.issue(&["gateway.test"]);
    default.key_pem = ca.issue(&["gateway.test"]).key_pem;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    write_gateway(&file, json!([]), json!([]));
    let err = medgate_proxy::start(options(&dir, &file, &default))
        .err()
        .expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("does not match"), "{err}");
}
