//! Integration tests of the reasoning layer on the scripted mock engine.
//!
//! One test binary per crate: each topic is a module here.

mod deepconf;
mod mock;
mod props;
mod rstar;
