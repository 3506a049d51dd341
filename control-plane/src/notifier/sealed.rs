//! Secrets at rest (the SMTP password, the notification webhook's signing secret, domain
//! private keys, and any other module's secret that must be read back): sealed with a key
//! derived from the server secret, never in plaintext.
//!
//! The server secret is the one recharge cards use (`auth.hmac_secret`, else the HS256 JWT
//! secret; see `billing::cards::keys`). The sealing key is `HMAC-SHA256(secret, LABEL)`, so it
//! is independent of every other use of that secret. A value is sealed with ChaCha20-Poly1305
//! (`ring`'s AEAD) under a fresh random 96-bit nonce, with `LABEL` as associated data. Stored
//! form: `v2:` + hex(nonce || ciphertext || tag).
//!
//! Changing the server secret makes sealed values unreadable: the notifier then reports
//! "set it again" instead of sending with a wrong secret.

use hmac::{Hmac, Mac};
use medgate_config::Settings;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use sha2::Sha256;

use crate::error::{ApiError, ApiResult};

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"medgate/settings/secret-seal/v2";
const PREFIX: &str = "v2:";

/// The sealing key, derived from the server secret.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

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
        Ok(SealKey(mac.finalize().into_bytes().into()))
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

    fn aead(&self) -> LessSafeKey {
        // A 32-byte key is exactly what ChaCha20-Poly1305 takes, so this cannot fail.
        LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &self.0).unwrap_or_else(|_| unreachable!()),
        )
    }

    /// The sealed form of `plaintext`.
    pub fn seal(&self, plaintext: &str) -> String {
        self.seal_bound("", plaintext.as_bytes())
    }

    /// The plaintext of a value sealed by [`SealKey::seal`]; None when it was sealed with
    /// another secret or altered.
    pub fn unseal(&self, sealed: &str) -> Option<String> {
        String::from_utf8(self.unseal_bound("", sealed)?).ok()
    }

    /// Seals `plaintext` bound to `context` (e.g. the id of the row holding it): it opens only
    /// with the same context, so a sealed value copied to another row is refused.
    pub fn seal_bound(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut data = plaintext.to_vec();
        // Sealing fails only for inputs beyond ChaCha20's 256 GiB limit.
        let sealed = self.aead().seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated(context)),
            &mut data,
        );
        debug_assert!(sealed.is_ok());
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        format!("{PREFIX}{}", hex::encode(out))
    }

    /// The plaintext of a value sealed by [`SealKey::seal_bound`] with `context`.
    pub fn unseal_bound(&self, context: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = hex::decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = rest.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(associated(context)), &mut data)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The associated data: the label, then the context.
fn associated(context: &str) -> Vec<u8> {
    [LABEL, b"\0", context.as_bytes()].concat()
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
            "a much longer password that spans several ChaCha20 blocks, well beyond sixty-four bytes of text",
        ] {
            let sealed = k.seal(text);
            assert!(sealed.starts_with("v2:"));
            // A one-byte text's two hex digits occur in random hex by chance,
            // so only texts long enough to be unmistakable are checked.
            if text.len() >= 8 {
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
        assert_eq!(k.unseal("v2:zz"), None);
        assert_eq!(k.unseal("v2:00"), None);
        assert_eq!(k.unseal("hunter2"), None);
    }
}
