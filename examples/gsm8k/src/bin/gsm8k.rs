//! `gsm8k`: compare thinktree's reasoning methods on math word problems.
//!
//! The work is in the library ([`thinktree_gsm8k::run`]) so the tests can drive it; this
//! file only parses the command line and prints the outcome.

use std::process::ExitCode;

use clap::Parser;
use thinktree_gsm8k::cli::{Args, ReportArgs};
use thinktree_gsm8k::report::{markdown_table, paired_table, reflection_table};
use thinktree_gsm8k::run::{report_cli, run_cli};

fn main() -> ExitCode {
    // `gsm8k report FILE...` rebuilds the reports from results files; anything else is a
    // run.
    if std::env::args().nth(1).as_deref() == Some("report") {
        let args = ReportArgs::parse_from(std::env::args().skip(1));
        return thinktree_gsm8k::entry::main_with_args(&args, |args: &ReportArgs| {
            let done = report_cli(args)?;
            println!("{}", markdown_table(&done.summary));
            println!("{}", paired_table(&done.paired));
            print!("{}", reflection_table(&done.records));
            println!(
                "{} records | table: {} | plot: {}",
                done.records.len(),
                done.files.summary.display(),
                done.files.plot.display()
            );
            Ok(())
        });
    }
    thinktree_gsm8k::entry::main_with::<Args>(|args| {
        let (outcome, files) = run_cli(args)?;
        println!("{}", markdown_table(&outcome.summary));
        println!("{}", paired_table(&outcome.paired));
        print!("{}", reflection_table(&outcome.records));
        if let Some(line) = outcome.throughput() {
            println!("{line} ({} at once)", args.concurrency);
        }
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
