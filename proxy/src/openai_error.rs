//! Errors in OpenAI's shape, so the official SDKs raise the right exception:
//! `{"error": {"message", "type", "param", "code"}}`.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use serde_json::json;

/// An error answer of the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: u16,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `rate_limit_error`, `api_error`.
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    /// Extra response headers (Retry-After, X-RateLimit-*, the degraded marker).
    pub headers: Vec<(&'static str, String)>,
}

impl GatewayError {
    pub fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "authentication_error", "invalid_api_key", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", code, message)
    }

    pub fn body(&self) -> Bytes {
        Bytes::from(
            json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
                .to_string(),
        )
    }

    /// Response header for this error (JSON, with its length).
    pub fn header(&self, request_id: &str, body_len: usize) -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(self.status, Some(4 + self.headers.len()))?;
        h.insert_header("content-type", "application/json")?;
        h.insert_header("content-length", body_len.to_string())?;
        h.insert_header("x-request-id", request_id)?;
        for (name, value) in &self.headers {
            h.insert_header(*name, value)?;
        }
        Ok(h)
    }
}
