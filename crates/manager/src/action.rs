//! What the manager asks its driver to do, and what it tells subscribers.

use core::fmt;

use wifiprov_backend::{ConnectRequest, LinkInfo, Passphrase, ScanParams, Ssid};

use crate::networks::{ConnectOutcome, NetworkList};

/// Credentials received from a client: the network to join.
#[derive(Clone)]
pub struct Credentials {
    /// The network.
    pub ssid: Ssid,
    /// Its passphrase; `None` for an open network.
    pub passphrase: Option<Passphrase>,
}

impl Credentials {
    pub(crate) fn connect_request(&self) -> ConnectRequest {
        ConnectRequest::new(self.ssid.clone(), self.passphrase.clone())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("ssid", &self.ssid)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Work for the driver. Each is answered (where it has an outcome) through the matching `handle_*` method.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Action {
    /// Join this network; report the outcome with [`crate::Manager::handle_connect_result`], passing
    /// `attempt` back so a late answer to a superseded attempt is recognised.
    Connect {
        /// Identifies this attempt.
        attempt: AttemptId,
        /// The network.
        request: ConnectRequest,
    },
    /// Leave the current network, if any.
    Disconnect,
    /// Scan; report with [`crate::Manager::handle_scan_result`].
    Scan(ScanParams),
    /// Write this saved-network list to storage, replacing the stored one; report how it ended with
    /// [`crate::Manager::handle_networks_written`] and the [`crate::Manager::networks_revision`] it carries (a
    /// list superseded before it was written may be skipped: the report of a later revision covers it).
    SaveNetworks(NetworkList),
    /// Tear the provisioning transport down: the service has ended.
    StopService,
    /// Bring the provisioning transport up again: the connection policy reopened provisioning because the
    /// device is offline. The manager is already `Started`; if the transport cannot start, report it with
    /// [`crate::Manager::handle_service_unavailable`].
    StartService,
}

/// Identifies one connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptId(pub(crate) u64);

/// Why a provisioning attempt failed, as clients are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The network refused the passphrase.
    AuthError,
    /// The network was not found.
    NetworkNotFound,
    /// The network was joined, but could not be saved (storage failed or refuses writes): the device would
    /// forget it at the next start, so the attempt fails, the device leaves the network and the saved networks
    /// are as before.
    NotSaved,
}

/// How a write of the saved networks ([`Action::SaveNetworks`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The list is on storage and survives a restart.
    Written,
    /// The list could not be written; storage holds an older one.
    Failed,
}

/// Manager lifecycle events (ESP's `WIFI_PROV_*` events), delivered in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The manager was created.
    Init,
    /// Provisioning started (also after a reprovision request).
    Start,
    /// A client applied credentials; the connection attempt is about to start.
    SetStaConfig {
        /// The network.
        ssid: Ssid,
    },
    /// The credentials were accepted and the device is connecting.
    CredRecv {
        /// The network.
        ssid: Ssid,
    },
    /// Connecting with the received credentials failed for good.
    CredFail(FailReason),
    /// The device joined the network and got an address.
    CredSuccess(LinkInfo),
    /// The service stopped.
    End,
    /// The connection policy is trying a saved network.
    TryingSaved {
        /// The network.
        ssid: Ssid,
        /// Its priority index.
        priority: usize,
    },
    /// The station joined a network, for whatever reason (saved network, provisioning, client request).
    StationConnected(LinkInfo),
    /// An attempt to join a network failed.
    ConnectFailed {
        /// The network.
        ssid: Ssid,
        /// Why.
        outcome: ConnectOutcome,
    },
    /// A round through every saved network ended without a connection; the next round is scheduled.
    NoNetworkJoined,
    /// The link to the current network went down without being asked to.
    LinkLost {
        /// The network.
        ssid: Ssid,
    },
    /// The saved-network list changed; an [`Action::SaveNetworks`] follows.
    NetworksChanged,
    /// The connection policy reopened provisioning because the device is offline; [`Event::Start`] follows.
    ProvisioningReopened,
    /// The manager was shut down.
    Deinit,
}
