//! Server-sent events from an OpenAI-compatible upstream: metering, and hiding the usage chunk
//! the gateway asked for on the client's behalf.
//!
//! Chunks may split events anywhere, so complete events (ending in a blank line) are
//! forwarded as they complete and the rest waits in a line buffer.

use bytes::Bytes;
use serde_json::Value;

/// Token usage as reported by the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Reads `usage` out of an OpenAI response object (chat, completions or embeddings).
pub fn usage_of(value: &Value) -> Option<Usage> {
    let usage = value.get("usage")?;
    if usage.is_null() {
        return None;
    }
    let input = usage
        .get("prompt_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let output = usage
        .get("completion_tokens")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| {
            let total = usage
                .get("total_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(input);
            total.saturating_sub(input)
        });
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
    })
}

/// Meters one SSE stream.
#[derive(Debug, Default)]
pub struct SseMeter {
    hide_usage_chunk: bool,
    pending: Vec<u8>,
    /// Usage from the stream's final chunk, if it came.
    pub usage: Option<Usage>,
    /// Characters of generated text seen (for estimating when usage never comes).
    pub content_chars: u64,
    /// Whether any generated text has been seen yet.
    pub saw_content: bool,
}

impl SseMeter {
    /// `hide_usage_chunk`: the client did not ask for usage, the gateway did; drop that chunk.
    pub fn new(hide_usage_chunk: bool) -> Self {
        Self {
            hide_usage_chunk,
            ..Self::default()
        }
    }

    /// Feeds one upstream chunk and returns what to send downstream now.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(pending.len());
        let mut start = 0;
        while let Some((end, sep)) = find_event_end(&pending[start..]) {
            let event_end = start + end + sep;
            if self.keep(&pending[start..start + end]) {
                out.extend_from_slice(&pending[start..event_end]);
            }
            start = event_end;
        }
        pending.drain(..start);
        self.pending = pending;
        Bytes::from(out)
    }

    /// What is left when the upstream ends (an unterminated last event).
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.pending);
        if rest.iter().all(u8::is_ascii_whitespace) || !self.keep(&rest) {
            return Bytes::new();
        }
        Bytes::from(rest)
    }

    /// Inspects one event; false when it must not reach the client.
    fn keep(&mut self, event: &[u8]) -> bool {
        let mut keep = true;
        for line in event.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if data == b"[DONE]" {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<Value>(data) else {
                continue;
            };
            if let Some(choices) = value.get("choices").and_then(Value::as_array) {
                for choice in choices {
                    let text = choice
                        .get("delta")
                        .and_then(|d| d.get("content"))
                        .or_else(|| choice.get("text"))
                        .and_then(Value::as_str);
                    if let Some(text) = text {
                        if !text.is_empty() {
                            self.saw_content = true;
                            self.content_chars += text.chars().count() as u64;
                        }
                    }
                }
            }
            if let Some(usage) = usage_of(&value) {
                self.usage = Some(usage);
                let only_usage = value
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
                if self.hide_usage_chunk && only_usage {
                    keep = false;
                }
            }
        }
        keep
    }
}

/// Position of the blank line ending the first complete event, and the separator length.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\" world\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn usage_is_read_and_passed_through_when_the_client_asked() {
        let mut m = SseMeter::new(false);
        let out = m.feed(STREAM.as_bytes());
        assert_eq!(out, STREAM.as_bytes());
        assert_eq!(
            m.usage,
            Some(Usage {
                input_tokens: 7,
                output_tokens: 2
            })
        );
        assert_eq!(m.content_chars, 11);
    }

    #[test]
    fn the_injected_usage_chunk_is_hidden() {
        let mut m = SseMeter::new(true);
        let out = String::from_utf8(m.feed(STREAM.as_bytes()).to_vec()).expect("utf8");
        assert!(!out.contains("usage"), "{out}");
        assert!(out.ends_with("data: [DONE]\n\n"));
        assert_eq!(m.usage.map(|u| u.input_tokens), Some(7));
    }

    #[test]
    fn events_split_across_chunks_at_every_byte_are_reassembled() {
        for split in 1..STREAM.len() {
            let mut m = SseMeter::new(true);
            let mut out = m.feed(&STREAM.as_bytes()[..split]).to_vec();
            out.extend_from_slice(&m.feed(&STREAM.as_bytes()[split..]));
            out.extend_from_slice(&m.finish());
            let expected = STREAM.replace(
                "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
                "",
            );
            assert_eq!(
                String::from_utf8(out).expect("utf8"),
                expected,
                "split at {split}"
            );
            assert_eq!(m.usage.map(|u| u.output_tokens), Some(2));
        }
    }

    #[test]
    fn crlf_events_are_understood() {
        let mut m = SseMeter::new(false);
        m.feed(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3}}\r\n\r\n");
        assert_eq!(m.usage.map(|u| u.output_tokens), Some(3));
    }
}
