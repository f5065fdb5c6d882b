//! The interface every radio backend implements.

use core::future::Future;
use core::pin::Pin;

use tokio::sync::broadcast;

use crate::{AccessPoint, BackendError, ConnectError, ConnectRequest, LinkEvent, LinkInfo, ScanParams};

/// A boxed, sendable future, so that [`WifiBackend`] stays object-safe without a macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A station-mode radio: scans, joins one network at a time, and reports link changes.
///
/// The daemon holds it as `Arc<dyn WifiBackend>`. Implementations serialise link changes internally; callers
/// may call any method from any task at any time, with these rules:
///
/// - At most one link or join attempt exists. A [`connect`](Self::connect) replaces it: an attempt still in
///   flight resolves with [`ConnectError::Cancelled`], and an established link is taken down with
///   [`LinkEvent::Disconnected`] first.
/// - Dropping a `connect` future abandons that attempt; the link stays down.
/// - [`link`](Self::link) is the source of truth. Events are notifications: a slow subscriber can miss some
///   (`RecvError::Lagged`) and should then re-read `link()`.
pub trait WifiBackend: Send + Sync + 'static {
    /// Scans and returns the visible access points, strongest first. Hidden access points are either left
    /// out or listed with `ssid: None`, depending on what the platform reports.
    fn scan(&self, params: ScanParams) -> BoxFuture<'_, Result<Vec<AccessPoint>, BackendError>>;

    /// Joins a network. Resolves once the station is associated, authenticated and has an IPv4 address, or
    /// with the reason it could not get there. Success also emits [`LinkEvent::Connected`].
    fn connect(&self, request: ConnectRequest) -> BoxFuture<'_, Result<LinkInfo, ConnectError>>;

    /// Leaves the current network and abandons any attempt in flight. Succeeds, doing nothing, when there is
    /// no link. Emits [`LinkEvent::Disconnected`] if a link was up.
    fn disconnect(&self) -> BoxFuture<'_, Result<(), BackendError>>;

    /// The current link, if one is up. Does no I/O.
    fn link(&self) -> Option<LinkInfo>;

    /// A receiver for the link events that happen from now on.
    fn subscribe(&self) -> broadcast::Receiver<LinkEvent>;
}
