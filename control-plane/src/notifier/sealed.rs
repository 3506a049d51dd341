//! Secrets at rest (the SMTP password, the notification webhook's signing secret, and any
//! other module's secret that must be read back): sealed with a key derived from the server
//! secret, never in plaintext.
//!
//! The server secret is the one recharge cards use (`auth.hmac_secret`, else the HS256 JWT
//! secret; see `billing::cards::keys`). The sealing key is `HMAC-SHA256(secret, LABEL)`, so it
//! is independent of every other use of that secret. A value is sealed with a fresh 16-byte
//! random nonce: the ciphertext is the plaintext XOR an HMAC-SHA256 keystream
//! (`HMAC(key, "ks" || nonce || counter)`), followed by a 32-byte tag
//! `HMAC(key, "tag" || label || nonce || ciphertext)` (encrypt-then-MAC; HMAC is a PRF, so no
//! new cipher dependency). Stored form: `v1:` + hex(nonce || ciphertext || tag).
//!
//! Changing the server secret makes sealed values unreadable: the notifier then reports
//! "set it again" instead of sending with a wrong secret.

use hmac::{Hmac, Mac};
use medgate_config::Settings;
use rand::RngCore;
use sha2::Sha256;

use crate::error::{ApiError, ApiResult};

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"medgate/settings/secret-seal/v1";
const PREFIX: &str = "v1:";
const NONCE: usize = 16;
const TAG: usize = 32;

/// The sealing key, derived from the server secret.
#[derive(Clone)]
pub struct SealKey(HmacSha256);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// The key derived from `secret`.
    pub fn from_secret(secret: &[u8]) -> ApiResult<SealKey> {
        let mut mac = HmacSha256::new_from_slice(secret).map_err(ApiError::internal)?;
        mac.update(LABEL);
        let key = mac.finalize().into_bytes();
        HmacSha256::new_from_slice(&key)
            .map(SealKey)
            .map_err(ApiError::internal)
    }

    /// The key of this server; 503 naming `what` when no server secret is configured.
    pub fn from_settings(settings: &Settings, what: &str) -> ApiResult<SealKey> {
        match crate::billing::cards::keys::server_secret(settings) {
            Ok(secret) => SealKey::from_secret(&secret),
            Err(ApiError::Unavailable(_)) => Err(ApiError::Unavailable(format!(
                "{what} is stored encrypted with the server secret, and there is none: set \
                 MEDGATE_HMAC_SECRET (32 bytes or more)"
            ))),
            Err(other) => Err(other),
        }
    }

    fn keystream_xor(&self, nonce: &[u8], data: &mut [u8]) {
        for (counter, chunk) in data.chunks_mut(32).enumerate() {
            let mut mac = self.0.clone();
            mac.update(b"ks");
            mac.update(nonce);
            mac.update(&u64::try_from(counter).unwrap_or(u64::MAX).to_be_bytes());
            let block = mac.finalize().into_bytes();
            for (b, k) in chunk.iter_mut().zip(block.iter()) {
                *b ^= k;
            }
        }
    }

    fn tag(&self, nonce: &[u8], ciphertext: &[u8]) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(b"tag");
        mac.update(LABEL);
        mac.update(nonce);
        mac.update(ciphertext);
        mac
    }

    /// The sealed form of `plaintext`.
    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        let mut data = plaintext.as_bytes().to_vec();
        self.keystream_xor(&nonce, &mut data);
        let tag = self.tag(&nonce, &data).finalize().into_bytes();
        let mut out = Vec::with_capacity(NONCE + data.len() + TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        out.extend_from_slice(&tag);
        format!("{PREFIX}{}", hex::encode(out))
    }

    /// The plaintext of a value sealed by [`SealKey::seal`]; None when it was sealed with
    /// another secret or altered.
    pub fn unseal(&self, sealed: &str) -> Option<String> {
        let bytes = hex::decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < NONCE + TAG {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG);
        // verify_slice compares in constant time.
        self.tag(nonce, ciphertext).verify_slice(tag).ok()?;
        let mut data = ciphertext.to_vec();
        self.keystream_xor(nonce, &mut data);
        String::from_utf8(data).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> SealKey {
        SealKey::from_secret(secret).expect("key")
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_hide_the_plaintext() {
        let k = key(b"a server secret of at least 32 bytes!!");
        for text in [
            "",
            "p",
            "a much longer password that spans several keystream blocks!",
        ] {
            let sealed = k.seal(text);
            assert!(sealed.starts_with("v1:"));
            if !text.is_empty() {
                assert!(!sealed.contains(&hex::encode(text)));
            }
            assert_eq!(k.unseal(&sealed).as_deref(), Some(text));
            assert_ne!(k.seal(text), sealed, "fresh nonce each time");
        }
        let sealed = k.seal("hunter2");
        assert_eq!(
            key(b"another server secret, 32 bytes long!").unseal(&sealed),
            None
        );
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 40;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(k.unseal(&String::from_utf8(altered).expect("utf8")), None);
        assert_eq!(k.unseal("v1:zz"), None);
        assert_eq!(k.unseal("hunter2"), None);
    }
}
