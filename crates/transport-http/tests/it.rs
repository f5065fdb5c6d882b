//! Integration tests of the HTTP transport over real sockets on 127.0.0.1: one binary, modules by theme.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod client;
mod common;
mod framing;
mod fuzzing;
mod handshake;
mod logs;
mod replay;
mod sessions;
mod shutdown;
