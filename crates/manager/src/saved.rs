//! What a client may do with the saved networks (the FreeRTOS BLE provisioning feature set): list them with the
//! last scan, add one (joining it first unless told not to), remove, reorder, switch. Protocol-neutral:
//! wifiprov's `prov-networks` endpoint is one front-end's mapping of these (`docs/prov-networks.md`).
//!
//! Add (joining) and connect need the radio: they start an attempt and return a [`RequestId`]; the caller waits
//! for [`Manager::take_request_outcome`]. Every change to the list is handed to the driver as
//! [`crate::Action::SaveNetworks`]; [`Manager::networks_revision`] tells when it is on disk.

use std::time::Instant;

use wifiprov_backend::{LinkInfo, ScanParams, Ssid};

use crate::manager::{Manager, WifiState};
use crate::networks::{AddOutcome, ListedNetwork, NetworkError, SavedNetwork};
use crate::policy::RequestId;

/// Whether an added network is joined before it is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinFirst {
    /// Join it, and save it only if that works (the FreeRTOS rule).
    Yes,
    /// Save it as given.
    No,
}

/// How [`Manager::add_network`] went on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddNetwork {
    /// Saved without joining, at this priority.
    Saved(AddOutcome),
    /// Joining first; the outcome comes with [`Manager::take_request_outcome`].
    Joining(RequestId),
}

/// How [`Manager::connect_network`] went on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectNetwork {
    /// The station is on that network already.
    Connected(LinkInfo),
    /// Joining; the outcome comes with [`Manager::take_request_outcome`].
    Joining(RequestId),
}

/// Why a saved-network request was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworksError {
    /// The list refused the change.
    #[error(transparent)]
    List(#[from] NetworkError),
    /// A provisioning attempt or another client's join holds the radio.
    #[error("the radio is busy with another attempt")]
    Busy,
}

impl Manager {
    /// The saved networks in priority order, then every other network of the last scan, strongest first (see
    /// [`crate::networks::NetworkList::merged_with_scan`]); no passphrase.
    pub fn listed_networks(&self) -> Vec<ListedNetwork> {
        let link = match &self.wifi {
            WifiState::Connected(link) => Some(link),
            _ => None,
        };
        self.networks.merged_with_scan(&self.scan.results, link)
    }

    /// Starts a scan for a listing, whatever the provisioning state (unlike [`Manager::start_scan`]); a scan
    /// already under way is not restarted.
    pub fn scan_for_listing(&mut self) {
        if !self.scan.running {
            self.start_scan_now(ScanParams::default());
        }
    }

    /// Adds `network` at `priority` (the end when `None`), or updates the saved network of the same SSID (which
    /// keeps its place unless `priority` is given). Checked in full before any join, so a network is never
    /// joined that could not be saved afterwards.
    pub fn add_network(
        &mut self,
        now: Instant,
        network: SavedNetwork,
        priority: Option<usize>,
        join: JoinFirst,
    ) -> Result<AddNetwork, NetworksError> {
        let mut trial = self.networks.clone();
        let added = trial.add_or_update(network.clone(), priority)?;
        if join == JoinFirst::No {
            self.networks = trial;
            self.networks_changed();
            tracing::info!(ssid = %network.ssid(), index = added.index(), "network saved without joining");
            return Ok(AddNetwork::Saved(added));
        }
        if self.radio_busy() {
            return Err(NetworksError::Busy);
        }
        tracing::info!(ssid = %network.ssid(), "joining a network before saving it");
        let request = network.connect_request();
        Ok(AddNetwork::Joining(self.start_request(request, Some((network, priority)), now)))
    }

    /// Forgets the saved network `ssid`. If the station is on it (or trying it), it leaves and the policy joins
    /// the next saved network.
    pub fn remove_network(&mut self, now: Instant, ssid: &Ssid) -> Result<(), NetworksError> {
        self.networks.remove(ssid)?;
        tracing::info!(%ssid, "saved network removed");
        self.networks_changed();
        let joined = self.station.connected.as_ref() == Some(ssid);
        let trying = self.station.in_flight.as_ref().is_some_and(|f| f.ssid == *ssid && !self.radio_busy());
        if (joined || trying) && self.state != crate::ProvState::CredRecv {
            // A removed network is not one the device may stay on: leave it and let the policy pick the next.
            self.leave_network();
            self.begin_round(now);
        }
        Ok(())
    }

    /// Moves the saved network `ssid` to priority `to`; the others keep their relative order. Returns its
    /// former priority.
    pub fn move_network(&mut self, ssid: &Ssid, to: usize) -> Result<usize, NetworksError> {
        let from = self.networks.move_to(ssid, to)?;
        if from != to {
            tracing::info!(%ssid, from, to, "saved network moved");
            self.networks_changed();
        }
        Ok(from)
    }

    /// Switches the station to the saved network `ssid` now, without changing priorities. On failure the policy
    /// goes back to the saved networks in priority order.
    pub fn connect_network(&mut self, now: Instant, ssid: &Ssid) -> Result<ConnectNetwork, NetworksError> {
        let network = self.networks.get(ssid).ok_or_else(|| NetworkError::NotFound { ssid: ssid.clone() })?;
        if let WifiState::Connected(link) = &self.wifi
            && link.ssid == *ssid
        {
            return Ok(ConnectNetwork::Connected(link.clone()));
        }
        if self.radio_busy() {
            return Err(NetworksError::Busy);
        }
        tracing::info!(%ssid, "switching network on a client's request");
        let request = network.connect_request();
        Ok(ConnectNetwork::Joining(self.start_request(request, None, now)))
    }
}
