//! Protocomm over BLE GATT, as ESP devices lay it out (fact sheet §7): one primary service, one characteristic
//! per endpoint whose UUID carries a 16-bit endpoint id, and a 0x2901 user-description descriptor holding the
//! endpoint's name. Clients find endpoints by those names, never by UUID.
//!
//! This crate holds the layout rules, which need no radio: UUID derivation, the id assignment of both sides,
//! the client's name-to-characteristic map, and long-value reads by offset. The BlueZ glue builds on it.
#![forbid(unsafe_code)]

mod layout;
mod uuid;

pub use layout::{DeviceLayout, EndpointMap, LayoutError, read_at_offset};
pub use uuid::{ESP_EXAMPLE_SERVICE, Uuid, UuidError, WIFI_PROV_MGR_SERVICE};
