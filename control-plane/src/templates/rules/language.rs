//! The language of validation messages, from `Accept-Language` (RFC 9110 §12.5.4): the
//! supported language (Chinese or English) with the highest weight; English when the header
//! is missing, unparsable or names neither.

use axum::http::{header, HeaderMap};
use schemars::JsonSchema;
use serde::Serialize;

use super::spec::Message;

/// A language messages are given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Zh,
}

impl Language {
    /// The language a request's `Accept-Language` asks for.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map_or(Language::En, Self::from_accept_language)
    }

    /// Parses an `Accept-Language` value, e.g. `zh-CN,zh;q=0.9,en;q=0.8`.
    pub fn from_accept_language(value: &str) -> Self {
        let mut best: Option<(f32, Language)> = None;
        for part in value.split(',').take(32) {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or_default().trim();
            let primary = tag.split('-').next().unwrap_or_default();
            let lang = if primary.eq_ignore_ascii_case("zh") {
                Language::Zh
            } else if primary.eq_ignore_ascii_case("en") {
                Language::En
            } else {
                continue;
            };
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Language::En, |(_, l)| l)
    }

    /// The text of `message` in this language.
    pub fn pick(self, message: &Message) -> &str {
        match self {
            Language::En => &message.en,
            Language::Zh => &message.zh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Language::{self, *};

    #[test]
    fn picks_the_preferred_supported_language() {
        for (header, want) in [
            ("", En),
            ("zh", Zh),
            ("zh-CN,zh;q=0.9,en;q=0.8", Zh),
            ("en-US,en;q=0.9,zh-CN;q=0.8", En),
            ("fr, zh-Hans;q=0.5", Zh),
            ("zh;q=0.3, en;q=0.7", En),
            ("zh;q=0", En),
            ("de, fr", En),
            ("ZH-tw", Zh),
            ("*;q=0.5, zh;q=0.1", Zh),
        ] {
            assert_eq!(Language::from_accept_language(header), want, "{header}");
        }
    }
}
