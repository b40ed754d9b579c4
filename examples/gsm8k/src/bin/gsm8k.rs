//! `gsm8k`: compare thinktree's reasoning methods on math word problems.
//!
//! The work is in the library ([`thinktree_gsm8k::run`]) so the tests can drive it; this
//! file only parses the command line and prints the outcome.

use std::process::ExitCode;

use thinktree_gsm8k::cli::Args;
use thinktree_gsm8k::report::markdown_table;
use thinktree_gsm8k::run::run_cli;

fn main() -> ExitCode {
    thinktree_gsm8k::entry::main_with::<Args>(|args| {
        let (outcome, files) = run_cli(args)?;
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
        Ok(())
    })
}
