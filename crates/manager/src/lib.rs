//! The provisioning manager: ESP's `wifi_prov_mgr` state machine and the handlers of `prov-config`,
//! `prov-scan` and `prov-ctrl`, with no I/O.
//!
//! Inputs are method calls that carry `now` (handler requests, backend results, timeouts); outputs are
//! [`Action`]s for the driver to carry out (connect, scan, persist, stop the transport), [`Event`]s for
//! subscribers, and the next deadline from [`Manager::poll_timeout`]. The daemon's driver owns the manager and
//! is the only one that touches the radio, so the whole provisioning flow can be tested in memory.
#![forbid(unsafe_code)]

mod action;
mod config;
mod handlers;
mod manager;
pub mod networks;
mod policy;

pub use action::{Action, AttemptId, Credentials, Event, FailReason};
pub use config::{AutoStop, ManagerConfig, PolicyConfig, SystemClock, WallClock};
pub use handlers::networks::{NetworksReply, joined_response};
pub use manager::{Manager, ManagerError, ProvState, WifiState};
pub use policy::{RequestId, RequestOutcome};
