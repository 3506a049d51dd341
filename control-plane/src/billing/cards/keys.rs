//! The server keys of recharge cards: hashing codes, deriving a batch's codes from its seed,
//! and sealing that seed (DESIGN.md §7: codes are stored only as an HMAC with a server
//! secret).
//!
//! **Where the secret comes from**, in order: `auth.hmac_secret` (`MEDGATE_HMAC_SECRET`,
//! at least 32 bytes), else the HS256 JWT secret (`auth.jwt_secret`, else the `jwt-secret`
//! file in the data directory, the same order `medgate` resolves it in). Nothing else works:
//! without one, card endpoints answer 503. Three independent keys are derived from it with
//! HMAC-SHA256 and fixed labels, so a code hash, a derived code and a seal can never be
//! confused with each other or with a JWT signature.
//!
//! Changing the secret (or the JWT secret while no `hmac_secret` is set) makes every
//! unredeemed card unredeemable and every unexported batch unexportable: set
//! `MEDGATE_HMAC_SECRET` before issuing cards and keep it.
//!
//! **Why batches are derived, not encrypted:** export must give the plaintext back, yet the
//! database must hold no plaintext. Card `i` of a batch is `HMAC(derive key, seed || i)`
//! truncated to 80 bits, where `seed` is 32 bytes from the CSPRNG; the batch row keeps the
//! seed sealed with ChaCha20-Poly1305 (the notifier's [`SealKey`], under a key of its own and
//! bound to the batch id), so the codes keep the 80-bit unpredictability of a PRF output under
//! a 256-bit random key. The last allowed export erases the sealed seed, after which no one,
//! even with the server secret, can recover the batch's codes.

use hmac::{Hmac, Mac};
use medgate_config::Settings;
use rand::RngCore;
use sha2::Sha256;

use super::code::Code;
use crate::error::{ApiError, ApiResult};
use crate::notifier::sealed::SealKey;

type HmacSha256 = Hmac<Sha256>;

const LABEL_HASH: &[u8] = b"medgate/recharge-cards/code-hash/v1";
const LABEL_DERIVE: &[u8] = b"medgate/recharge-cards/code-derive/v1";
const LABEL_SEAL: &[u8] = b"medgate/recharge-cards/seed-seal/v1";
/// Shortest `auth.hmac_secret` accepted.
pub const MIN_SECRET_BYTES: usize = 32;
const JWT_SECRET_FILE: &str = "jwt-secret";

/// A batch's 32-byte random seed.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed([u8; 32]);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(..)")
    }
}

impl Seed {
    /// 32 bytes from the thread-local CSPRNG.
    pub fn random() -> Seed {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Seed(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Seed {
        Seed(bytes)
    }
}

/// The keys derived from the server secret; cheap to clone.
#[derive(Clone)]
pub struct CardKeys {
    hash: HmacSha256,
    derive: HmacSha256,
    seal: SealKey,
}

impl std::fmt::Debug for CardKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardKeys(..)")
    }
}

fn keyed(key: &[u8]) -> ApiResult<HmacSha256> {
    // HMAC takes keys of any length; this cannot fail, but no unwrap outside tests.
    HmacSha256::new_from_slice(key).map_err(ApiError::internal)
}

fn subkey(secret: &[u8], label: &[u8]) -> ApiResult<HmacSha256> {
    let mut mac = keyed(secret)?;
    mac.update(label);
    keyed(&mac.finalize().into_bytes())
}

impl CardKeys {
    /// Keys derived from `secret`.
    pub fn from_secret(secret: &[u8]) -> ApiResult<CardKeys> {
        Ok(CardKeys {
            hash: subkey(secret, LABEL_HASH)?,
            derive: subkey(secret, LABEL_DERIVE)?,
            seal: SealKey::from_secret(&subkey(secret, LABEL_SEAL)?.finalize().into_bytes())?,
        })
    }

    /// Keys from the configured secret (see the module docs); 503 when there is none.
    pub fn from_settings(settings: &Settings) -> ApiResult<CardKeys> {
        CardKeys::from_secret(&server_secret(settings)?)
    }

    /// `hex(HMAC-SHA256(hash key, canonical code))`, the stored and looked-up form.
    pub fn code_hash(&self, code: Code) -> String {
        let mut mac = self.hash.clone();
        mac.update(code.canonical().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Card `index` of the batch with `seed`.
    pub fn derive(&self, seed: &Seed, index: u64) -> Code {
        let mut mac = self.derive.clone();
        mac.update(&seed.0);
        mac.update(&index.to_be_bytes());
        let out = mac.finalize().into_bytes();
        let mut bytes = [0u8; 10];
        bytes.copy_from_slice(&out[..10]);
        Code::from_bytes(&bytes)
    }

    /// The sealed form of `seed` for the batch `batch_id`.
    pub fn seal(&self, batch_id: &str, seed: &Seed) -> String {
        self.seal.seal_bound(batch_id, &seed.0)
    }

    /// The seed sealed by [`CardKeys::seal`]; None when it was sealed for another batch or
    /// with another secret, or was altered.
    pub fn unseal(&self, batch_id: &str, sealed: &str) -> Option<Seed> {
        let bytes = self.seal.unseal_bound(batch_id, sealed)?;
        Some(Seed(bytes.try_into().ok()?))
    }
}

/// The server secret for cards (see the module docs); also the root of the notifier's sealed
/// settings secrets (`crate::notifier::sealed`).
pub(crate) fn server_secret(settings: &Settings) -> ApiResult<Vec<u8>> {
    if let Some(secret) = settings.auth.hmac_secret.as_deref() {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ApiError::Unavailable(format!(
                "auth.hmac_secret must be at least {MIN_SECRET_BYTES} bytes; recharge cards \
                 are unavailable until it is"
            )));
        }
        return Ok(secret.as_bytes().to_vec());
    }
    if settings.auth.jwt_algorithm == "HS256" {
        if let Some(secret) = settings.auth.jwt_secret.as_deref() {
            return Ok(secret.as_bytes().to_vec());
        }
        let path = settings.data_dir.join(JWT_SECRET_FILE);
        if let Ok(secret) = std::fs::read_to_string(path) {
            let secret = secret.trim();
            if !secret.is_empty() {
                return Ok(secret.as_bytes().to_vec());
            }
        }
    }
    Err(ApiError::Unavailable(
        "recharge cards need a server secret: set MEDGATE_HMAC_SECRET (32 bytes or more)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> CardKeys {
        CardKeys::from_secret(b"a server secret of at least 32 bytes!!").expect("keys")
    }

    #[test]
    fn hashes_and_derivations_are_keyed_and_stable() {
        let k = keys();
        let other = CardKeys::from_secret(b"another server secret of 32 bytes!!!").expect("keys");
        let seed = Seed::from_bytes([7; 32]);
        let code = k.derive(&seed, 3);
        assert_eq!(code, k.derive(&seed, 3));
        assert_ne!(code, k.derive(&seed, 4));
        assert_ne!(code, other.derive(&seed, 3));
        assert_eq!(k.code_hash(code).len(), 64);
        assert_ne!(k.code_hash(code), other.code_hash(code));
        assert!(!k.code_hash(code).contains(&code.canonical()));
    }

    #[test]
    fn seeds_unseal_only_for_their_batch_and_secret() {
        let k = keys();
        let seed = Seed::random();
        let sealed = k.seal("bat_1", &seed);
        // "v2:" + hex(12-byte nonce, 32-byte seed, 16-byte tag), no plaintext seed in it.
        assert_eq!(sealed.len(), 3 + 2 * (12 + 32 + 16));
        assert_ne!(k.seal("bat_1", &seed), sealed, "a fresh nonce each time");
        assert_eq!(k.unseal("bat_1", &sealed), Some(seed.clone()));
        assert_eq!(k.unseal("bat_2", &sealed), None);
        let other = CardKeys::from_secret(b"another server secret of 32 bytes!!!").expect("keys");
        assert_eq!(other.unseal("bat_1", &sealed), None);
        assert_eq!(k.unseal("bat_1", "zz"), None);
    }

    #[test]
    fn a_million_derived_codes_are_distinct() {
        let k = keys();
        let seed = Seed::random();
        let codes: std::collections::HashSet<u128> =
            (0..1_000_000).map(|i| k.derive(&seed, i).value()).collect();
        assert_eq!(codes.len(), 1_000_000);
    }

    #[test]
    fn the_secret_comes_from_settings_in_the_documented_order() {
        let mut s = Settings {
            data_dir: std::env::temp_dir().join("medgate-no-such-dir-for-card-keys"),
            ..Settings::default()
        };
        s.auth.jwt_secret = None;
        assert!(matches!(server_secret(&s), Err(ApiError::Unavailable(_))));
        s.auth.jwt_secret = Some("j".repeat(32));
        assert_eq!(server_secret(&s).expect("jwt"), "j".repeat(32).into_bytes());
        s.auth.hmac_secret = Some("h".repeat(32));
        assert_eq!(
            server_secret(&s).expect("hmac"),
            "h".repeat(32).into_bytes()
        );
        s.auth.hmac_secret = Some("short".into());
        assert!(matches!(server_secret(&s), Err(ApiError::Unavailable(_))));
    }
}
