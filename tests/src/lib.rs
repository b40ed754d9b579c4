//! thinktree's cross-crate end-to-end tests live in `e2e/` (run them with
//! `cargo test -p thinktree-tests`); this library is empty.
#![deny(missing_docs)]
