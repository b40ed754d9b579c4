//! `selfplay`: solve training problems with MCTS and export labelled step records.
//! The work is in the library ([`thinktree_gsm8k::selfplay`]); this file parses and calls.

use std::process::ExitCode;

use thinktree_gsm8k::selfplay::{Args, run};

fn main() -> ExitCode {
    thinktree_gsm8k::entry::main_with::<Args>(|args| {
        println!("{}", run(args)?);
        Ok(())
    })
}
