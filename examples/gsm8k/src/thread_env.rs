//! Running with `RAYON_NUM_THREADS` set.
//!
//! candle asks for its thread count on every matmul, and unless `RAYON_NUM_THREADS` is
//! set (or its preferred-CPU detection succeeds) it answers by reading and parsing
//! `/proc/cpuinfo` each time: on the 2-core machine we measure on that is a quarter of the
//! time of a single-stream decode step (42 vs 56 tok/s, see docs/PERFORMANCE.md). Setting
//! the variable for the running process needs `unsafe` in edition 2024 (the workspace
//! forbids it), so the binaries run themselves once more with it set instead.

use std::process::{Command, ExitCode};

use clap::Parser;

const VAR: &str = "RAYON_NUM_THREADS";

/// When `RAYON_NUM_THREADS` is unset, runs this executable again with the same arguments
/// and the variable set to the available parallelism, and returns its exit code; `None`
/// means "carry on in this process" (already set, or the re-run could not start).
pub fn rerun_with_thread_count() -> Option<ExitCode> {
    if std::env::var_os(VAR).is_some() {
        return None;
    }
    let threads = std::thread::available_parallelism().ok()?.get();
    let exe = std::env::current_exe().ok()?;
    let status = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(VAR, threads.to_string())
        .status()
        .ok()?;
    Some(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        // Killed by a signal: report failure.
        None => ExitCode::FAILURE,
    })
}

/// The `main` of every binary here: re-run with the thread count set if needed, parse the
/// arguments, run, and turn an error into `error: ...` on stderr and a failing exit code.
pub fn main_with<A: Parser>(run: impl FnOnce(&A) -> anyhow::Result<()>) -> ExitCode {
    if let Some(code) = rerun_with_thread_count() {
        return code;
    }
    match run(&A::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
