//! The one seam for front-ends: every way a client reaches the device (HTTP on a SoftAP or any IP interface,
//! BLE GATT, and later a browser page, Improv, other GATT protocols) is one module here implementing
//! [`Frontend`], plus a line where the daemon builds its list.
//!
//! A front-end only moves bytes and maps its connections to sessions. What it serves comes in [`Serve`]: the
//! device's protocomm [`Dispatcher`] (ESP's endpoints, sessions, security), which the ESP transports hand their
//! requests to, and the protocol-neutral [`WeakProvisioner`], which a front-end speaking another protocol
//! calls directly. The supervisor starts the list when provisioning opens (also when the connection policy
//! reopens it) and stops it when provisioning ends; several front-ends run at once, sharing one session table.

mod ble;
mod http;
mod softap;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use wifiprov_dispatch::Dispatcher;
use wifiprov_service::WeakProvisioner;

pub use ble::BleFrontend;
pub use http::HttpFrontend;
pub use softap::{SOFTAP_IP, SOFTAP_PORT, SoftApFrontend};

/// A boxed, sendable future, so that [`Frontend`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a started front-end serves.
#[derive(Clone)]
pub struct Serve {
    /// The device's protocomm endpoints and sessions, shared by every front-end that speaks ESP's protocol.
    pub dispatcher: Arc<Dispatcher>,
    /// The provisioning API, for front-ends that speak another protocol.
    pub provisioner: WeakProvisioner,
}

impl fmt::Debug for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve").field("dispatcher", &self.dispatcher).finish_non_exhaustive()
    }
}

/// Why a front-end could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrontendError {
    /// The listening socket could not be bound or read.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// BlueZ refused the BLE service or its advertisement.
    #[error("BLE transport")]
    Ble(#[from] wifiprov_transport_ble::ServeError),
    /// The access point's interface could not be made beside the station.
    #[error("SoftAP interface")]
    ApInterface(#[source] wifiprov_backend_nm::ApInterfaceError),
    /// NetworkManager could not raise the access point.
    #[error("SoftAP access point")]
    AccessPoint(#[source] wifiprov_backend::BackendError),
}

/// One way clients reach the device. Configured once; started every time provisioning opens.
pub trait Frontend: Send + Sync + fmt::Debug {
    /// What it is, for logs: `http 127.0.0.1:8080`, `ble PROV_1A2B3C on hci0`.
    fn describe(&self) -> String;

    /// Brings the front-end up (binds, registers, advertises) and serves until stopped. Returns once it is
    /// reachable; on an error nothing of it is left running.
    fn start<'a>(&'a self, serve: &'a Serve) -> BoxFuture<'a, Result<Box<dyn Running>, FrontendError>>;
}

/// A started front-end.
pub trait Running: Send {
    /// The address clients connect to, for front-ends on IP (the banner, mDNS, tests).
    fn address(&self) -> Option<SocketAddr> {
        None
    }

    /// Takes it down: no new clients; requests already being handled may finish (bounded), then connections
    /// and links end. Returns when it is down.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}
