//! The sans-IO core of ESP unified provisioning ("protocomm"), for both the device and the client.
//!
//! - [`security`]: security schemes 0, 1 and 2 as state machines (bytes in, bytes out, randomness injected).
//! - [`endpoint`]: the endpoint table and session table a transport dispatches into.
//! - [`version`]: the `proto-ver` JSON, byte-exact with ESP devices.
//! - [`messages`]: typed messages of the `prov-config`, `prov-scan` and `prov-ctrl` endpoints.
//!
//! Nothing here opens a socket, reads a clock or reads the OS random source: the caller passes `now` and a
//! [`rng::SecureRandom`], so every exchange can be replayed from fixed inputs.
#![forbid(unsafe_code)]

mod wire;

pub mod endpoint;
mod error_chain;
pub mod messages;
pub mod qr;
pub mod rng;
pub mod secret;
pub mod security;
pub mod version;

pub use error_chain::ErrorChain;

/// Configurations that weaken security. Each use should be a deliberate, reviewed choice.
pub mod danger {
    use crate::security::{DeviceScheme, DeviceSecurity};

    /// Security 0: no authentication and no encryption. Anyone in radio range can read the Wi-Fi passphrase.
    pub fn sec0() -> DeviceSecurity {
        DeviceSecurity(DeviceScheme::Sec0)
    }

    /// Security 1 without a proof of possession (advertised as `no_pop`): encrypted, but anyone can connect.
    pub fn sec1_without_pop() -> DeviceSecurity {
        DeviceSecurity(DeviceScheme::Sec1 { pop: None })
    }
}
