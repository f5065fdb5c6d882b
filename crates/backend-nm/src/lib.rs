//! wifiprov's NetworkManager backend: [`WifiBackend`](wifiprov_backend::WifiBackend) over NetworkManager's
//! D-Bus API, for the devices whose Wi-Fi NetworkManager runs (Raspberry Pi OS, Debian, Ubuntu, most
//! gateways).
//!
//! - **Scans** ask NetworkManager for one (`RequestScan`, probing for a name to find hidden networks) and wait
//!   for `LastScan` to move, with a timeout: NetworkManager postpones scans while the supplicant is busy.
//! - **Joins** add a profile of our own and activate it in one call; the device's state reason decides the
//!   outcome (no secrets → wrong passphrase, SSID not found → network not found, see `reason`). The key
//!   management comes from what the network announces: `sae` for a WPA3-only network (NetworkManager refuses
//!   `wpa-psk` for one), `wpa-psk` otherwise, which NetworkManager widens to SAE where the radio can.
//! - **Saved networks stay wifiprov's**: NetworkManager only ever holds the profile being used right now,
//!   marked as ours, volatile, in memory, with autoconnect off (see `profile`). wifiprov's policy decides
//!   what to join and when; NetworkManager's never competes with it, and profiles that others made are never
//!   changed or deleted. Such a profile with autoconnect on can still be brought up by NetworkManager while
//!   wifiprov's link is down; wifiprov's next join replaces it.
//!
//! Why zbus and not the libdbus stack the BLE transport already links through bluer: zbus runs on the daemon's
//! own tokio runtime with no thread of its own, its typed proxies and signal streams keep this crate small,
//! it connects to an explicit bus address without touching the environment (the tests' private buses), and it
//! is pure Rust. The cost is a second D-Bus implementation in the binary when BLE is built in.
#![forbid(unsafe_code)]

mod access_point;
mod ap_interface;
mod backend;
mod error;
mod profile;
mod proxies;
mod reason;

pub use ap_interface::{ApInterfaceError, ap_beside_station_supported, ensure_ap_interface, remove_ap_interface};
pub use backend::{Hotspot, HotspotConfig, NetworkManager, NmConfig};
pub use error::NmError;
