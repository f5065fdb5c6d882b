//! The daemon end to end: the provisioning service on real loopback sockets, driven by the client library,
//! on a simulated radio. Nothing sleeps for a fixed time: every wait is for an event, with a deadline.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod attacks;
mod bad_input;
mod binary;
mod common;
mod flows;
mod guessing;
mod interop;
mod networks;
mod secrets;
mod state_dir;
