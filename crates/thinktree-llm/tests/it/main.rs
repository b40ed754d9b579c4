//! Integration tests of the in-process engine: tiny random GGUFs and the real SmolLM2.
//!
//! One test binary per crate: each topic is a module here.

mod concurrent;
mod engine_gemma;
mod engine_smollm2;
mod engine_tiny;
mod reference;
