//! Request rewriting and usage scanning: pure functions over JSON and bytes, tested without a network.

use serde_json::Value;

/// Turns every message `content` that is an array of text parts into one string (parts joined by a blank
/// line). Arrays with any non-text part (an image) are left alone: flattening would lose it.
/// Returns whether anything changed.
pub fn flatten_content(request: &mut Value) -> bool {
    let Some(messages) = request.get_mut("messages").and_then(Value::as_array_mut) else {
        return false;
    };
    let mut changed = false;
    for m in messages {
        let Some(content) = m.get_mut("content") else {
            continue;
        };
        let Some(parts) = content.as_array() else {
            continue;
        };
        let texts: Option<Vec<&str>> = parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str),
                _ => None,
            })
            .collect();
        if let Some(texts) = texts {
            *content = Value::String(texts.join("\n\n"));
            changed = true;
        }
    }
    changed
}

/// Rewrites a chat-completions request body for the upstream: flattening (if asked) and, for streams,
/// `stream_options.include_usage` so the provider reports the tokens the gateway counts.
/// A body that is not a JSON object goes through unchanged.
pub fn rewrite_request(body: &[u8], flatten: bool) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    let mut changed = false;
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        let opts = obj
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(o) = opts.as_object_mut() {
            if o.get("include_usage") != Some(&Value::Bool(true)) {
                o.insert("include_usage".into(), Value::Bool(true));
                changed = true;
            }
        }
    }
    if flatten {
        changed |= flatten_content(&mut v);
    }
    if !changed {
        return None;
    }
    serde_json::to_vec(&v).ok()
}

/// Finds the token usage in a response as it streams by: SSE `data:` lines or one JSON body.
/// Keeps at most one partial line (bounded) between chunks.
#[derive(Debug, Default)]
pub struct UsageScanner {
    partial: Vec<u8>,
    whole: Vec<u8>,
    sse: Option<bool>,
    /// The last usage seen: (prompt tokens, completion tokens).
    pub usage: Option<(u64, u64)>,
    /// The model the provider named.
    pub model: Option<String>,
    /// Streamed chunks that carried generated text or a tool call: llama.cpp servers stream one token
    /// per chunk, so this stands in for the completion tokens when the stream reports no usage.
    pub content_chunks: u64,
}

/// A JSON body or an SSE line longer than this is not scanned (its usage is not counted).
const MAX_SCAN: usize = 4 << 20;

impl UsageScanner {
    /// Feeds the next chunk of the response body.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.sse.is_none() {
            let first = chunk.iter().find(|b| !b.is_ascii_whitespace());
            if let Some(b) = first {
                self.sse = Some(*b != b'{');
            }
        }
        match self.sse {
            Some(false) => {
                if self.whole.len() + chunk.len() <= MAX_SCAN {
                    self.whole.extend_from_slice(chunk);
                }
            }
            _ => self.feed_lines(chunk),
        }
    }

    fn feed_lines(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
            rest = &rest[i + 1..];
        }
        if self.partial.len() + rest.len() <= MAX_SCAN {
            self.partial.extend_from_slice(rest);
        }
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii()) {
            self.take(&v);
        }
    }

    fn take(&mut self, v: &Value) {
        if let Some(m) = v.get("model").and_then(Value::as_str) {
            self.model = Some(m.to_string());
        }
        let delta = &v["choices"][0]["delta"];
        if delta["content"].as_str().is_some_and(|c| !c.is_empty())
            || delta["tool_calls"].is_array()
        {
            self.content_chunks += 1;
        }
        let Some(u) = v.get("usage").filter(|u| u.is_object()) else {
            return;
        };
        // OpenAI names, then Anthropic's.
        let n = |a: &str, b: &str| {
            u.get(a)
                .or_else(|| u.get(b))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        self.usage = Some((
            n("prompt_tokens", "input_tokens"),
            n("completion_tokens", "output_tokens"),
        ));
    }

    /// Call at the end of the body: scans a JSON body or a last line without a newline.
    pub fn finish(&mut self) {
        if self.sse == Some(false) {
            if let Ok(v) = serde_json::from_slice::<Value>(&self.whole) {
                self.take(&v);
            }
        } else if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_parts_become_one_string_images_stay() {
        let mut v = json!({"messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
        ]});
        assert!(flatten_content(&mut v));
        assert_eq!(v["messages"][0]["content"], "sys");
        assert_eq!(v["messages"][1]["content"], "a\n\nb");
        assert!(v["messages"][2]["content"].is_array());
        assert!(!flatten_content(&mut v), "a second pass changes nothing");
    }

    #[test]
    fn streams_ask_for_usage_and_other_bodies_pass() {
        let out = rewrite_request(br#"{"stream":true,"messages":[]}"#, false).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(rewrite_request(br#"{"stream":false,"messages":[]}"#, true).is_none());
        assert!(rewrite_request(b"not json", true).is_none());
    }

    #[test]
    fn usage_from_sse_split_anywhere_and_from_json() {
        let sse = b"data: {\"model\":\"m\",\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
        for cut in 0..sse.len() {
            let mut s = UsageScanner::default();
            s.feed(&sse[..cut]);
            s.feed(&sse[cut..]);
            s.finish();
            assert_eq!(s.usage, Some((12, 3)), "cut at {cut}");
            assert_eq!(s.model.as_deref(), Some("m"));
        }
        let mut s = UsageScanner::default();
        s.feed(br#"{"model":"x","usage":{"input_tokens":4,"output_tokens":5}}"#);
        s.finish();
        assert_eq!(s.usage, Some((4, 5)));
        let mut none = UsageScanner::default();
        none.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" there\"}}]}\n\ndata: {\"choices\":[{\"delta\":{}}]}\n\n");
        none.finish();
        assert_eq!(none.usage, None);
        assert_eq!(none.content_chunks, 2);
    }
}
