//! Integration tests of the store, in one binary.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod crash;
