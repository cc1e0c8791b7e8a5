//! The event receiver: a small HTTP/1.1 server standing in for an event
//! endpoint. It answers 204 to every POST and counts what it got: requests,
//! distinct `webhook-id`s, and those by the body's `type`. It checks no
//! signature and keeps nothing else, so it costs the load tool little.
//!
//! The service sends each event with a `Content-Length` body over
//! keep-alive connections (reqwest), which is all this server reads: a
//! chunked request is answered 411 and its connection closed, so such a
//! delivery would show up as undelivered rather than be miscounted.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head accepted; the service's are well under 1 KiB.
const MAX_HEAD: usize = 64 * 1024;
/// The largest body accepted; an event is a few hundred bytes.
const MAX_BODY: usize = 1024 * 1024;

/// What the receiver got so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// POSTs answered 204, repeats included.
    pub requests: u64,
    /// Distinct `webhook-id`s (the service delivers at least once, so a
    /// repeat is allowed; it is not counted twice here).
    pub distinct: u64,
    /// Distinct events by their `type`.
    pub by_type: BTreeMap<String, u64>,
    /// Requests answered anything but 204 (not a POST, no length, too big).
    pub refused: u64,
}

impl Counts {
    /// Distinct events of one type.
    pub fn of_type(&self, kind: &str) -> u64 {
        self.by_type.get(kind).copied().unwrap_or(0)
    }
}

/// How often one `webhook-id` arrived, and when it first did.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub count: u32,
    pub first: Instant,
}

#[derive(Default)]
struct State {
    counts: Counts,
    seen: HashMap<String, Arrival>,
}

/// A running receiver; it stops with the runtime.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    pub async fn start(addr: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("the event receiver cannot listen on {addr}"))?;
        let addr = listener.local_addr().unwrap_or(addr);
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Ok(Self { addr, state })
    }

    pub fn counts(&self) -> Counts {
        self.state
            .lock()
            .map(|s| s.counts.clone())
            .unwrap_or_default()
    }

    /// Every `webhook-id` received so far: how often, and when first.
    pub fn arrivals(&self) -> HashMap<String, Arrival> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }
}

/// The parts of a request head the receiver needs.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    post: bool,
    content_length: Option<usize>,
    chunked: bool,
    webhook_id: Option<String>,
    close: bool,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next()?;
    let mut parts = request_line.split(' ');
    let method = parts.next()?;
    let _target = parts.next()?;
    let version = parts.next()?;
    let mut parsed = Head {
        post: method == "POST",
        content_length: None,
        chunked: false,
        webhook_id: None,
        close: version != "HTTP/1.1",
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("webhook-id") {
            parsed.webhook_id = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                parsed.close = true;
            } else if value.contains("keep-alive") {
                parsed.close = false;
            }
        }
    }
    Some(parsed)
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn record(state: &Mutex<State>, head: &Head, body: &[u8]) {
    let kind = serde_json::from_slice::<Body>(body)
        .ok()
        .and_then(|b| b.kind)
        .unwrap_or_else(|| "(no type)".to_string());
    let Ok(mut state) = state.lock() else { return };
    state.counts.requests += 1;
    let new = match &head.webhook_id {
        Some(id) => match state.seen.get_mut(id) {
            Some(arrival) => {
                arrival.count += 1;
                false
            }
            None => {
                let first = Instant::now();
                state.seen.insert(id.clone(), Arrival { count: 1, first });
                true
            }
        },
        // Nothing to tell a repeat by: every one counts.
        None => true,
    };
    if new {
        state.counts.distinct += 1;
        *state.counts.by_type.entry(kind).or_default() += 1;
    }
}

fn refused(state: &Mutex<State>) {
    if let Ok(mut state) = state.lock() {
        state.counts.refused += 1;
    }
}

const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

fn error_response(status: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_bytes()
}

/// One connection: requests one after the other until the peer closes it.
async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buffer: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if buffer.len() > MAX_HEAD {
                refused(&state);
                let _ = stream
                    .write_all(&error_response("431 Request Header Fields Too Large"))
                    .await;
                return;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let Some(head) = parse_head(&buffer[..head_end - 4]) else {
            refused(&state);
            let _ = stream.write_all(&error_response("400 Bad Request")).await;
            return;
        };
        if head.chunked {
            refused(&state);
            let _ = stream
                .write_all(&error_response("411 Length Required"))
                .await;
            return;
        }
        let length = head.content_length.unwrap_or(0);
        if length > MAX_BODY {
            refused(&state);
            let _ = stream
                .write_all(&error_response("413 Content Too Large"))
                .await;
            return;
        }
        let end = head_end + length;
        while buffer.len() < end {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        if !head.post {
            refused(&state);
            let _ = stream
                .write_all(&error_response("405 Method Not Allowed"))
                .await;
            return;
        }
        record(&state, &head, &buffer[head_end..end]);
        if stream.write_all(NO_CONTENT).await.is_err() || head.close {
            return;
        }
        buffer.drain(..end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_for_what_the_receiver_needs() {
        let head = parse_head(
            b"POST /events HTTP/1.1\r\ncontent-type: application/json\r\nWebhook-Id: msg_1\r\nContent-Length: 12",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                post: true,
                content_length: Some(12),
                chunked: false,
                webhook_id: Some("msg_1".into()),
                close: false,
            }
        );
        let head = parse_head(b"GET / HTTP/1.0\r\ntransfer-encoding: chunked\r\nconnection: close")
            .unwrap();
        assert!(!head.post && head.chunked && head.close && head.content_length.is_none());
        assert!(parse_head(b"POST / HTTP/1.1\r\ncontent-length: x").is_none());
        assert!(parse_head(b"nonsense").is_none());
    }

    #[tokio::test]
    async fn posts_are_answered_204_and_counted_once_per_id() {
        let receiver = Receiver::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let url = format!("http://{}/events", receiver.addr);
        let http = reqwest::Client::new();
        for (id, kind) in [
            ("a", "passkey.login"),
            ("b", "passkey.login"),
            ("a", "passkey.login"),
            ("c", "passkey.registered"),
        ] {
            let response = http
                .post(&url)
                .header("webhook-id", id)
                .body(format!(r#"{{"type":"{kind}","data":{{}}}}"#))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 204);
        }
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 405);
        let counts = receiver.counts();
        assert_eq!((counts.requests, counts.distinct), (4, 3));
        assert_eq!(counts.of_type("passkey.login"), 2);
        assert_eq!(counts.of_type("passkey.registered"), 1);
        assert_eq!(counts.refused, 1);
    }
}
