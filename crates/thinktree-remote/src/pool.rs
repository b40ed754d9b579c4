//! Several servers behind one client: request spreading, in-flight bounds, retries.
//!
//! Each request goes to the server with the fewest requests in flight (ties go to the
//! one used least recently), never past `max_in_flight` per server; a caller beyond that
//! waits for a slot. A retryable failure (connection refused or dropped, timeout, 429,
//! 5xx) is retried after an exponential backoff and marks the server down: retries wait
//! for a slot on a server whose last request succeeded rather than go to one that is
//! down, and fresh requests probe a down server only after a cooldown, so one dead server
//! in a list slows a search down but does not stop it. When every server is down,
//! requests go out anyway, so a server that comes back is found again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::options::RemoteOptions;

/// One server and what we learned about it.
#[derive(Debug)]
pub(crate) struct Server {
    pub url: String,
    /// Set once the server answered an `n > 1` request with fewer choices (llama.cpp
    /// servers return one sample per request): from then on it gets `n` requests.
    pub single_sample: AtomicBool,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
}

#[derive(Debug)]
struct Slots {
    in_flight: Vec<usize>,
    last_used: Vec<u64>,
    /// A server that failed is skipped until this instant while others are up.
    down_until: Vec<Option<Instant>>,
    clock: u64,
}

impl Slots {
    /// Servers a request may go to. A fresh request may probe a down server whose
    /// cooldown is over (that is how a recovered server comes back); a retry goes only to
    /// servers whose last request succeeded, while there are any, so a dead server cannot
    /// eat a request's whole retry budget while the live ones are busy.
    fn eligible(&self, retrying: bool, now: Instant) -> Vec<bool> {
        let healthy: Vec<bool> = self.down_until.iter().map(Option::is_none).collect();
        let cooled: Vec<bool> = self
            .down_until
            .iter()
            .map(|d| d.is_none_or(|t| now >= t))
            .collect();
        if retrying && healthy.iter().any(|&h| h) {
            healthy
        } else if cooled.iter().any(|&c| c) {
            cooled
        } else {
            vec![true; self.down_until.len()]
        }
    }
}

/// The servers, an HTTP agent, and the in-flight bookkeeping.
#[derive(Debug)]
pub(crate) struct Pool {
    pub servers: Vec<Server>,
    pub opts: RemoteOptions,
    agent: ureq::Agent,
    slots: Mutex<Slots>,
    freed: Condvar,
}

/// Releases its slot when dropped, so a panic or early return cannot leak one.
struct Slot<'p> {
    pool: &'p Pool,
    server: usize,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pool.slots.lock() {
            s.in_flight[self.server] -= 1;
        }
        self.pool.freed.notify_all();
    }
}

/// Outcome of one attempt.
enum Attempt<T> {
    Done(T),
    Retry(String),
}

impl Pool {
    pub fn new(opts: RemoteOptions) -> Result<Self> {
        opts.validate()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .timeout_connect(Some(opts.connect_timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let servers: Vec<Server> = opts
            .servers
            .iter()
            .map(|u| Server {
                url: RemoteOptions::completions_url(u),
                single_sample: AtomicBool::new(false),
                requests: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            })
            .collect();
        let n = servers.len();
        Ok(Self {
            servers,
            opts,
            agent,
            slots: Mutex::new(Slots {
                in_flight: vec![0; n],
                last_used: vec![0; n],
                down_until: vec![None; n],
                clock: 0,
            }),
            freed: Condvar::new(),
        })
    }

    /// Waits for a free slot on an eligible server (see [`Slots::eligible`]), preferring
    /// servers other than `avoid`, the server of the attempt that just failed.
    fn acquire(&self, avoid: Option<usize>) -> Result<Slot<'_>> {
        let poisoned = || Error::InvalidConfig("server pool lock poisoned".into());
        let mut s = self.slots.lock().map_err(|_| poisoned())?;
        loop {
            let now = Instant::now();
            let ok = s.eligible(avoid.is_some(), now);
            let pick = (0..self.servers.len())
                .filter(|&i| ok[i] && s.in_flight[i] < self.opts.max_in_flight)
                .min_by_key(|&i| (Some(i) == avoid, s.in_flight[i], s.last_used[i]));
            if let Some(i) = pick {
                s.in_flight[i] += 1;
                s.clock += 1;
                s.last_used[i] = s.clock;
                return Ok(Slot {
                    pool: self,
                    server: i,
                });
            }
            // Wake up for a freed slot, or when a down server's cooldown ends.
            let wake = (0..self.servers.len())
                .filter_map(|i| s.down_until[i].filter(|t| *t > now))
                .min()
                .map(|t| t - now)
                .unwrap_or(Duration::from_secs(1));
            s = self.freed.wait_timeout(s, wake).map_err(|_| poisoned())?.0;
        }
    }

    /// Records the outcome of an attempt on server `i` for routing.
    fn mark(&self, i: usize, ok: bool) {
        if let Ok(mut s) = self.slots.lock() {
            s.down_until[i] = if ok {
                None
            } else {
                Some(Instant::now() + self.opts.max_backoff.max(self.opts.backoff))
            };
        }
    }

    /// POSTs `body` (plus the configured extra fields) to a server's completions
    /// endpoint, retrying as configured. Returns the parsed answer and the server index.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, body: &B) -> Result<(T, usize)> {
        let mut json =
            serde_json::to_value(body).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        if let Value::Object(map) = &mut json {
            for (k, v) in &self.opts.extra_body {
                map.insert(k.clone(), v.clone());
            }
        }
        let mut avoid = None;
        let mut last = (String::new(), String::new());
        let attempts = self.opts.retries + 1;
        for attempt in 0..attempts {
            if attempt > 0 {
                thread::sleep(self.opts.backoff_for(attempt - 1));
            }
            let slot = self.acquire(avoid)?;
            let server = &self.servers[slot.server];
            server.requests.fetch_add(1, Ordering::Relaxed);
            match self.attempt::<T>(&server.url, &json)? {
                Attempt::Done(t) => {
                    self.mark(slot.server, true);
                    return Ok((t, slot.server));
                }
                Attempt::Retry(why) => {
                    self.mark(slot.server, false);
                    server.failures.fetch_add(1, Ordering::Relaxed);
                    avoid = Some(slot.server);
                    last = (server.url.clone(), why);
                }
            }
        }
        Err(Error::Unavailable {
            attempts,
            last_url: last.0,
            last_error: last.1,
        })
    }

    fn attempt<T: DeserializeOwned>(&self, url: &str, json: &Value) -> Result<Attempt<T>> {
        let mut resp = match self.agent.post(url).send_json(json) {
            Ok(r) => r,
            // Transport failures (refused, reset, timeout, DNS) may pass: retry.
            Err(e) => return Ok(Attempt::Retry(e.to_string())),
        };
        let status = resp.status().as_u16();
        if status == 429 || status >= 500 {
            let body = error_body(resp.body_mut());
            return Ok(Attempt::Retry(format!("HTTP {status}: {}", snippet(&body))));
        }
        if !(200..300).contains(&status) {
            return Err(Error::Rejected {
                url: url.to_string(),
                status,
                body: snippet(&error_body(resp.body_mut())),
            });
        }
        // A body over the limit is refused before or while reading, so memory stays
        // bounded, and not retried: the same request would most likely get the same
        // long answer again (many samples, many tokens), and each try would cost the
        // full limit in bandwidth and time. The error says which setting to change.
        let limit = self.opts.max_response_bytes;
        let too_large = || Error::ResponseTooLarge {
            url: url.to_string(),
            limit,
        };
        if resp.body().content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        // ureq's limit counts the bytes read; one more than ours tells a body of exactly
        // `limit` bytes (accepted) from a longer one.
        let bytes = match resp
            .body_mut()
            .with_config()
            .limit(limit.saturating_add(1))
            .read_to_vec()
        {
            Ok(b) if b.len() as u64 > limit => return Err(too_large()),
            Ok(b) => b,
            Err(ureq::Error::BodyExceedsLimit(_)) => return Err(too_large()),
            // The connection died or stalled while the body was streaming in (a body
            // shorter than its Content-Length is one): nothing is built from the part
            // that came, and another attempt may fare better.
            Err(e) => return Ok(Attempt::Retry(format!("reading the response: {e}"))),
        };
        serde_json::from_slice(&bytes)
            .map(Attempt::Done)
            .map_err(|e| Error::Protocol {
                url: url.to_string(),
                reason: format!("{e} in `{}`", snippet(&String::from_utf8_lossy(&bytes))),
            })
    }
}

/// The start of an error response's body, for the message (read errors leave what came).
fn error_body(body: &mut ureq::Body) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    let _ = body.as_reader().take(16 << 10).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn snippet(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
