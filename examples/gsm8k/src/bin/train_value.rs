//! `train-value`: train a value head on self-play records.
//! The work is in the library ([`thinktree_gsm8k::train_value`]); this file parses and calls.

use std::process::ExitCode;

use thinktree_gsm8k::train_value::{Args, run};

fn main() -> ExitCode {
    thinktree_gsm8k::entry::main_with::<Args>(run)
}
