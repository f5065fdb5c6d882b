//! The radio side of wifiprov: the [`WifiBackend`] trait and the types it speaks in.
//!
//! This crate has no implementation. Backends (the simulator, NetworkManager) implement the trait; the
//! provisioning manager and the daemon use it through `Arc<dyn WifiBackend>`. Every value that comes from
//! outside (a peer, a file, the platform) is checked when its newtype is built, so code that holds an
//! [`Ssid`], [`Channel`] or [`Passphrase`] can rely on it being well-formed.
//!
//! The optional `serde` feature derives `Serialize`/`Deserialize` for the non-secret types. [`Passphrase`]
//! and [`ConnectRequest`] never get them.
#![forbid(unsafe_code)]

mod auth;
mod backend;
mod bssid;
mod channel;
mod connect;
mod error;
mod event;
mod passphrase;
mod rssi;
mod scan;
mod ssid;

// Public interface.
pub use auth::{AuthMode, AuthModeError};
pub use backend::{BoxFuture, WifiBackend};
pub use bssid::{Bssid, BssidError};
pub use channel::{Channel, ChannelError};
pub use connect::{ConnectRequest, LinkInfo, SsidVisibility};
pub use error::{BackendError, ConnectError};
pub use event::{DisconnectReason, LinkEvent};
pub use passphrase::{Passphrase, PassphraseError};
pub use rssi::Rssi;
pub use scan::{AccessPoint, ScanMode, ScanParams};
pub use ssid::{Ssid, SsidError};
