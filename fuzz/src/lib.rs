//! Shared harness of wifiprov's fuzz targets (`fuzz_targets/`): the input framing, a deterministic random
//! source, the golden vectors, and one module per target family. Each target file is a one-line call into here,
//! so the seed-corpus generator (`src/bin/gen-corpus.rs`) writes inputs with the same framing the targets read.
//!
//! What each target checks is in `docs/fuzzing.md`.

pub mod client;
pub mod custom;
pub mod exec;
pub mod golden;
pub mod http;
pub mod input;
pub mod messages;
pub mod mirror;
pub mod protocomm;
pub mod rng;
pub mod session;
pub mod store;
pub mod version;
