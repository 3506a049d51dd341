//! Reading and rewriting an inference request body.

use bytes::Bytes;
use pingora::proxy::Session;
use serde_json::{Map, Value};

use crate::openai_error::GatewayError;

/// Which OpenAI operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Completions,
    Embeddings,
}

impl Operation {
    /// Path suffix under the upstream's base URL.
    pub fn upstream_suffix(self) -> &'static str {
        match self {
            Operation::Chat => "/chat/completions",
            Operation::Completions => "/completions",
            Operation::Embeddings => "/embeddings",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Completions => "completions",
            Operation::Embeddings => "embeddings",
        }
    }

    pub fn can_stream(self) -> bool {
        self != Operation::Embeddings
    }

    /// Whether the call generates output tokens (embeddings do not).
    pub fn produces_output(self) -> bool {
        self != Operation::Embeddings
    }
}

/// Reads the whole body, refusing more than `limit` bytes (413) before reading it when the
/// client announced its length.
pub async fn read_body(session: &mut Session, limit: u64) -> Result<Bytes, GatewayError> {
    let too_large = || {
        GatewayError::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("request body larger than {limit} bytes"),
        )
    };
    let announced = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(announced.unwrap_or(1024).min(limit) as usize);
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => {
                return Err(GatewayError::bad_request(
                    "unreadable_body",
                    "the request body could not be read",
                ));
            }
        }
    }
    Ok(Bytes::from(body))
}

/// A parsed request body and what the gateway changed in it.
#[derive(Debug)]
pub struct Body {
    pub fields: Map<String, Value>,
    pub original: Bytes,
    pub modified: bool,
}

impl Body {
    pub fn parse(bytes: Bytes) -> Result<Self, GatewayError> {
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            GatewayError::bad_request(
                "invalid_json",
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        match value {
            Value::Object(fields) => Ok(Self {
                fields,
                original: bytes,
                modified: false,
            }),
            _ => Err(GatewayError::bad_request(
                "invalid_json",
                "request body must be a JSON object",
            )),
        }
    }

    /// The `model` the client asked for.
    pub fn model(&self) -> Option<&str> {
        self.fields.get("model").and_then(Value::as_str)
    }

    pub fn set(&mut self, key: &str, value: Value) {
        if self.fields.get(key) != Some(&value) {
            self.fields.insert(key.to_owned(), value);
            self.modified = true;
        }
    }

    pub fn is_stream(&self) -> bool {
        self.fields.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// Asks the upstream for usage in the stream; true when the client had not asked itself
    /// (the usage chunk must then be hidden from it).
    pub fn request_stream_usage(&mut self) -> bool {
        let asked = self
            .fields
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        if asked {
            return false;
        }
        let mut options = match self.fields.remove("stream_options") {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        options.insert("include_usage".into(), Value::Bool(true));
        self.fields
            .insert("stream_options".into(), Value::Object(options));
        self.modified = true;
        true
    }

    /// The bytes to send upstream: the original when nothing changed.
    pub fn into_bytes(self) -> Bytes {
        if self.modified {
            Bytes::from(serde_json::to_vec(&Value::Object(self.fields)).unwrap_or_default())
        } else {
            self.original
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unmodified_bodies_are_forwarded_byte_for_byte() {
        let raw = Bytes::from_static(b"{ \"z\": 1,   \"model\": \"m\" }");
        let b = Body::parse(raw.clone()).expect("parses");
        assert_eq!(b.model(), Some("m"));
        assert_eq!(b.into_bytes(), raw);
    }

    #[test]
    fn stream_usage_is_requested_and_existing_options_kept() {
        let mut b = Body::parse(Bytes::from(
            json!({"stream": true, "stream_options": {"x": 1}}).to_string(),
        ))
        .expect("ok");
        assert!(b.request_stream_usage());
        assert_eq!(
            b.fields["stream_options"],
            json!({"x": 1, "include_usage": true})
        );
        let mut b = Body::parse(Bytes::from(
            json!({"stream": true, "stream_options": {"include_usage": true}}).to_string(),
        ))
        .expect("ok");
        assert!(!b.request_stream_usage(), "client asked itself");
        assert!(!b.modified);
    }

    #[test]
    fn non_objects_are_refused() {
        assert_eq!(
            Body::parse(Bytes::from_static(b"[1]"))
                .expect_err("array")
                .status,
            400
        );
        assert_eq!(
            Body::parse(Bytes::from_static(b"{"))
                .expect_err("broken")
                .status,
            400
        );
    }
}
