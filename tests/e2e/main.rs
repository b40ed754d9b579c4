//! Cross-crate end-to-end tests: the README's library examples as a user writes them, reasoning on real models, and the remote backend against a real llama-cpp-python server.
//!
//! One test binary per crate: each topic is a module here.

mod llama_server;
mod memory;
mod readme;
mod reason_smollm;
mod reason_tiny;
