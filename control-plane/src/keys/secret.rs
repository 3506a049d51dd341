//! API key material: `mg_<12 hex id>_<64 hex secret>`.
//!
//! The id part names the key (`key_<id>`) and, with `mg_`, forms its visible prefix, so the
//! data plane finds the key record by prefix before comparing hashes. The secret part is 32
//! bytes from the thread-local CSPRNG.
//!
//! Only `SHA-256(plaintext)` (hex) is stored. A plain hash is enough here, unlike for
//! passwords: the secret has 256 bits of entropy, so the hash can be neither guessed nor
//! brute-forced, and no salt, stretching or server-side pepper adds anything. It also lets
//! the data plane check a presented key from the snapshot alone, without sharing a server
//! secret with every proxy.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The visible part every key starts with.
pub const PLAINTEXT_PREFIX: &str = "mg_";

/// Identity of a new key: its resource id and its visible prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    /// `key_<12 hex>`.
    pub id: String,
    /// `mg_<12 hex>`, the same 12 hex digits.
    pub prefix: String,
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A fresh key identity: 48 random bits, so ids of a tenant's keys do not reveal their
/// order or count; a collision (unique prefix) is refused by the store.
pub fn new_identity() -> KeyIdentity {
    let part = random_hex::<6>();
    KeyIdentity {
        id: format!("key_{part}"),
        prefix: format!("{PLAINTEXT_PREFIX}{part}"),
    }
}

/// A fresh plaintext for the key with this prefix, shown to the caller once.
pub fn new_plaintext(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex::<32>())
}

/// What is stored and shipped to the data plane for a plaintext.
pub fn sha256_hex(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_has_the_documented_shape() {
        let identity = new_identity();
        assert_eq!(identity.prefix.len(), 3 + 12);
        assert_eq!(identity.id[4..], identity.prefix[3..]);
        let key = new_plaintext(&identity.prefix);
        let (prefix, secret) = key.rsplit_once('_').expect("two parts");
        assert_eq!(prefix, identity.prefix);
        assert_eq!(secret.len(), 64);
        assert!(secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(key, new_plaintext(&identity.prefix), "fresh every time");
        assert_eq!(sha256_hex(&key).len(), 64);
    }
}
