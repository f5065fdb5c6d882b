//! The wifiprov device daemon as a library: the provisioning service (ESP's `wifi_prov_mgr` API over the
//! sans-IO manager), its persisted state, the daemon configuration and the QR payload. `main.rs` is a thin
//! shell over [`config`] and [`service`].
#![forbid(unsafe_code)]

pub mod config;
pub mod mdns;
pub mod qr;
pub mod service;
