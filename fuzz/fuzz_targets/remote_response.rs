//! Whatever a completions server answers: the remote engine samples (and reads next-token
//! log-probabilities) from an in-process HTTP server whose response body, and whether it
//! states its length, come from the fuzzer. Every answer must become a typed error or
//! continuations consistent with the request.
#![no_main]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use candle_core::quantized::gguf_file::{Content, VersionedMagic};
use libfuzzer_sys::fuzz_target;
use thinktree_engine::{Engine, SampleParams, StopCondition};
use thinktree_gguf::{ChatTemplate, GgufTokenizer};
use thinktree_remote::{RemoteEngine, RemoteOptions};

/// The next answer: (body, send a Content-Length).
static ANSWER: Mutex<(Vec<u8>, bool)> = Mutex::new((Vec::new(), true));

fn serve(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut req = vec![0u8; len];
        let _ = r.read_exact(&mut req);
        let (body, with_len) = ANSWER.lock().expect("lock").clone();
        let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n");
        if with_len {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
    }
}

static ENGINE: LazyLock<RemoteEngine> = LazyLock::new(|| {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || serve(listener));
    let content = Content {
        magic: VersionedMagic::GgufV3,
        metadata: thinktree_gguf::testing::tiny_tokenizer_metadata()
            .into_iter()
            .collect::<HashMap<_, _>>(),
        tensor_infos: HashMap::new(),
        tensor_data_offset: 0,
    };
    let tokenizer = GgufTokenizer::from_gguf(&content).expect("tokenizer");
    let opts = RemoteOptions::new([url])
        .timeout(Duration::from_secs(5))
        .retries(0, Duration::from_millis(1))
        .max_response_bytes(1 << 20);
    RemoteEngine::new(opts, tokenizer, ChatTemplate::chatml(), "fuzz").expect("engine")
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let engine = &*ENGINE;
    *ANSWER.lock().expect("lock") = (body.to_vec(), mode & 1 == 0);
    let (state, _) = engine
        .extend(&engine.root(), "Q: 1 + 1?\nA:")
        .expect("extend");
    if mode & 2 == 0 {
        let n = 1 + usize::from(mode >> 2 & 3);
        let params = SampleParams {
            temperature: 0.8,
            top_k: None,
            top_p: None,
            stop: StopCondition::newline(8),
            seed: 1,
        };
        if let Ok((cs, usage)) = engine.sample(&state, n, &params) {
            assert_eq!(cs.len(), n);
            assert!(usage.computed_tokens >= usage.generated_tokens);
        }
    } else if let Ok((lp, _)) = engine.next_token_logprobs(&state, &[1, 2, 3]) {
        assert_eq!(lp.len(), 3);
    }
});
