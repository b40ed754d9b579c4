//! The `main` of every binary here.
//!
//! The binaries once ran themselves a second time with `RAYON_NUM_THREADS` set, because
//! candle looks the thread count up (parsing `/proc/cpuinfo`) on every one of its matmuls
//! when it is unset. That left an orphan behind `kill -9 PID` (the child kept writing the
//! results file, and a `--resume` started next to it interleaved lines with it), so it is
//! gone; the results journal's lock ([`crate::journal`]) now refuses a second writer.

use std::process::ExitCode;

use clap::Parser;

/// Parses the arguments, runs, and turns an error into `error: ...` on stderr and a
/// failing exit code.
pub fn main_with<A: Parser>(run: impl FnOnce(&A) -> anyhow::Result<()>) -> ExitCode {
    main_with_args(&A::parse(), run)
}

/// [`main_with`] on arguments parsed already (a subcommand's).
pub fn main_with_args<A>(args: &A, run: impl FnOnce(&A) -> anyhow::Result<()>) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
