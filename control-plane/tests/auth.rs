//! Token handling: expired, malformed, wrong signature, `alg: none`, wrong issuer -> 401.

use std::time::Duration;

use medgate_control_plane::{JwtKeys, Role};
use medgate_testkit::{both_backends, Stack, TEST_JWT_SECRET};

both_backends!(bad_tokens_are_401, valid_tokens_work);

fn b64(input: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn bad_tokens_are_401(stack: Stack) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let payload = b64(format!(
        r#"{{"sub":"x","role":"platform_admin","iss":"medgate","iat":{now},"exp":{},"jti":"j"}}"#,
        now + 600
    )
    .as_bytes());
    let alg_none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let expired = {
        let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b64(format!(
            r#"{{"sub":"x","role":"platform_admin","iss":"medgate","iat":1,"exp":{},"jti":"j"}}"#,
            now - 3600
        )
        .as_bytes());
        // sign properly with the real secret so only the expiry is wrong
        let keys = JwtKeys::hs256(TEST_JWT_SECRET.as_bytes(), "medgate");
        let _ = (header, body);
        let token = keys
            .issue("x", Role::PlatformAdmin, None, Duration::from_secs(1))
            .expect("token");
        tokio::time::sleep(Duration::from_millis(7100)).await;
        token
    };
    let wrong_secret = JwtKeys::hs256(b"another-secret-another-secret-another", "medgate")
        .issue("x", Role::PlatformAdmin, None, Duration::from_secs(600))
        .expect("token");
    let wrong_issuer = JwtKeys::hs256(TEST_JWT_SECRET.as_bytes(), "elsewhere")
        .issue("x", Role::PlatformAdmin, None, Duration::from_secs(600))
        .expect("token");
    let tampered = {
        let good = stack.token(Role::TenantViewer, Some("t1"));
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = payload.clone();
        parts.join(".")
    };
    for (name, token) in [
        ("alg none", alg_none),
        ("expired", expired),
        ("wrong secret", wrong_secret),
        ("wrong issuer", wrong_issuer),
        ("tampered payload", tampered),
        ("malformed", "not.a.jwt".to_owned()),
        ("garbage", "%%%".to_owned()),
    ] {
        let client = stack.anonymous().with_token(Some(token));
        let r = client.get("/api/tenants").await;
        assert_eq!(r.status, 401, "{name}: {}", r.text);
        assert_eq!(r.error_code(), "unauthenticated", "{name}");
    }
    let r = reqwest::Client::new()
        .get(format!("{}/api/tenants", stack.base_url))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401, "non-bearer scheme");
}

async fn valid_tokens_work(stack: Stack) {
    stack.admin().get("/api/tenants").await.expect(200);
    let r = stack.anonymous().get("/api/health").await.expect(200);
    assert_eq!(r.json["store"]["status"], "ok");
    assert!(
        r.headers.get("x-request-id").is_some(),
        "every response carries a request id"
    );
    let r = reqwest::Client::new()
        .get(format!("{}/api/health", stack.base_url))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-chosen-42")
    );
}
