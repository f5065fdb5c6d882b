//! The `wifiprov` binary end to end: run as a subprocess against wifiprovd's provisioning service started in
//! the test process on 127.0.0.1:0, on a fast simulated radio. Nothing sleeps for a fixed time; every run has
//! a deadline.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;
mod device;
mod exit_codes;
mod fleet;
mod networks;
mod offline;
