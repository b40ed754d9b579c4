//! `gsm8k`: compare thinktree's reasoning methods on math word problems.
//!
//! Everything lives in the library (`thinktree_gsm8k`) so the tests can drive it; this
//! file only parses the command line and prints the outcome.

use std::process::ExitCode;

use clap::Parser;
use thinktree_gsm8k::cli::Args;
use thinktree_gsm8k::report::markdown_table;
use thinktree_gsm8k::run::run_cli;

fn main() -> ExitCode {
    if let Some(code) = thinktree_gsm8k::thread_env::rerun_with_thread_count() {
        return code;
    }
    let args = Args::parse();
    match run_cli(&args) {
        Ok((outcome, files)) => {
            println!("{}", markdown_table(&outcome.summary));
            println!(
                "{} solved now, {} already in {} | results: {} | table: {} | plot: {}",
                outcome.solved,
                outcome.skipped,
                args.out.display(),
                args.out.display(),
                files.summary.display(),
                files.plot.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
