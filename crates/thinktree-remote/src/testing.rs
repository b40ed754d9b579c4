//! Real llama-cpp-python servers for integration tests (this crate's and yours).
//!
//! The server comes from `THINKTREE_LLAMA_PYTHON` (a python with `llama_cpp.server`) or
//! `.venv-llama/bin/python` in the workspace, which `bash scripts/install-llama-server.sh`
//! creates (`.ci/run` does). Without either, [`server_python`] panics with that fix,
//! unless `THINKTREE_SKIP_SERVER_TESTS=1` opts out explicitly. These helpers panic on
//! failure: they are for tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server process; killed when dropped.
#[derive(Debug)]
pub struct LlamaServer {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    child: Option<Child>,
    /// Where its stderr goes (shown when it fails to start).
    pub log: PathBuf,
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

/// The python to run the server with, or None when the user opted out.
pub fn server_python() -> Option<PathBuf> {
    if std::env::var_os("THINKTREE_SKIP_SERVER_TESTS").is_some_and(|v| v == "1") {
        eprintln!("THINKTREE_SKIP_SERVER_TESTS=1: skipping the real-server test");
        return None;
    }
    let p = std::env::var_os("THINKTREE_LLAMA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-llama/bin/python"));
    assert!(
        p.exists(),
        "no llama-cpp-python server at {}\n  fix: run `bash scripts/install-llama-server.sh` (or set THINKTREE_LLAMA_PYTHON; THINKTREE_SKIP_SERVER_TESTS=1 skips these tests)",
        p.display()
    );
    Some(p)
}

/// `$THINKTREE_MODEL`, else the default model in the workspace's `models/`
/// (`bash scripts/fetch-model.sh` puts it there).
pub fn model_path() -> PathBuf {
    thinktree_gguf::testing::default_model_path()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl LlamaServer {
    /// Starts a server for `model` on a free port with `threads` threads and waits (up to
    /// 3 minutes) until it answers `/v1/models`.
    pub fn start(python: &Path, model: &Path, threads: usize) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("thinktree-llama-server-{port}.log"));
        let child = Command::new(python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "2048", "--n_threads", &threads.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
        let mut s = LlamaServer {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            log,
        };
        s.wait_ready(Duration::from_secs(180));
        s
    }

    fn wait_ready(&mut self, limit: Duration) {
        let t = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        while t.elapsed() < limit {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "llama server exited ({status}) before it was ready:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if agent.get(format!("{}/v1/models", self.url)).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("llama server at {} not ready after {limit:?}", self.url);
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server now (a crash, as far as clients can tell).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}
