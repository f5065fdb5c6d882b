//! Integration tests of the protocol core: one binary, modules by theme.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]
#![allow(clippy::disallowed_methods, reason = "tests are the caller that supplies time")]

mod common;
mod endpoint;
mod negative;
mod roundtrip;
mod transcripts;
mod vectors;
mod version;
