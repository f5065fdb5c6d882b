//! The wifiprov device daemon as a library.
//!
//! - [`service`]: ESP's `wifi_prov_mgr` API (start, stop, wait, deinit, custom endpoints) over the manager's task
//!   ([`wifiprov_service::Provisioner`]) and [`supervisor`]'s task, which runs the front-ends.
//! - [`frontend`]: the one seam for transports and other front-ends; HTTP and BLE are one module each.
//! - [`esp`]: ESP's protocomm endpoints (`prov-config`, `prov-scan`, `prov-ctrl`) and wifiprov's
//!   `prov-networks`, mapped onto the protocol-neutral provisioning API.
//! - [`custom`]: custom endpoints served by a program the device maker configures.
//! - [`config`], [`mdns`], [`qr`]: the daemon's configuration, mDNS advertisement and QR payload.
//!
//! `main.rs` is a thin shell over these.
#![forbid(unsafe_code)]

pub mod config;
pub mod custom;
pub mod esp;
pub mod frontend;
pub mod guessing;
pub mod mdns;
pub mod qr;
pub mod service;
mod supervisor;
