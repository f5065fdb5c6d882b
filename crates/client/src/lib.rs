//! The client side of ESP unified provisioning: version and capabilities, session setup, and typed calls
//! to `prov-config`, `prov-scan`, `prov-ctrl` and custom endpoints, over any [`Transport`].
#![forbid(unsafe_code)]

#[cfg(feature = "ble")]
mod ble;
mod client;
mod transport;

pub use client::{Client, ClientError, MAX_SCAN_RESULTS, PollPolicy, ProvisionOutcome, SCAN_DEADLINE};
pub use transport::Transport;
#[cfg(feature = "ble")]
pub use wifiprov_transport_ble::{BleClient, BleClientConfig, BleError, BleLink};
pub use wifiprov_transport_http::{HttpClient, TransportError};
