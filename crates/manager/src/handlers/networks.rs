//! `prov-networks`: wifiprov's saved-network endpoint (docs/prov-networks.md).
//!
//! List, remove and move answer at once. Add (unless it says not to connect) and connect need the radio:
//! they start an attempt and the daemon's handler waits for [`Manager::take_request_outcome`], then builds
//! the answer with [`joined_response`]. A List that asks for a scan waits for the scan the same way.

use std::time::Instant;

use wifiprov_backend::{Bssid, DisconnectReason, Passphrase, Ssid};
use wifiprov_proto::messages::networks::{
    AddRequest, ConnectFailure, Connected, Entry, LastAttempt, NetStatus, Request, Response, Security,
};

use super::wire_auth;
use crate::manager::{Manager, WifiState};
use crate::networks::{ConnectOutcome, NetworkError, NetworkSecurity, SavedNetwork, Visibility};
use crate::policy::{RequestId, RequestOutcome};

/// What a `prov-networks` request needs before it can be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworksReply {
    /// The answer.
    Ready(Response),
    /// The outcome of this join request: wait for [`Manager::take_request_outcome`], then answer with
    /// [`joined_response`].
    AwaitJoin(RequestId),
    /// A scan: wait for [`Manager::scan_finished`], then answer with [`Manager::networks_listing`].
    AwaitScan,
}

impl Manager {
    /// Handles one `prov-networks` request. Refusals are statuses; nothing changes unless the status is
    /// success.
    pub fn handle_networks(&mut self, now: Instant, request: &Request) -> NetworksReply {
        match request {
            Request::List { scan: false } => NetworksReply::Ready(self.networks_listing(NetStatus::Success)),
            Request::List { scan: true } => {
                if !self.scan.running {
                    self.start_scan(wifiprov_backend::ScanParams::default());
                }
                NetworksReply::AwaitScan
            }
            Request::Add(add) => self.add(now, add),
            Request::Remove { ssid } => NetworksReply::Ready(Response::Remove { status: self.remove(now, ssid) }),
            Request::Move { ssid, to } => NetworksReply::Ready(self.move_network(ssid, *to)),
            Request::Connect { ssid } => self.switch(now, ssid),
        }
    }

    /// The List answer: saved networks in priority order, then the networks of the last scan.
    pub fn networks_listing(&self, status: NetStatus) -> Response {
        let link = match &self.wifi {
            WifiState::Connected(link) => Some(link),
            _ => None,
        };
        let networks = self
            .networks
            .merged_with_scan(&self.scan.results, link)
            .into_iter()
            .map(|listed| Entry {
                last_attempt: self
                    .networks
                    .get(&listed.ssid)
                    .and_then(|n| n.last_result())
                    .map(|r| last_attempt(r.outcome)),
                ssid: listed.ssid.as_bytes().to_vec(),
                priority: listed.priority.and_then(|p| u32::try_from(p).ok()),
                saved: listed.saved,
                connected: listed.connected,
                rssi: listed.rssi.map(|r| i32::from(r.dbm())),
                bssid: listed.bssid.map(|b| b.octets()),
                auth_mode: wire_auth(listed.security),
                hidden: listed.visibility == Visibility::Hidden,
            })
            .collect();
        Response::List { status, networks, capacity: u32::try_from(self.networks.capacity()).unwrap_or(u32::MAX) }
    }

    fn add(&mut self, now: Instant, add: &AddRequest) -> NetworksReply {
        let refuse = |status| NetworksReply::Ready(add_response(status, None));
        let network = match saved_network(add) {
            Ok(network) => network,
            Err(_) => return refuse(NetStatus::InvalidArgument),
        };
        let priority = add.priority.and_then(|p| usize::try_from(p).ok());
        // Check the whole operation on a copy first, so a join is never attempted for a network that could
        // not be saved afterwards.
        let mut trial = self.networks.clone();
        let added = match trial.add_or_update(network.clone(), priority) {
            Ok(added) => added,
            Err(error) => return refuse(status_of(&error)),
        };
        if !add.connect {
            self.networks = trial;
            self.networks_changed();
            tracing::info!(ssid = %network.ssid(), index = added.index(), "network saved without joining");
            return NetworksReply::Ready(Response::Add {
                status: NetStatus::Success,
                priority: u32::try_from(added.index()).unwrap_or(u32::MAX),
                updated: matches!(added, crate::networks::AddOutcome::Updated { .. }),
                failure: None,
                connected: None,
            });
        }
        if self.radio_busy() {
            return refuse(NetStatus::Busy);
        }
        tracing::info!(ssid = %network.ssid(), "joining a network before saving it");
        let request = network.connect_request();
        NetworksReply::AwaitJoin(self.start_request(request, Some((network, priority)), now))
    }

    fn remove(&mut self, now: Instant, ssid: &[u8]) -> NetStatus {
        let Ok(ssid) = Ssid::try_from(ssid.to_vec()) else { return NetStatus::InvalidArgument };
        if let Err(error) = self.networks.remove(&ssid) {
            return status_of(&error);
        }
        tracing::info!(%ssid, "saved network removed");
        self.networks_changed();
        let joined = self.station.connected.as_ref() == Some(&ssid);
        let trying = self.station.in_flight.as_ref().is_some_and(|f| f.ssid == ssid && !self.radio_busy());
        if (joined || trying) && self.state != crate::ProvState::CredRecv {
            // A removed network is not one the device may stay on: leave it and let the policy pick the next.
            self.leave_network();
            self.begin_round(now);
        }
        NetStatus::Success
    }

    fn move_network(&mut self, ssid: &[u8], to: u32) -> Response {
        let refuse = |status| Response::Move { status, from: 0 };
        let Ok(ssid) = Ssid::try_from(ssid.to_vec()) else { return refuse(NetStatus::InvalidArgument) };
        let to = usize::try_from(to).unwrap_or(usize::MAX);
        match self.networks.move_to(&ssid, to) {
            Ok(from) => {
                if from != to {
                    tracing::info!(%ssid, from, to, "saved network moved");
                    self.networks_changed();
                }
                Response::Move { status: NetStatus::Success, from: u32::try_from(from).unwrap_or(u32::MAX) }
            }
            Err(error) => refuse(status_of(&error)),
        }
    }

    fn switch(&mut self, now: Instant, ssid: &[u8]) -> NetworksReply {
        let refuse = |status| NetworksReply::Ready(Response::Connect { status, failure: None, connected: None });
        let Ok(ssid) = Ssid::try_from(ssid.to_vec()) else { return refuse(NetStatus::InvalidArgument) };
        let Some(network) = self.networks.get(&ssid) else { return refuse(NetStatus::NotFound) };
        if let WifiState::Connected(link) = &self.wifi
            && link.ssid == ssid
        {
            return NetworksReply::Ready(Response::Connect {
                status: NetStatus::Success,
                failure: None,
                connected: Some(connected(link)),
            });
        }
        if self.radio_busy() {
            return refuse(NetStatus::Busy);
        }
        tracing::info!(%ssid, "switching network on a client's request");
        let request = network.connect_request();
        NetworksReply::AwaitJoin(self.start_request(request, None, now))
    }
}

/// The answer to an Add or Connect `request` whose join ended with `outcome`; `None` when the device gave up
/// waiting for it.
pub fn joined_response(request: &Request, outcome: Option<RequestOutcome>) -> Response {
    let (status, failure, link, index, updated) = match outcome {
        Some(RequestOutcome::Joined { link, index, updated }) => {
            (NetStatus::Success, None, Some(connected(&link)), index, updated)
        }
        Some(RequestOutcome::Failed(outcome)) => (NetStatus::ConnectFailed, Some(failure_of(outcome)), None, 0, false),
        Some(RequestOutcome::NotSaved(error)) => (status_of(&error), None, None, 0, false),
        Some(RequestOutcome::Preempted) => (NetStatus::Busy, None, None, 0, false),
        None => (NetStatus::ConnectFailed, Some(ConnectFailure::Timeout), None, 0, false),
    };
    match request {
        Request::Connect { .. } => Response::Connect { status, failure, connected: link },
        _ => Response::Add {
            status,
            priority: u32::try_from(index).unwrap_or(u32::MAX),
            updated,
            failure,
            connected: link,
        },
    }
}

fn add_response(status: NetStatus, failure: Option<ConnectFailure>) -> Response {
    Response::Add { status, priority: 0, updated: false, failure, connected: None }
}

fn saved_network(add: &AddRequest) -> Result<SavedNetwork, NetworkError> {
    let ssid = Ssid::try_from(add.ssid.clone()).map_err(|_| NetworkError::InvalidArgument("invalid SSID"))?;
    let passphrase = if add.passphrase.is_empty() {
        None
    } else {
        Some(
            Passphrase::from_bytes(add.passphrase.as_bytes().to_vec())
                .map_err(|_| NetworkError::InvalidArgument("invalid passphrase"))?,
        )
    };
    let security = match add.security {
        Some(Security::Open) => NetworkSecurity::Open,
        Some(Security::WpaPsk) => NetworkSecurity::WpaPsk,
        Some(Security::Wpa3Sae) => NetworkSecurity::Wpa3Sae,
        Some(Security::Wpa2Wpa3) => NetworkSecurity::Transition,
        // A guess that joining corrects: the radio reports the security it found.
        None if passphrase.is_some() => NetworkSecurity::WpaPsk,
        None => NetworkSecurity::Open,
    };
    let visibility = if add.hidden { Visibility::Hidden } else { Visibility::Broadcast };
    Ok(SavedNetwork::new(ssid, security, passphrase)?.with_visibility(visibility).with_bssid(add.bssid.map(Bssid::new)))
}

fn status_of(error: &NetworkError) -> NetStatus {
    match error {
        NetworkError::Full { .. } => NetStatus::Full,
        NetworkError::OutOfRange { .. } => NetStatus::OutOfRange,
        NetworkError::NotFound { .. } => NetStatus::NotFound,
        NetworkError::InvalidArgument(_) => NetStatus::InvalidArgument,
    }
}

fn failure_of(outcome: ConnectOutcome) -> ConnectFailure {
    match outcome {
        ConnectOutcome::AuthFailed => ConnectFailure::Auth,
        ConnectOutcome::NotFound => ConnectFailure::NotFound,
        // Both a backend timeout and the policy's own attempt deadline end up as this reason.
        ConnectOutcome::OtherFailure(reason) if reason == DisconnectReason::CONNECTION_FAIL => ConnectFailure::Timeout,
        _ => ConnectFailure::Other,
    }
}

fn last_attempt(outcome: ConnectOutcome) -> LastAttempt {
    if outcome.is_success() { LastAttempt::Connected } else { LastAttempt::Failed(failure_of(outcome)) }
}

fn connected(link: &wifiprov_backend::LinkInfo) -> Connected {
    Connected {
        ssid: link.ssid.as_bytes().to_vec(),
        bssid: link.bssid.octets().to_vec(),
        channel: u32::from(link.channel.get()),
        ip4: link.ip4,
        rssi: i32::from(link.rssi.dbm()),
    }
}
