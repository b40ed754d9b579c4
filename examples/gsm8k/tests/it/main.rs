//! Integration tests of the GSM8K harness: its library and its binaries run as a user runs them.
//!
//! One test binary per crate: each topic is a module here.

mod answers;
mod cli;
mod data;
mod disk;
mod e2e;
mod kill;
mod model_path;
mod report;
mod resume;
mod selfplay;
mod server;
mod viewer;
