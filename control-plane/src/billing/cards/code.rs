//! Recharge-card codes (billing-medical.md §2.6): 16 Crockford base32 symbols carrying 80
//! random bits, plus one Crockford check symbol (the value modulo 37), shown as
//! `XXXX-XXXX-XXXX-XXXX-C`.
//!
//! Contract:
//! * [`Code::parse`] ignores hyphens, ASCII whitespace and case, and reads `I`/`L` as `1`
//!   and `O` as `0` (Crockford's decoding rules). It refuses a wrong length, a symbol outside
//!   the alphabet and a check symbol that does not match, all without touching any store, so
//!   a typo never counts as a guess.
//! * The check symbol detects every single-symbol substitution and every adjacent
//!   transposition: 37 is prime and divides neither a symbol difference (1..=31), nor a
//!   power of 32, nor 31 (= 32 - 1); a swap of the last data symbol `X` and the check symbol
//!   `C` passes only if `C == X`, i.e. if nothing changed.
//! * [`Code::canonical`] (17 upper-case symbols, no separators) is what gets hashed;
//!   [`Code::hint`] (its last 4 symbols) is what may be stored and shown in clear.
//! * `Debug` never prints the value, so a code cannot leak through a log line.

use rand::RngCore;

/// The 32 data symbols: `0-9 A-Z` without `I L O U`.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// The 37 check symbols: the data symbols, then `* ~ $ = U` for 32 to 36.
pub const CHECK_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U";
/// Data symbols in a code.
pub const DATA_SYMBOLS: usize = 16;
/// Random bits in a code (5 per data symbol).
pub const BITS: u32 = 80;
/// Longest input [`Code::parse`] looks at (a code with generous separators).
pub const MAX_INPUT: usize = 64;

const MASK: u128 = (1u128 << BITS) - 1;

/// An 80-bit card code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(u128);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(..)")
    }
}

/// Why a text is not a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a code has 16 symbols and a check symbol")]
    Length,
    #[error("a code uses the symbols 0-9 and A-Z without U")]
    Symbol,
    #[error("the check symbol does not match; the code was mistyped")]
    Check,
}

impl Code {
    /// The first 10 bytes (80 bits) of `bytes`, big-endian.
    pub fn from_bytes(bytes: &[u8; 10]) -> Code {
        let value = bytes.iter().fold(0u128, |v, b| (v << 8) | u128::from(*b));
        Code(value & MASK)
    }

    /// A fresh code from the thread-local CSPRNG (`rand::rng()`, ChaCha12 seeded from the OS).
    pub fn random() -> Code {
        let mut bytes = [0u8; 10];
        rand::rng().fill_bytes(&mut bytes);
        Code::from_bytes(&bytes)
    }

    /// The 80-bit value.
    pub fn value(self) -> u128 {
        self.0
    }

    /// The check symbol: the value modulo 37 in [`CHECK_ALPHABET`].
    pub fn check_symbol(self) -> char {
        char::from(CHECK_ALPHABET[usize::try_from(self.0 % 37).unwrap_or_default()])
    }

    /// The 17 symbols (data then check), upper case, no separators: the hashed form.
    pub fn canonical(self) -> String {
        let mut out = String::with_capacity(DATA_SYMBOLS + 1);
        for i in (0..DATA_SYMBOLS).rev() {
            let digit = (self.0 >> (5 * i)) & 0x1f;
            out.push(char::from(
                ALPHABET[usize::try_from(digit).unwrap_or_default()],
            ));
        }
        out.push(self.check_symbol());
        out
    }

    /// The printed form, `XXXX-XXXX-XXXX-XXXX-C`.
    pub fn display(self) -> String {
        let canonical = self.canonical();
        let mut out = String::with_capacity(21);
        for (i, c) in canonical.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }

    /// The last 4 symbols of the canonical form (3 data symbols and the check symbol): a
    /// non-secret hint for support, leaving 65 unknown bits.
    pub fn hint(self) -> String {
        let canonical = self.canonical();
        canonical[canonical.len() - 4..].to_owned()
    }

    /// Reads a code as typed (see the module contract).
    pub fn parse(text: &str) -> Result<Code, CodeError> {
        if text.len() > MAX_INPUT {
            return Err(CodeError::Length);
        }
        let symbols: Vec<u8> = text
            .bytes()
            .filter(|b| *b != b'-' && !b.is_ascii_whitespace())
            .map(|b| b.to_ascii_uppercase())
            .collect();
        let Some((check, data)) = symbols.split_last() else {
            return Err(CodeError::Length);
        };
        if data.len() != DATA_SYMBOLS {
            return Err(CodeError::Length);
        }
        let mut value = 0u128;
        for symbol in data {
            value = (value << 5) | u128::from(data_value(*symbol).ok_or(CodeError::Symbol)?);
        }
        let check = check_value(*check).ok_or(CodeError::Symbol)?;
        if u128::from(check) != value % 37 {
            return Err(CodeError::Check);
        }
        Ok(Code(value))
    }
}

/// The value of an upper-case data symbol, with Crockford's aliases.
fn data_value(symbol: u8) -> Option<u8> {
    let symbol = match symbol {
        b'I' | b'L' => b'1',
        b'O' => b'0',
        other => other,
    };
    ALPHABET
        .iter()
        .position(|s| *s == symbol)
        .and_then(|p| u8::try_from(p).ok())
}

/// The value of an upper-case check symbol.
fn check_value(symbol: u8) -> Option<u8> {
    match symbol {
        b'*' => Some(32),
        b'~' => Some(33),
        b'$' => Some(34),
        b'=' => Some(35),
        b'U' => Some(36),
        other => data_value(other),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn display_round_trips_and_has_the_documented_shape() {
        for _ in 0..1_000 {
            let code = Code::random();
            let shown = code.display();
            assert_eq!(shown.len(), 21);
            let groups: Vec<&str> = shown.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [4, 4, 4, 4, 1]
            );
            assert_eq!(Code::parse(&shown), Ok(code));
            assert_eq!(Code::parse(&code.canonical()), Ok(code));
            assert_eq!(code.hint(), code.canonical()[13..]);
            assert!(code.value() < 1u128 << 80);
        }
    }

    #[test]
    fn case_hyphens_spaces_and_aliases_are_ignored() {
        let code = Code::from_bytes(&[0x08, 0x42, 0x10, 0x84, 0x21, 0x08, 0x42, 0x10, 0x84, 0x21]);
        // 0x0842108421... is 00001 00001 ... : every data symbol is `1`.
        let canonical = code.canonical();
        assert_eq!(&canonical[..16], "1111111111111111");
        let check = code.check_symbol();
        for typed in [
            format!("iiii-llll-1111-IiLl-{check}"),
            format!(" 1111 1111 1111 1111 {} ", check.to_ascii_lowercase()),
            format!("1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-{check}"),
        ] {
            assert_eq!(Code::parse(&typed), Ok(code), "{typed}");
        }
        let zero = Code::from_bytes(&[0; 10]);
        assert_eq!(Code::parse("oooo-OOOO-0000-o0O0-0"), Ok(zero));
    }

    #[test]
    fn malformed_input_is_refused() {
        let code = Code::random().canonical();
        assert_eq!(Code::parse(""), Err(CodeError::Length));
        assert_eq!(Code::parse(&code[..16]), Err(CodeError::Length));
        assert_eq!(Code::parse(&format!("{code}0")), Err(CodeError::Length));
        assert_eq!(Code::parse(&"-".repeat(65)), Err(CodeError::Length));
        let mut with_u = code.clone().into_bytes();
        with_u[0] = b'U';
        assert_eq!(
            Code::parse(&String::from_utf8(with_u).expect("ascii")),
            Err(CodeError::Symbol)
        );
        assert_eq!(Code::parse("1111-1111-1111-111!-0"), Err(CodeError::Symbol));
        assert!(Code::parse("１111-1111-1111-1111-0").is_err());
    }

    #[test]
    fn every_check_symbol_is_reachable_including_u() {
        let mut seen = HashSet::new();
        for v in 0u8..=255 {
            let code = Code::from_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0, v]);
            seen.insert(code.check_symbol());
            assert_eq!(Code::parse(&code.display()), Ok(code));
        }
        assert_eq!(seen.len(), 37);
        assert!(seen.contains(&'U') && seen.contains(&'$'));
    }

    /// B7: every single-symbol substitution and every adjacent transposition (including the
    /// swap of the last data symbol with the check symbol) of a sample of codes is refused.
    #[test]
    fn check_symbol_catches_substitutions_and_transpositions() {
        for _ in 0..500 {
            let code = Code::random().canonical().into_bytes();
            for i in 0..code.len() {
                let symbols: &[u8] = if i == DATA_SYMBOLS {
                    CHECK_ALPHABET
                } else {
                    ALPHABET
                };
                for s in symbols.iter().filter(|s| **s != code[i]) {
                    let mut typo = code.clone();
                    typo[i] = *s;
                    let typo = String::from_utf8(typo).expect("ascii");
                    assert!(Code::parse(&typo).is_err(), "substitution accepted: {typo}");
                }
            }
            for i in 0..code.len() - 1 {
                if code[i] == code[i + 1] {
                    continue;
                }
                let mut typo = code.clone();
                typo.swap(i, i + 1);
                let typo = String::from_utf8(typo).expect("ascii");
                assert!(
                    Code::parse(&typo).is_err(),
                    "transposition accepted: {typo}"
                );
            }
        }
    }

    /// B7: a million generated codes are distinct (80 bits each: a collision among 10^6
    /// would have probability ~4e-13).
    #[test]
    fn a_million_random_codes_are_distinct() {
        let codes: HashSet<u128> = (0..1_000_000).map(|_| Code::random().value()).collect();
        assert_eq!(codes.len(), 1_000_000);
    }
}
