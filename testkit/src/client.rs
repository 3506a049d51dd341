//! A small JSON client bound to one token.

use reqwest::Method;
use serde_json::Value;

/// HTTP client for the management API, optionally carrying a bearer token.
#[derive(Clone)]
pub struct Client {
    pub base_url: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

/// Status, headers and parsed body of one call.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// The error code of an error envelope.
    pub fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

impl Client {
    pub fn new(base_url: &str, token: Option<String>) -> Self {
        Self {
            base_url: base_url.to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    pub fn with_token(&self, token: Option<String>) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Any method, optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base_url, path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::reply(request.send().await.expect("request sent")).await
    }

    /// A raw body with a chosen content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base_url, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        Self::reply(request.send().await.expect("request sent")).await
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }
}
