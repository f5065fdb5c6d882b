//! Protocomm over BLE GATT, as ESP devices lay it out (fact sheet §7): one primary service, one characteristic
//! per endpoint whose UUID carries a 16-bit endpoint id, and a 0x2901 user-description descriptor holding the
//! endpoint's name. Clients find endpoints by those names, never by UUID.
//!
//! The layout rules need no radio: UUID derivation, the id assignment of both sides, the client's
//! name-to-characteristic map, and long-value reads by offset.
//!
//! With the `bluez` feature, the two halves over BlueZ's D-Bus API (through `bluer`; the system bus is found the
//! usual way, `DBUS_SYSTEM_BUS_ADDRESS` included):
//!
//! - [`serve`]: the device. It registers the GATT service and an LE advertisement on an adapter and runs every
//!   write through a [`Device`] (the device's shared dispatcher, `wifiprov_dispatch::Dispatcher`, and a
//!   [`BleConfig`]), one protocomm session per BLE link. In short: write a request, read the response back from the same
//!   characteristic; a refused request is an ATT error and ends the link. [`serve`] has the exact rules.
//! - [`BleClient`]: the client. It finds a device by its advertised name, connects, maps the endpoints, and sends
//!   requests that way; [`BleError`] names the device and endpoint of every failure.
#![forbid(unsafe_code)]

#[cfg(feature = "bluez")]
mod client;
mod layout;
#[cfg(any(feature = "bluez", test))]
mod link;
#[cfg(feature = "bluez")]
mod server;
mod uuid;

// Public interface.
#[cfg(feature = "bluez")]
pub use bluer;
#[cfg(feature = "bluez")]
pub use client::{BleClient, BleClientConfig, BleError, BleLink};
pub use layout::{DeviceLayout, EndpointMap, LayoutError, read_at_offset};
#[cfg(feature = "bluez")]
pub use server::{BleConfig, Device, MAX_NAME_LEN, Registered, ServeError, register, serve};
pub use uuid::{ESP_EXAMPLE_SERVICE, Uuid, UuidError, WIFI_PROV_MGR_SERVICE};
