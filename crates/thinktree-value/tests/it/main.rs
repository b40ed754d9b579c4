//! Integration tests of self-play, training and the value scorer.
//!
//! One test binary per crate: each topic is a module here.

mod value;
