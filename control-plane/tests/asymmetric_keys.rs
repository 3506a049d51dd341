//! RS256 and ES256 tokens: verified with the configured public key; an HS256 token signed
//! with the public key as a secret (algorithm confusion) is refused.

use std::path::PathBuf;
use std::time::Duration;

use medgate_config::settings::AuthSettings;
use medgate_config::Settings;
use medgate_control_plane::{JwtKeys, Role};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn keys(alg: &str, prefix: &str) -> JwtKeys {
    let settings = Settings {
        auth: AuthSettings {
            jwt_algorithm: alg.into(),
            jwt_public_key_file: Some(fixture(&format!("{prefix}-test-public.pem"))),
            jwt_private_key_file: Some(fixture(&format!("{prefix}-test-private.pem"))),
            ..AuthSettings::default()
        },
        ..Settings::default()
    };
    settings.validate().expect("valid settings");
    JwtKeys::from_settings(&settings, None).expect("keys load")
}

#[test]
fn rs256_and_es256_tokens_verify() {
    for (alg, prefix) in [("RS256", "rs256"), ("ES256", "es256")] {
        let k = keys(alg, prefix);
        let token = k
            .issue("ops", Role::Auditor, None, Duration::from_secs(60))
            .expect("issue");
        let p = k.verify(&token).expect("verify");
        assert_eq!(p.role, Role::Auditor, "{alg}");
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    let public = std::fs::read(fixture("rs256-test-public.pem")).expect("read");
    let forged = JwtKeys::hs256(&public, "medgate")
        .issue(
            "mallory",
            Role::PlatformAdmin,
            None,
            Duration::from_secs(60),
        )
        .expect("issue");
    assert!(keys("RS256", "rs256").verify(&forged).is_err());
    let es = keys("ES256", "es256")
        .issue("x", Role::Auditor, None, Duration::from_secs(60))
        .expect("issue");
    assert!(
        keys("RS256", "rs256").verify(&es).is_err(),
        "ES256 token refused by RS256 keys"
    );
}

#[test]
fn verification_only_deployments_cannot_mint() {
    let settings = Settings {
        auth: AuthSettings {
            jwt_algorithm: "ES256".into(),
            jwt_public_key_file: Some(fixture("es256-test-public.pem")),
            ..AuthSettings::default()
        },
        ..Settings::default()
    };
    let k = JwtKeys::from_settings(&settings, None).expect("keys load");
    assert!(k
        .issue("x", Role::Auditor, None, Duration::from_secs(60))
        .is_err());
}
