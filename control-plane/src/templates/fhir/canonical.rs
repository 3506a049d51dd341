//! The canonical JSON form of an export: one byte sequence per document, so two exports of
//! the same form can be compared (and hashed) as bytes.
//!
//! The form, which follows RFC 8785 (JCS) except for number spelling:
//! - no insignificant whitespace at all (no newline at the end either);
//! - object members sorted by key, comparing Unicode code points (for the ASCII keys of FHIR
//!   this is plain byte order); `resourceType` is therefore not first, which FHIR JSON allows;
//! - arrays keep their order (order is meaning in a Questionnaire);
//! - strings are UTF-8 as they are, escaping only `"`, `\` and the control characters below
//!   U+0020: `\b \t \n \f \r` by name, the others as `\u00xx` in lowercase hex;
//! - integers in plain decimal digits; decimals in the shortest form that reads back to the
//!   same binary64 (Rust's formatting through `serde_json`): `36.5`, `120.0`, `1e-7`,
//!   `1e16`; never NaN or infinity;
//! - empty arrays and objects and `false` flags (`required`, `repeats`, `readOnly`,
//!   `initialSelected`) are left out by the exporter rather than written.
//!
//! For documents whose decimals need no exponent, the result equals Python's
//! `json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.

use std::fmt::Write;

use serde_json::Value as Json;

/// The canonical text of `value`.
pub fn to_string(value: &Json) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // serde_json prints integers as digits and floats through ryu (shortest round trip).
        Json::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Json::String(s) => string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(key, out);
                out.push(':');
                write(item, out);
            }
            out.push('}');
        }
    }
}

fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::to_string;
    use serde_json::json;

    #[test]
    fn keys_sorted_no_whitespace_numbers_and_escapes() {
        let doc = json!({ "b": [1, 2.5, 120.0, -0.001], "a": { "z": true, "y": null },
                          "s": "引号\"\\\n\u{1}é" });
        assert_eq!(
            to_string(&doc),
            r#"{"a":{"y":null,"z":true},"b":[1,2.5,120.0,-0.001],"s":"引号\"\\\n\u0001é"}"#
        );
        let reparsed: serde_json::Value = serde_json::from_str(&to_string(&doc)).expect("json");
        assert_eq!(
            to_string(&reparsed),
            to_string(&doc),
            "stable under reparse"
        );
    }
}
