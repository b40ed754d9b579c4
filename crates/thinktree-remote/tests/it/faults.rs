//! The client against a misbehaving server on a raw socket: one that stalls, answers
//! slowly, drops the connection, sends a truncated, oversized or malformed body, or a
//! valid JSON body whose lengths disagree. Each ends in a typed error or a retry, within
//! the configured timeout, and never in a result built from a bad body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use thinktree_engine::{Engine, FinishReason};
use thinktree_remote::{DEFAULT_MAX_RESPONSE_BYTES, Error, RemoteEngine, RemoteOptions};

use crate::fake_server::{completion, gguf, one_line, params, remote_error};

/// What the server does with one request (requests are numbered from 0 over all
/// connections).
#[derive(Debug, Clone)]
enum Fault {
    /// Answer 200 with this body and keep the connection.
    Ok(String),
    /// Read the request and never answer; the socket stays open until the client closes.
    Stall,
    /// Send the headers and the first half of the body, then stall.
    StallMidBody(String),
    /// Send the answer in `chunks` pieces with `pause` before each.
    Dribble {
        body: String,
        chunks: usize,
        pause: Duration,
    },
    /// Close the connection right after reading the request.
    Drop,
    /// Announce `missing` more bytes than `body` holds, send `body`, close.
    Truncate { body: String, missing: usize },
    /// A 200 whose body is `head`, `fill` repeated `count` times, then `tail`; framed by
    /// Content-Length, or (when false) by closing the connection.
    Huge {
        head: String,
        fill: u8,
        count: usize,
        tail: String,
        content_length: bool,
    },
}

type Script = dyn Fn(usize) -> Fault + Send + Sync;

/// A raw HTTP/1.1 server on 127.0.0.1 that plays `script(request number)`.
struct RawServer {
    url: String,
    hits: Arc<AtomicUsize>,
    /// Body bytes the server managed to write (for the oversized bodies).
    written: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl RawServer {
    fn start(script: impl Fn(usize) -> Fault + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (h, w, st) = (hits.clone(), written.clone(), stop.clone());
        thread::spawn(move || {
            for sock in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(sock) = sock else { continue };
                let (h, w, script) = (h.clone(), w.clone(), script.clone());
                thread::spawn(move || serve(sock, &*script, &h, &w));
            }
        });
        Self {
            url: format!("http://{addr}"),
            hits,
            written,
            stop,
            addr,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Serves the requests of one connection until the client closes it or a fault ends it.
fn serve(sock: TcpStream, script: &Script, hits: &AtomicUsize, written: &AtomicUsize) {
    // A backstop: no test here keeps a connection open this long.
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = sock.try_clone().unwrap();
    let mut reader = BufReader::new(sock);
    loop {
        let Some(_request) = read_request(&mut reader) else {
            return;
        };
        let k = hits.fetch_add(1, Ordering::SeqCst);
        let header = |len: Option<usize>| match len {
            Some(n) => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n"
            ),
            None => {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                    .to_string()
            }
        };
        // Waits for the client to hang up, reading (and dropping) whatever it sends.
        let stall = |reader: &mut BufReader<TcpStream>| {
            let _ = std::io::copy(reader, &mut std::io::sink());
        };
        match script(k) {
            Fault::Ok(body) => {
                if out
                    .write_all(format!("{}{body}", header(Some(body.len()))).as_bytes())
                    .is_err()
                {
                    return;
                }
            }
            Fault::Stall => return stall(&mut reader),
            Fault::StallMidBody(body) => {
                let half = &body.as_bytes()[..body.len() / 2];
                let _ = out.write_all(header(Some(body.len())).as_bytes());
                let _ = out.write_all(half);
                return stall(&mut reader);
            }
            Fault::Dribble {
                body,
                chunks,
                pause,
            } => {
                if out.write_all(header(Some(body.len())).as_bytes()).is_err() {
                    return;
                }
                for piece in body.as_bytes().chunks(body.len().div_ceil(chunks)) {
                    thread::sleep(pause);
                    if out.write_all(piece).and_then(|()| out.flush()).is_err() {
                        return;
                    }
                }
            }
            Fault::Drop => {
                let _ = out.shutdown(Shutdown::Both);
                return;
            }
            Fault::Truncate { body, missing } => {
                let _ = out.write_all(header(Some(body.len() + missing)).as_bytes());
                let _ = out.write_all(body.as_bytes());
                let _ = out.shutdown(Shutdown::Both);
                return;
            }
            Fault::Huge {
                head,
                fill,
                count,
                tail,
                content_length,
            } => {
                let len = head.len() + count + tail.len();
                let _ = out.write_all(header(content_length.then_some(len)).as_bytes());
                let block = vec![fill; 64 << 10];
                let mut send = |bytes: &[u8]| {
                    out.write_all(bytes)
                        .map(|()| written.fetch_add(bytes.len(), Ordering::SeqCst))
                };
                let mut ok = send(head.as_bytes()).is_ok();
                let mut left = count;
                while ok && left > 0 {
                    let n = left.min(block.len());
                    ok = send(&block[..n]).is_ok();
                    left -= n;
                }
                if ok {
                    let _ = send(tail.as_bytes());
                }
                let _ = out.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Reads one request (headers and a Content-Length body); None at end of stream.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        assert!(
            !lower.starts_with("transfer-encoding"),
            "the fake reads Content-Length bodies only: {line}"
        );
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

/// An engine for `server` with a short timeout and quick retries.
fn engine(
    server: &RawServer,
    timeout: Duration,
    retries: u32,
) -> (tempfile::TempDir, RemoteEngine) {
    engine_with(
        RemoteOptions::new([server.url.as_str()]).timeout(timeout),
        retries,
    )
}

fn engine_with(opts: RemoteOptions, retries: u32) -> (tempfile::TempDir, RemoteEngine) {
    let (dir, path) = gguf();
    let opts = opts.retries(retries, BACKOFF);
    (dir, RemoteEngine::from_gguf(opts, &path).unwrap())
}

const BACKOFF: Duration = Duration::from_millis(20);

/// Backoff slept over `retries` retries (it doubles, from [`BACKOFF`]).
fn backoffs(retries: u32) -> Duration {
    (0..retries).map(|r| BACKOFF * (1 << r)).sum()
}

/// The client-side slack allowed on top of timeouts and backoffs.
const SLACK: Duration = Duration::from_millis(1500);

/// Samples one continuation for the prompt "Q\n"; returns the result and the time taken.
fn sample_one(
    e: &RemoteEngine,
    n: usize,
) -> (
    thinktree_engine::Result<Vec<thinktree_engine::Continuation<thinktree_remote::RemoteState>>>,
    Duration,
) {
    let (s, _) = e.extend(&e.root(), "Q\n").unwrap();
    let t = Instant::now();
    let r = e.sample(&s, n, &params()).map(|(c, _)| c);
    (r, t.elapsed())
}

fn assert_unavailable(r: &thinktree_engine::Result<impl std::fmt::Debug>, attempts: u32) -> String {
    let err = r.as_ref().expect_err("a typed error");
    match remote_error(err) {
        Error::Unavailable {
            attempts: a,
            last_error,
            ..
        } => {
            assert_eq!(*a, attempts, "{err}");
            last_error.clone()
        }
        other => panic!("expected Unavailable, got {other}"),
    }
}

fn protocol_reason(r: &thinktree_engine::Result<impl std::fmt::Debug>) -> String {
    let err = r.as_ref().expect_err("a typed error");
    match remote_error(err) {
        Error::Protocol { reason, .. } => reason.clone(),
        other => panic!("expected Protocol, got {other}"),
    }
}

// ---- (a) a server that stalls ----

#[test]
fn a_stalled_server_times_out_each_attempt_and_is_unavailable() {
    let server = RawServer::start(|_| Fault::Stall);
    let timeout = Duration::from_millis(400);
    let (_d, e) = engine(&server, timeout, 2);
    let (r, took) = sample_one(&e, 1);
    let last = assert_unavailable(&r, 3);
    assert!(last.contains("timeout"), "{last}");
    assert_eq!(server.hits(), 3);
    let floor = timeout * 3;
    let ceiling = floor + backoffs(2) + SLACK;
    assert!(
        took >= floor && took < ceiling,
        "took {took:?}, expected {floor:?}..{ceiling:?}"
    );
    eprintln!("stall: Unavailable after {took:?} (3 x {timeout:?})");
}

#[test]
fn a_stall_in_the_middle_of_the_body_times_out_too() {
    let server = RawServer::start(|_| Fault::StallMidBody(one_line()));
    let timeout = Duration::from_millis(400);
    let (_d, e) = engine(&server, timeout, 1);
    let (r, took) = sample_one(&e, 1);
    assert_unavailable(&r, 2);
    assert!(took < timeout * 2 + backoffs(1) + SLACK, "took {took:?}");
    eprintln!("stall mid-body: Unavailable after {took:?}");
}

#[test]
fn a_stall_then_an_answer_is_retried_and_succeeds() {
    let server = RawServer::start(|k| {
        if k == 0 {
            Fault::Stall
        } else {
            Fault::Ok(one_line())
        }
    });
    let timeout = Duration::from_millis(400);
    let (_d, e) = engine(&server, timeout, 2);
    let (r, took) = sample_one(&e, 1);
    let c = r.unwrap();
    assert_eq!(c[0].text, "Step one\n");
    assert_eq!((server.hits(), e.server_stats()[0].failures), (2, 1));
    assert!(
        took >= timeout && took < timeout + backoffs(1) + SLACK,
        "{took:?}"
    );
}

// ---- (b) a slow answer ----

#[test]
fn a_slow_answer_within_the_timeout_succeeds() {
    let server = RawServer::start(|_| Fault::Dribble {
        body: one_line(),
        chunks: 6,
        pause: Duration::from_millis(60),
    });
    let (_d, e) = engine(&server, Duration::from_secs(3), 2);
    let (r, took) = sample_one(&e, 1);
    let c = r.unwrap();
    assert_eq!(c[0].text, "Step one\n");
    assert_eq!(c[0].finish, FinishReason::Stop("\n".into()));
    assert_eq!(c[0].logprobs, vec![-0.5, -0.5]);
    assert_eq!(server.hits(), 1);
    assert!(took >= Duration::from_millis(360), "{took:?}");
    eprintln!("dribble: success after {took:?}");
}

/// Every byte arrives well within a per-read timeout, but the whole answer takes longer
/// than the request's: the limit holds end to end.
#[test]
fn an_answer_dribbled_past_the_timeout_is_cut_off() {
    let server = RawServer::start(|_| Fault::Dribble {
        body: one_line(),
        chunks: 8,
        pause: Duration::from_millis(150),
    });
    let timeout = Duration::from_millis(500);
    let (_d, e) = engine(&server, timeout, 1);
    let (r, took) = sample_one(&e, 1);
    assert_unavailable(&r, 2);
    assert!(took < timeout * 2 + backoffs(1) + SLACK, "took {took:?}");
    eprintln!("dribble past the timeout: Unavailable after {took:?}");
}

// ---- (c) dropped connections ----

#[test]
fn dropped_connections_are_retried_until_one_answers() {
    let server = RawServer::start(|k| {
        if k < 2 {
            Fault::Drop
        } else {
            Fault::Ok(one_line())
        }
    });
    let (_d, e) = engine(&server, Duration::from_secs(5), 3);
    let (r, took) = sample_one(&e, 1);
    assert_eq!(r.unwrap()[0].text, "Step one\n");
    assert_eq!((server.hits(), e.server_stats()[0].failures), (3, 2));
    eprintln!("drop x2 then answer: success after {took:?}");
}

#[test]
fn a_server_that_always_drops_is_unavailable() {
    let server = RawServer::start(|_| Fault::Drop);
    let (_d, e) = engine(&server, Duration::from_secs(5), 2);
    let (r, took) = sample_one(&e, 1);
    assert_unavailable(&r, 3);
    assert_eq!(server.hits(), 3);
    assert!(took < backoffs(2) + SLACK, "took {took:?}");
}

// ---- (d) truncated and malformed bodies ----

#[test]
fn a_body_shorter_than_its_content_length_is_retried_never_parsed() {
    let body = one_line();
    let cut = body[..body.len() - 10].to_string();
    let always = RawServer::start(move |_| Fault::Truncate {
        body: cut.clone(),
        missing: 10,
    });
    let (_d, e) = engine(&always, Duration::from_secs(5), 2);
    let (r, took) = sample_one(&e, 1);
    let last = assert_unavailable(&r, 3);
    assert!(last.contains("reading the response"), "{last}");
    assert_eq!(always.hits(), 3);
    assert!(took < backoffs(2) + SLACK, "took {took:?}");

    // A whole valid body sent short of its announced length is refused all the same.
    let whole = body.clone();
    let once = RawServer::start(move |k| {
        if k == 0 {
            Fault::Truncate {
                body: whole.clone(),
                missing: 100,
            }
        } else {
            Fault::Ok(completion(&[("Other\n", &["Other\n"], "stop")], 10, 0))
        }
    });
    let (_d, e) = engine(&once, Duration::from_secs(5), 2);
    let (r, _) = sample_one(&e, 1);
    assert_eq!(r.unwrap()[0].text, "Other\n", "the short body was not used");
    assert_eq!(once.hits(), 2);
}

#[test]
fn json_cut_in_the_middle_is_a_protocol_error_without_retry() {
    let body = one_line();
    let cut = body[..body.len() / 2].to_string();
    let server = RawServer::start(move |_| Fault::Ok(cut.clone()));
    let (_d, e) = engine(&server, Duration::from_secs(5), 3);
    let (r, _) = sample_one(&e, 1);
    let reason = protocol_reason(&r);
    assert!(reason.contains("EOF"), "{reason}");
    assert_eq!(server.hits(), 1, "a malformed answer is not retried");
}

#[test]
fn invalid_utf8_is_a_protocol_error() {
    let raw = RawServer::start(|_| {
        let body = one_line();
        let at = body.find("Step one").unwrap() + 5;
        Fault::Huge {
            head: body[..at].to_string(),
            fill: 0xff,
            count: 2,
            tail: body[at..].to_string(),
            content_length: true,
        }
    });
    let (_d, e) = engine(&raw, Duration::from_secs(5), 2);
    let reason = protocol_reason(&sample_one(&e, 1).0);
    assert!(reason.contains("invalid unicode"), "{reason}");
    assert_eq!(raw.hits(), 1);
}

// ---- (e) oversized bodies ----

fn too_large(r: &thinktree_engine::Result<impl std::fmt::Debug>) -> u64 {
    let err = r.as_ref().expect_err("a typed error");
    assert!(err.to_string().contains("exceeds the"), "{err}");
    match remote_error(err) {
        Error::ResponseTooLarge { limit, .. } => *limit,
        other => panic!("expected ResponseTooLarge, got {other}"),
    }
}

/// 40 MB of whitespace before a valid answer, announced by Content-Length: refused from
/// the header alone under the default 32 MiB limit, and not retried (see `pool.rs`).
#[test]
fn an_oversized_announced_body_is_refused_unread_and_not_retried() {
    let server = RawServer::start(|_| Fault::Huge {
        head: String::new(),
        fill: b' ',
        count: 40_000_000,
        tail: one_line(),
        content_length: true,
    });
    let (_d, e) = engine(&server, Duration::from_secs(10), 3);
    let (r, took) = sample_one(&e, 1);
    assert_eq!(too_large(&r), DEFAULT_MAX_RESPONSE_BYTES);
    assert_eq!(server.hits(), 1);
    assert!(took < SLACK, "took {took:?}");
    eprintln!("40 MB announced: ResponseTooLarge after {took:?}");
}

/// A giant string inside otherwise valid JSON, with no Content-Length (the body ends
/// when the connection closes): reading stops at the limit, so memory stays bounded.
#[test]
fn an_oversized_unannounced_body_is_read_no_further_than_the_limit() {
    let body = one_line();
    let at = body.find("Step one").unwrap();
    let (head, tail) = (body[..at].to_string(), body[at..].to_string());
    let total = 20_000_000;
    let server = RawServer::start(move |_| Fault::Huge {
        head: head.clone(),
        fill: b'x',
        count: total,
        tail: tail.clone(),
        content_length: false,
    });
    let limit = 1 << 20;
    let opts = RemoteOptions::new([server.url.as_str()])
        .timeout(Duration::from_secs(10))
        .max_response_bytes(limit);
    let (_d, e) = engine_with(opts, 3);
    let (r, took) = sample_one(&e, 1);
    assert_eq!(too_large(&r), limit);
    assert_eq!(server.hits(), 1);
    // The client hung up after about `limit` bytes; the rest sat in socket buffers at
    // most (a few MB on loopback).
    let written = server.written.load(Ordering::SeqCst);
    assert!(written < total / 2, "the server wrote {written} bytes");
    eprintln!(
        "20 MB unannounced, 1 MiB limit: ResponseTooLarge after {took:?}, server wrote {written} B"
    );

    // The default limit holds without Content-Length too.
    let body = one_line();
    let at = body.find("Step one").unwrap();
    let (head, tail) = (body[..at].to_string(), body[at..].to_string());
    let big = RawServer::start(move |_| Fault::Huge {
        head: head.clone(),
        fill: b'x',
        count: 40_000_000,
        tail: tail.clone(),
        content_length: false,
    });
    let (_d, e) = engine(&big, Duration::from_secs(10), 3);
    let (r, took) = sample_one(&e, 1);
    assert_eq!(too_large(&r), DEFAULT_MAX_RESPONSE_BYTES);
    assert_eq!(big.hits(), 1);
    eprintln!("40 MB unannounced: ResponseTooLarge after {took:?}");
}

#[test]
fn a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() {
    let body = one_line();
    let len = body.len() as u64;
    for framed in [true, false] {
        let b = body.clone();
        let server = RawServer::start(move |_| Fault::Huge {
            head: String::new(),
            fill: b' ',
            count: 0,
            tail: b.clone(),
            content_length: framed,
        });
        let at = |limit| {
            let opts = RemoteOptions::new([server.url.as_str()])
                .timeout(Duration::from_secs(5))
                .max_response_bytes(limit);
            let (_d, e) = engine_with(opts, 0);
            sample_one(&e, 1).0
        };
        assert_eq!(at(len).unwrap()[0].text, "Step one\n", "framed: {framed}");
        assert_eq!(too_large(&at(len - 1)), len - 1, "framed: {framed}");
    }
}

// ---- (f) valid JSON, wrong lengths ----

/// One choice in llama-cpp-python's shape.
fn choice(index: usize, tokens: &[&str], logprobs: &[Option<f32>], tops: usize) -> Value {
    json!({
        "index": index,
        "text": tokens.concat(),
        "finish_reason": "length",
        "logprobs": {
            "tokens": tokens,
            "token_logprobs": logprobs,
            "top_logprobs": (0..tops).map(|_| json!({"x": -0.5})).collect::<Vec<_>>(),
        }
    })
}

fn good(index: usize) -> Value {
    choice(index, &["a", "b"], &[Some(-0.5), Some(-0.5)], 2)
}

fn answer(choices: Vec<Value>, completion_tokens: u64) -> String {
    json!({
        "choices": choices,
        "usage": {"prompt_tokens": 3, "completion_tokens": completion_tokens},
    })
    .to_string()
}

/// Samples `n` from a server that always answers `body`; returns the Protocol reason and
/// the requests made (a malformed answer is not retried).
fn refused(body: String, n: usize) -> (String, usize) {
    let server = RawServer::start(move |_| Fault::Ok(body.clone()));
    let (_d, e) = engine(&server, Duration::from_secs(5), 2);
    let (r, _) = sample_one(&e, n);
    (protocol_reason(&r), server.hits())
}

#[test]
fn mismatched_logprob_lengths_are_protocol_errors() {
    let cases = [
        (
            choice(0, &["a", "b"], &[Some(-0.5)], 2),
            "2 tokens but 1 token_logprobs",
        ),
        (
            choice(0, &["a"], &[Some(-0.5), Some(-0.5)], 1),
            "1 tokens but 2 token_logprobs",
        ),
        (
            choice(0, &["a", "b"], &[Some(-0.5), Some(-0.5)], 3),
            "2 tokens but 3 top_logprobs",
        ),
        (
            choice(0, &["a", "b"], &[Some(-0.5), None], 2),
            "token_logprobs[1] is null",
        ),
    ];
    for (c, want) in cases {
        let (reason, hits) = refused(answer(vec![c], 10), 1);
        assert!(reason.contains(want), "{reason} (want {want})");
        assert_eq!(hits, 1);
    }
}

#[test]
fn wrong_choice_counts_and_indices_are_protocol_errors() {
    let cases = [
        (vec![good(0), good(1)], 3, "2 choices for the 3 asked for"),
        (
            vec![good(0), good(1), good(2)],
            2,
            "3 choices for the 2 asked for",
        ),
        (vec![good(0), good(0)], 2, "choice index 0 appears twice"),
        (vec![good(0), good(2)], 2, "choice index 2 is out of range"),
        (vec![good(1)], 1, "choice index 1 is out of range"),
        (vec![good(7)], 4, "choice index 7 is out of range"),
        (vec![], 1, "no choices"),
    ];
    for (choices, n, want) in cases {
        let (reason, hits) = refused(answer(choices, 100), n);
        assert!(reason.contains(want), "{reason} (want {want})");
        assert_eq!(hits, 1);
    }
}

/// The one-sample fallback checks each single request's answer too.
#[test]
fn a_fallback_request_answered_with_two_choices_is_a_protocol_error() {
    let server = RawServer::start(|k| {
        Fault::Ok(if k == 0 {
            answer(vec![good(0)], 2)
        } else {
            answer(vec![good(0), good(1)], 4)
        })
    });
    let (_d, e) = engine(&server, Duration::from_secs(5), 0);
    let (r, _) = sample_one(&e, 3);
    let reason = protocol_reason(&r);
    assert!(reason.contains("2 choices for the 1 asked for"), "{reason}");
}

#[test]
fn inconsistent_usage_is_a_protocol_error() {
    // Two choices of two tokens each, but only three completion tokens billed.
    let (reason, _) = refused(answer(vec![good(0), good(1)], 3), 2);
    assert!(
        reason.contains("completion_tokens is 3 but the choices hold 4 tokens"),
        "{reason}"
    );
    let cached = json!({
        "choices": [good(0)],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                  "prompt_tokens_details": {"cached_tokens": 5}},
    })
    .to_string();
    let (reason, _) = refused(cached, 1);
    assert!(reason.contains("5 cached prompt tokens of 3"), "{reason}");
}

/// What llama-cpp-python legitimately sends stays accepted: no usage (counted client
/// side), one choice for `n` > 1, more billed tokens than listed.
#[test]
fn legitimate_variations_are_still_accepted() {
    let no_usage = json!({"choices": [good(0)]}).to_string();
    let server = RawServer::start(move |_| Fault::Ok(no_usage.clone()));
    let (_d, e) = engine(&server, Duration::from_secs(5), 0);
    let (s, _) = e.extend(&e.root(), "Q\n").unwrap();
    let (c, u) = e.sample(&s, 2, &params()).unwrap();
    assert_eq!(c.len(), 2);
    assert!(
        c.iter()
            .all(|c| c.text == "ab" && c.logprobs == [-0.5, -0.5])
    );
    assert_eq!(u.forward_calls, 2);
    assert_eq!(server.hits(), 2);

    let generous = answer(vec![good(1), good(0)], 9);
    let server = RawServer::start(move |_| Fault::Ok(generous.clone()));
    let (_d, e) = engine(&server, Duration::from_secs(5), 0);
    let c = sample_one(&e, 2).0.unwrap();
    assert_eq!(c.len(), 2, "choices out of order are sorted, not refused");
}

#[test]
fn next_token_logprobs_checks_the_answer_too() {
    let body = answer(vec![choice(0, &["x"], &[Some(-0.5)], 2)], 1);
    let server = RawServer::start(move |_| Fault::Ok(body.clone()));
    let (_d, e) = engine(&server, Duration::from_secs(5), 0);
    let (s, _) = e.extend(&e.root(), "Is it?").unwrap();
    let r = e.next_token_logprobs(&s, &[1]);
    let reason = protocol_reason(&r);
    assert!(reason.contains("1 tokens but 2 top_logprobs"), "{reason}");
}
