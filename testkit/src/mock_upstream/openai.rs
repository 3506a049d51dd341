//! The OpenAI-compatible endpoints of the mock, as pure functions from a parsed request to a
//! [`Reply`]. Nothing here does I/O; the server turns a reply into an HTTP response.

use bytes::Bytes;
use serde_json::{json, Value};

use super::Behavior;

/// The one model the mock lists.
pub const MOCK_MODEL: &str = "mock-echo";
/// `created` of the listed model (fixed, so listings are deterministic).
const MODEL_CREATED: u64 = 1_700_000_000;
/// Default width of a mock embedding.
pub const EMBEDDING_DIMS: usize = 8;
/// Largest `dimensions` an embeddings request may ask for.
const MAX_EMBEDDING_DIMS: usize = 4096;

/// What to send back.
#[derive(Debug)]
pub(super) enum Reply {
    /// A complete JSON body (sent with `Content-Length`).
    Json { status: u16, body: Vec<u8> },
    /// Server-sent events, one `data: ...\n\n` per element.
    Stream(Vec<Bytes>),
}

/// Per-request values fixed by the server.
pub(super) struct Ctx<'a> {
    pub seq: u64,
    pub created: u64,
    pub behavior: &'a Behavior,
}

/// An OpenAI-style error envelope.
pub(super) fn error(status: u16, message: &str, param: Option<&str>, code: Option<&str>) -> Reply {
    let kind = if status >= 500 {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let body = json!({
        "error": { "message": message, "type": kind, "param": param, "code": code }
    });
    Reply::Json {
        status,
        body: to_vec(&body),
    }
}

/// `POST /v1/chat/completions`.
pub(super) fn chat_completions(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return error(
            400,
            "'messages' is a required property and must be an array",
            Some("messages"),
            None,
        );
    };
    let prompt_chars: usize = messages
        .iter()
        .map(|m| content_chars(m.get("content")))
        .sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    let text = last_user
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("ok");
    let echo = Echo::new(req, text, prompt_chars, ctx);
    let id = format!("chatcmpl-mock-{}", ctx.seq);

    if !echo.stream {
        let mut body = json!({
            "id": id,
            "object": "chat.completion",
            "created": ctx.created,
            "model": echo.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": echo.content },
                "logprobs": null,
                "finish_reason": "stop",
            }],
        });
        if echo.send_usage {
            body["usage"] = echo.usage();
        }
        return Reply::Json {
            status: 200,
            body: to_vec(&body),
        };
    }

    let chunk = |choices: Value| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": echo.model,
            "choices": choices,
        });
        if echo.include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let mut events = Vec::with_capacity(ctx.behavior.stream_chunks + 4);
    events.push(sse(&chunk(json!([{
        "index": 0,
        "delta": { "role": "assistant", "content": "" },
        "logprobs": null,
        "finish_reason": null,
    }]))));
    for piece in split_even(&echo.content, ctx.behavior.stream_chunks) {
        events.push(sse(&chunk(json!([{
            "index": 0,
            "delta": { "content": piece },
            "logprobs": null,
            "finish_reason": null,
        }]))));
    }
    events.push(sse(&chunk(json!([{
        "index": 0,
        "delta": {},
        "logprobs": null,
        "finish_reason": "stop",
    }]))));
    if echo.send_usage && echo.include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = echo.usage();
        events.push(sse(&last));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Reply::Stream(events)
}

/// `POST /v1/completions` (legacy text completions).
pub(super) fn completions(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let prompt = match req.get("prompt") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Array(items)) => items.first().and_then(Value::as_str),
        _ => None,
    };
    let prompt_chars = prompt.map_or(0, |p| p.chars().count());
    let echo = Echo::new(req, prompt.unwrap_or("ok"), prompt_chars, ctx);
    let id = format!("cmpl-mock-{}", ctx.seq);
    let chunk = |choices: Value| {
        let mut c = json!({
            "id": id,
            "object": "text_completion",
            "created": ctx.created,
            "model": echo.model,
            "choices": choices,
        });
        if echo.stream && echo.include_usage {
            c["usage"] = Value::Null;
        }
        c
    };

    if !echo.stream {
        let mut body = chunk(json!([{
            "text": echo.content,
            "index": 0,
            "logprobs": null,
            "finish_reason": "stop",
        }]));
        if echo.send_usage {
            body["usage"] = echo.usage();
        }
        return Reply::Json {
            status: 200,
            body: to_vec(&body),
        };
    }

    let mut events = Vec::with_capacity(ctx.behavior.stream_chunks + 3);
    for piece in split_even(&echo.content, ctx.behavior.stream_chunks) {
        events.push(sse(&chunk(json!([{
            "text": piece,
            "index": 0,
            "logprobs": null,
            "finish_reason": null,
        }]))));
    }
    events.push(sse(&chunk(json!([{
        "text": "",
        "index": 0,
        "logprobs": null,
        "finish_reason": "stop",
    }]))));
    if echo.send_usage && echo.include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = echo.usage();
        events.push(sse(&last));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Reply::Stream(events)
}

/// `POST /v1/embeddings`.
pub(super) fn embeddings(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let inputs: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => {
            match items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                Some(v) => v,
                None => return input_error(),
            }
        }
        _ => return input_error(),
    };
    let dims = match req.get("dimensions") {
        None | Some(Value::Null) => EMBEDDING_DIMS,
        Some(d) => match d.as_u64() {
            Some(n) if (1..=MAX_EMBEDDING_DIMS as u64).contains(&n) => n as usize,
            _ => {
                return error(
                    400,
                    "'dimensions' must be an integer between 1 and 4096",
                    Some("dimensions"),
                    None,
                )
            }
        },
    };
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let vector = embedding_of(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64_encode(&bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let chars: usize = inputs.iter().map(|s| s.chars().count()).sum();
    let tokens = estimate_tokens(chars);
    let mut body = json!({
        "object": "list",
        "data": data,
        "model": model_of(req),
    });
    if !ctx.behavior.omit_usage {
        body["usage"] = json!({ "prompt_tokens": tokens, "total_tokens": tokens });
    }
    Reply::Json {
        status: 200,
        body: to_vec(&body),
    }
}

/// `GET /v1/models`.
pub(super) fn list_models() -> Reply {
    Reply::Json {
        status: 200,
        body: to_vec(&json!({ "object": "list", "data": [model_object()] })),
    }
}

/// `GET /v1/models/{id}`.
pub(super) fn get_model(id: &str) -> Reply {
    if id == MOCK_MODEL {
        Reply::Json {
            status: 200,
            body: to_vec(&model_object()),
        }
    } else {
        error(
            404,
            &format!("The model '{id}' does not exist"),
            Some("model"),
            Some("model_not_found"),
        )
    }
}

fn model_object() -> Value {
    json!({
        "id": MOCK_MODEL,
        "object": "model",
        "created": MODEL_CREATED,
        "owned_by": "medgate-testkit",
    })
}

fn input_error() -> Reply {
    error(
        400,
        "'input' must be a string or a non-empty array of strings",
        Some("input"),
        None,
    )
}

/// The echoed answer of a chat or text completion, and its accounting.
struct Echo<'a> {
    model: &'a str,
    content: String,
    prompt_tokens: u64,
    completion_tokens: u64,
    stream: bool,
    include_usage: bool,
    send_usage: bool,
}

impl<'a> Echo<'a> {
    fn new(req: &'a Value, text: &str, prompt_chars: usize, ctx: &Ctx<'_>) -> Echo<'a> {
        let max_words = req
            .get("max_tokens")
            .and_then(Value::as_u64)
            .or_else(|| req.get("max_completion_tokens").and_then(Value::as_u64));
        let content = truncate_words(text, max_words);
        Echo {
            model: model_of(req),
            prompt_tokens: estimate_tokens(prompt_chars),
            completion_tokens: (content.split_whitespace().count() as u64).max(1),
            content,
            stream: req.get("stream").and_then(Value::as_bool) == Some(true),
            include_usage: req
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true),
            send_usage: !ctx.behavior.omit_usage,
        }
    }

    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

fn model_of(req: &Value) -> &str {
    req.get("model")
        .and_then(Value::as_str)
        .unwrap_or(MOCK_MODEL)
}

/// `ceil(chars / 4)`, at least 1.
pub(super) fn estimate_tokens(chars: usize) -> u64 {
    (chars.div_ceil(4) as u64).max(1)
}

/// Characters of a message `content`: a string, or the `text` of an array of parts.
fn content_chars(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(s)) => s.chars().count(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|t| t.chars().count())
            .sum(),
        _ => 0,
    }
}

/// The first `max` whitespace-separated words joined by single spaces, or `text` unchanged
/// when it has no more than `max` words (or `max` is unset).
pub(super) fn truncate_words(text: &str, max: Option<u64>) -> String {
    match max {
        Some(max) if text.split_whitespace().count() as u64 > max => text
            .split_whitespace()
            .take(max as usize)
            .collect::<Vec<_>>()
            .join(" "),
        _ => text.to_owned(),
    }
}

/// Splits `text` into exactly `n` pieces of (nearly) equal character counts whose
/// concatenation is `text`. Pieces may be empty when `text` has fewer than `n` characters.
pub(super) fn split_even(text: &str, n: usize) -> Vec<&str> {
    if n == 0 {
        return Vec::new();
    }
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars = bounds.len() - 1;
    (0..n)
        .map(|i| &text[bounds[i * chars / n]..bounds[(i + 1) * chars / n]])
        .collect()
}

/// A deterministic unit vector of `dims` floats derived from a hash of `text`.
pub(super) fn embedding_of(text: &str, dims: usize) -> Vec<f32> {
    // FNV-1a seeds a splitmix64 sequence.
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut values: Vec<f32> = (0..dims)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // 24 random bits -> [-1, 1)
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|v| *v /= norm);
    }
    values
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sse(chunk: &Value) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    // Serializing a `Value` cannot fail.
    serde_json::to_writer(&mut buf, chunk).unwrap_or_default();
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_even_covers_text() {
        assert_eq!(split_even("abcdefghij", 5), ["ab", "cd", "ef", "gh", "ij"]);
        assert_eq!(split_even("abc", 5).concat(), "abc");
        assert_eq!(split_even("abc", 5).len(), 5);
        assert_eq!(split_even("", 3), ["", "", ""]);
        assert!(split_even("abc", 0).is_empty());
        let text = "héllo wörld ✓ ünïcode";
        let parts = split_even(text, 4);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn truncation_and_estimates() {
        assert_eq!(truncate_words("a b  c d", Some(2)), "a b");
        assert_eq!(truncate_words("a b  c", Some(3)), "a b  c");
        assert_eq!(truncate_words("a b", None), "a b");
        assert_eq!(estimate_tokens(0), 1);
        assert_eq!(estimate_tokens(4), 1);
        assert_eq!(estimate_tokens(5), 2);
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding_of("hello", 8);
        assert_eq!(a, embedding_of("hello", 8));
        assert_ne!(a, embedding_of("hellp", 8));
        let norm: f32 = a.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
