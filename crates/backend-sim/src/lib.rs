//! A deterministic simulated radio for wifiprov.
//!
//! [`SimRadio`] implements [`WifiBackend`](wifiprov_backend::WifiBackend) against a scripted set of access
//! points described in a TOML scenario (see [`BUILTIN_SCENARIO`] for the format). Every delay is a
//! `tokio::time` sleep and nothing is random, so tests run under a paused clock and see exact timings. Tests
//! can also change the surroundings at run time: add and remove access points, switch them off, change
//! passphrases, make joins flaky, and drop the link.
//!
//! It serves tests, demos and CI, where there is no radio to drive.
#![forbid(unsafe_code)]

mod access_point;
mod radio;
mod scenario;

// Public interface.
pub use access_point::{CredentialError, Presence, SimAccessPoint};
pub use radio::{BUILTIN_SCENARIO, SimError, SimRadio};
pub use scenario::{ApLabel, FieldError, ScenarioError, SyntaxError};
