//! Integration tests of GGUF metadata, the tokenizer and the chat template (the tokenizer against llama.cpp's on the default model).
//!
//! One test binary per crate: each topic is a module here.

mod crafted;
mod spm;
mod tokenizer;
