//! Integration tests of the protocol core: one binary, modules by theme.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;
mod endpoint;
mod negative;
mod roundtrip;
mod transcripts;
mod vectors;
mod version;
