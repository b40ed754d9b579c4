//! Integration tests of the remote backend against in-process fake servers (the real-server tests are in the workspace's tests/).
//!
//! One test binary per crate: each topic is a module here.

mod fake_server;
mod faults;
