//! `prov-networks`: wifiprov's saved-network endpoint (docs/prov-networks.md). Answers once the request's effect
//! is durable: a join has an outcome, and a changed list is on disk, so a client that was told "success" never
//! loses the change to a crash.

use wifiprov_backend::{Bssid, DisconnectReason, LinkInfo, Passphrase, Ssid};
use wifiprov_manager::networks::{
    ConnectOutcome, ListedNetwork, NetworkError, NetworkSecurity, SavedNetwork, Visibility,
};
use wifiprov_manager::{JoinFirst, NetworksError};
use wifiprov_proto::endpoint::{EndpointHandler, HandlerFuture, Plaintext, SessionId};
use wifiprov_proto::messages::AuthMode;
use wifiprov_proto::messages::networks::{
    AddRequest, ConnectFailure, Connected, Entry, LastAttempt, NetStatus, Request, Response, Security,
};
use wifiprov_service::{Listing, NetworksFailure, WeakProvisioner};

use super::{malformed, provisioner};

pub(super) struct Networks(pub(super) WeakProvisioner);

impl EndpointHandler for Networks {
    fn handle(&self, _session: Option<SessionId>, request: Plaintext) -> HandlerFuture {
        let weak = self.0.clone();
        Box::pin(async move {
            let request = Request::decode(&request).map_err(malformed)?;
            let provisioner = provisioner(&weak)?;
            let response = match request {
                Request::List { scan } => listing(provisioner.list_networks(scan).await),
                Request::Add(add) => {
                    let refused =
                        |status| Response::Add { status, priority: 0, updated: false, failure: None, connected: None };
                    match saved_network(&add) {
                        Err(error) => refused(status_of(&error)),
                        Ok(network) => {
                            let priority = add.priority.and_then(|p| usize::try_from(p).ok());
                            let join = if add.connect { JoinFirst::Yes } else { JoinFirst::No };
                            match provisioner.add_network(network, priority, join).await {
                                Ok(added) => Response::Add {
                                    status: NetStatus::Success,
                                    priority: u32::try_from(added.index).unwrap_or(u32::MAX),
                                    updated: added.updated,
                                    failure: None,
                                    connected: added.link.as_ref().map(connected),
                                },
                                Err(failure) => {
                                    let (status, failure) = failed(&failure);
                                    Response::Add { status, priority: 0, updated: false, failure, connected: None }
                                }
                            }
                        }
                    }
                }
                Request::Remove { ssid } => {
                    let status = match Ssid::try_from(ssid) {
                        Err(_) => NetStatus::InvalidArgument,
                        Ok(ssid) => match provisioner.remove_network(ssid).await {
                            Ok(()) => NetStatus::Success,
                            Err(failure) => failed(&failure).0,
                        },
                    };
                    Response::Remove { status }
                }
                Request::Move { ssid, to } => match Ssid::try_from(ssid) {
                    Err(_) => Response::Move { status: NetStatus::InvalidArgument, from: 0 },
                    Ok(ssid) => {
                        let to = usize::try_from(to).unwrap_or(usize::MAX);
                        match provisioner.move_network(ssid, to).await {
                            Ok(from) => Response::Move {
                                status: NetStatus::Success,
                                from: u32::try_from(from).unwrap_or(u32::MAX),
                            },
                            Err(failure) => Response::Move { status: failed(&failure).0, from: 0 },
                        }
                    }
                },
                Request::Connect { ssid } => match Ssid::try_from(ssid) {
                    Err(_) => Response::Connect { status: NetStatus::InvalidArgument, failure: None, connected: None },
                    Ok(ssid) => match provisioner.connect_network(ssid).await {
                        Ok(link) => Response::Connect {
                            status: NetStatus::Success,
                            failure: None,
                            connected: Some(connected(&link)),
                        },
                        Err(failure) => {
                            let (status, failure) = failed(&failure);
                            Response::Connect { status, failure, connected: None }
                        }
                    },
                },
            };
            Ok(response.encode())
        })
    }
}

/// A List answer: saved networks in priority order, then the networks of the last scan.
fn listing(listing: Listing) -> Response {
    let status = if listing.scanned { NetStatus::Success } else { NetStatus::InternalError };
    let networks = listing.networks.iter().map(entry).collect();
    Response::List { status, networks, capacity: u32::try_from(listing.capacity).unwrap_or(u32::MAX) }
}

fn entry(listed: &ListedNetwork) -> Entry {
    Entry {
        last_attempt: listed.last_result.map(|r| last_attempt(r.outcome)),
        ssid: listed.ssid.as_bytes().to_vec(),
        priority: listed.priority.and_then(|p| u32::try_from(p).ok()),
        saved: listed.saved,
        connected: listed.connected,
        rssi: listed.rssi.map(|r| i32::from(r.dbm())),
        bssid: listed.bssid.map(|b| b.octets()),
        auth_mode: AuthMode::from(i32::from(listed.security.esp_code())),
        hidden: listed.visibility == Visibility::Hidden,
    }
}

/// The network an Add asks for. Without a security, a guess that joining corrects (the radio reports the
/// security it found).
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
        // A newer manager's refusal this endpoint has no status for.
        _ => NetStatus::InternalError,
    }
}

/// The status (and join failure) that tells a client why its request did not succeed.
fn failed(failure: &NetworksFailure) -> (NetStatus, Option<ConnectFailure>) {
    match failure {
        NetworksFailure::Refused(NetworksError::List(error)) | NetworksFailure::NotSaved(error) => {
            (status_of(error), None)
        }
        NetworksFailure::Refused(NetworksError::Busy) | NetworksFailure::Preempted => (NetStatus::Busy, None),
        NetworksFailure::JoinFailed(outcome) => (NetStatus::ConnectFailed, Some(failure_of(*outcome))),
        NetworksFailure::TimedOut => (NetStatus::ConnectFailed, Some(ConnectFailure::Timeout)),
        NetworksFailure::NotPersisted => {
            tracing::error!("a saved-network change could not be written; telling the client it failed");
            (NetStatus::InternalError, None)
        }
        _ => (NetStatus::InternalError, None),
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

fn connected(link: &LinkInfo) -> Connected {
    Connected {
        ssid: link.ssid.as_bytes().to_vec(),
        bssid: link.bssid.octets().to_vec(),
        channel: u32::from(link.channel.get()),
        ip4: link.ip4,
        rssi: i32::from(link.rssi.dbm()),
    }
}
