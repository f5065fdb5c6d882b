//! The provisioning manager: ESP's `wifi_prov_mgr` state machine, the saved networks and the connection policy,
//! with no I/O, behind a protocol-neutral API.
//!
//! Inputs are method calls that carry `now`: client requests in our own types ([`Manager::set_credentials`],
//! [`Manager::apply_credentials`], [`Manager::provisioning_status`], [`Manager::start_scan`], the saved-network
//! operations such as [`Manager::add_network`]), backend results and timeouts. Outputs are [`Action`]s for the
//! driver to carry out (connect, scan, persist, start or stop the front-ends), [`Event`]s for subscribers, and
//! the next deadline from [`Manager::poll_timeout`]. Every front-end (ESP's endpoints, and whatever protocol
//! comes next) maps its own messages onto this API; none of them lives here.
#![forbid(unsafe_code)]

mod action;
mod client;
mod config;
mod manager;
pub mod networks;
mod policy;
mod requests;
mod saved;

pub use action::{Action, AttemptId, Credentials, Event, FailReason, WriteOutcome};
pub use client::{ClientId, ProvisioningStatus, RequestError};
pub use config::{AutoStop, ManagerConfig, PolicyConfig, SystemClock, WallClock};
pub use manager::{Manager, ManagerError, ProvState, WifiState};
pub use policy::{RequestId, RequestOutcome};
pub use saved::{AddNetwork, ConnectNetwork, JoinFirst, NetworksError};
