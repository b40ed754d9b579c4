//! Integration tests of the search core.
//!
//! One test binary per crate: each topic is a module here.

mod api;
mod bandit;
mod estimates;
mod make24;
mod properties;
mod tictactoe;
