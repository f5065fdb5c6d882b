//! The connection policy: which network the station joins, when, and when provisioning reopens.
//!
//! Three parties want the radio, in this order of precedence:
//! 1. a provisioning attempt (credentials from `prov-config` ApplyConfig, state `CredRecv`);
//! 2. a client's `prov-networks` request to add-and-join or switch to a network;
//! 3. the policy, which walks the saved networks in priority order ("a round"), one attempt at a time, each
//!    bounded by `attempt_timeout`. A round that joins nothing schedules the next after `retry_interval`.
//!    With `scan_first`, a round starts with a scan and skips the saved networks it does not see (hidden ones
//!    are always tried: no scan names them).
//!
//! Provisioning reopens on its own when the device is offline: right after the first round at start fails,
//! and `reopen_grace` after a lost link that no round could replace. A service the policy opened closes
//! again once a saved network is joined. Every attempt carries an [`AttemptId`], so a late outcome of a
//! superseded attempt never moves the state.

use std::collections::VecDeque;
use std::time::Instant;

use wifiprov_backend::{ConnectError, ConnectRequest, LinkInfo, ScanParams, Ssid};

use crate::action::{Action, AttemptId, Credentials, Event};
use crate::manager::{Manager, ProvState, WifiState};
use crate::networks::{ConnectOutcome, LastResult, NetworkSecurity, SavedNetwork, Visibility};

/// Finished client requests kept for their handlers to collect; older ones are dropped.
const FINISHED_REQUESTS_KEPT: usize = 16;

/// Identifies a client request that waits for a connection outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

/// How a client's join request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Joined; for an add, the network is saved at `index` (`updated` when it replaced a saved one).
    Joined {
        /// The link.
        link: LinkInfo,
        /// The saved network's priority index.
        index: usize,
        /// Whether an add replaced a saved network.
        updated: bool,
    },
    /// Joining failed; nothing was saved.
    Failed(ConnectOutcome),
    /// The network joined but could not be saved (the list changed meanwhile).
    NotSaved(crate::networks::NetworkError),
    /// A provisioning attempt took the radio first.
    Preempted,
}

#[derive(Debug)]
pub(crate) enum Purpose {
    /// The credentials of ApplyConfig.
    Provisioning,
    /// A saved network, tried by the policy.
    Saved,
    /// A client's `prov-networks` request.
    Request { id: RequestId, add: Option<(SavedNetwork, Option<usize>)> },
}

#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) id: AttemptId,
    pub(crate) ssid: Ssid,
    pub(crate) purpose: Purpose,
    /// When the attempt counts as failed; `None` leaves it to the backend (provisioning attempts).
    deadline: Option<Instant>,
}

#[derive(Debug, Default)]
pub(crate) struct Station {
    pub(crate) in_flight: Option<InFlight>,
    next_attempt: u64,
    /// The current round; `None` when no round is under way.
    round: Option<Round>,
    /// When the next round starts.
    next_round: Option<Instant>,
    /// When provisioning reopens if the device is still offline.
    reopen_at: Option<Instant>,
    /// Reopen provisioning as soon as the current round fails (the first round at start).
    reopen_when_round_fails: bool,
    /// Provisioning was opened by the policy, so it closes once a saved network is joined.
    pub(crate) opened_by_policy: bool,
    /// The network the station is on.
    pub(crate) connected: Option<Ssid>,
    next_request: u64,
    finished: VecDeque<(RequestId, RequestOutcome)>,
}

/// A round through the saved networks.
#[derive(Debug, Default)]
struct Round {
    /// The SSIDs tried so far.
    tried: Vec<Ssid>,
    /// Waiting for the round's scan.
    scanning: bool,
    /// The SSIDs the round's scan saw; `None` when there was no scan (or it failed): every network is tried.
    seen: Option<Vec<Ssid>>,
}

impl Station {
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [self.in_flight.as_ref().and_then(|f| f.deadline), self.next_round, self.reopen_at].into_iter().flatten().min()
    }

    pub(crate) fn take_in_flight(&mut self, attempt: AttemptId) -> Option<InFlight> {
        self.in_flight.take_if(|flight| flight.id == attempt)
    }

    pub(crate) fn cancel_round(&mut self) {
        self.round = None;
        self.next_round = None;
    }
}

impl Manager {
    /// Starts the policy: tries the saved networks in priority order, and (if configured) opens provisioning
    /// when none of them works. Returns false, and does nothing, when no network is saved.
    pub fn start_policy(&mut self, now: Instant) -> bool {
        if self.networks.is_empty() {
            return false;
        }
        self.station.reopen_when_round_fails = true;
        self.begin_round(now);
        true
    }

    /// The transport asked for by [`Action::StartService`] could not start: the service goes back to idle
    /// and the next reopen happens after the retry interval.
    pub fn handle_service_unavailable(&mut self, now: Instant) {
        if self.state == ProvState::Started && self.station.opened_by_policy {
            self.state = ProvState::Idle;
            self.station.opened_by_policy = false;
            self.events.push_back(Event::End);
            if self.station.connected.is_none() {
                self.station.reopen_at = Some(now + self.config.policy.retry_interval);
            }
        }
    }

    pub(crate) fn issue_connect(
        &mut self,
        request: ConnectRequest,
        purpose: Purpose,
        deadline: Option<Instant>,
    ) -> AttemptId {
        self.station.next_attempt += 1;
        let id = AttemptId(self.station.next_attempt);
        if !matches!(purpose, Purpose::Provisioning) {
            self.wifi = WifiState::Connecting { attempts_remaining: None };
        }
        self.station.connected = None;
        self.station.in_flight = Some(InFlight { id, ssid: request.ssid.clone(), purpose, deadline });
        self.actions.push_back(Action::Connect { attempt: id, request });
        id
    }

    /// Drops the attempt in flight (its outcome will be ignored); a waiting client request is told why.
    pub(crate) fn abandon_in_flight(&mut self) {
        if let Some(InFlight { purpose: Purpose::Request { id, .. }, .. }) = self.station.in_flight.take() {
            self.finish_request(id, RequestOutcome::Preempted);
        }
    }

    pub(crate) fn joined(&mut self, now: Instant, purpose: Purpose, link: LinkInfo) {
        tracing::info!(ssid = %link.ssid, bssid = %link.bssid, ip4 = %link.ip4, "joined");
        self.station.connected = Some(link.ssid.clone());
        self.station.cancel_round();
        self.station.reopen_at = None;
        self.station.reopen_when_round_fails = false;
        self.wifi = WifiState::Connected(link.clone());
        self.record(&link.ssid, ConnectOutcome::Connected);
        self.events.push_back(Event::StationConnected(link.clone()));
        match purpose {
            Purpose::Provisioning => self.provisioning_joined(now, &link),
            Purpose::Saved => {
                if self.station.opened_by_policy && self.state == ProvState::Started {
                    tracing::info!("online again; closing the provisioning the policy opened");
                    self.stop(now);
                }
            }
            Purpose::Request { id, add } => {
                let outcome = match add {
                    None => RequestOutcome::Joined {
                        index: self.networks.position(&link.ssid).unwrap_or_default(),
                        updated: false,
                        link,
                    },
                    Some((network, priority)) => {
                        let network = match NetworkSecurity::from_auth_mode(link.auth) {
                            Some(security) => network.with_security_if_valid(security),
                            None => network,
                        }
                        .with_last_result(Some(self.last_result(ConnectOutcome::Connected)));
                        match self.networks.add_or_update(network, priority) {
                            Ok(added) => {
                                self.networks_changed();
                                RequestOutcome::Joined {
                                    link,
                                    index: added.index(),
                                    updated: matches!(added, crate::networks::AddOutcome::Updated { .. }),
                                }
                            }
                            Err(error) => RequestOutcome::NotSaved(error),
                        }
                    }
                };
                self.finish_request(id, outcome);
            }
        }
    }

    pub(crate) fn attempt_failed(&mut self, now: Instant, flight: InFlight, error: &ConnectError) {
        let outcome = ConnectOutcome::from_failure(error.reason());
        tracing::info!(ssid = %flight.ssid, %outcome, "attempt failed");
        self.record(&flight.ssid, outcome);
        self.events.push_back(Event::ConnectFailed { ssid: flight.ssid.clone(), outcome });
        match flight.purpose {
            Purpose::Provisioning => self.provisioning_failed(now, error),
            Purpose::Saved => self.try_next(now),
            Purpose::Request { id, .. } => {
                self.finish_request(id, RequestOutcome::Failed(outcome));
                self.wifi = WifiState::Disconnected;
                self.begin_round(now);
            }
        }
    }

    pub(crate) fn link_lost(&mut self, now: Instant) {
        if self.provisioning_connecting() {
            // The provisioning attempt owns the radio and retries on its own.
            return;
        }
        if self.config.policy.reopen && self.station.reopen_at.is_none() {
            self.station.reopen_at = Some(now + self.config.policy.reopen_grace);
        }
        self.begin_round(now);
    }

    /// Starts a round through the saved networks, unless something with precedence holds the radio.
    pub(crate) fn begin_round(&mut self, now: Instant) {
        if self.provisioning_connecting() || self.station.in_flight.is_some() {
            return;
        }
        self.station.next_round = None;
        if self.config.policy.scan_first {
            self.wifi = WifiState::Connecting { attempts_remaining: None };
            self.station.round = Some(Round { scanning: true, ..Round::default() });
            self.actions.push_back(Action::Scan(ScanParams::default()));
            return;
        }
        self.station.round = Some(Round::default());
        self.try_next(now);
    }

    /// Whether the round waits for its scan.
    pub(crate) fn round_scanning(&self) -> bool {
        self.station.round.as_ref().is_some_and(|round| round.scanning)
    }

    /// The round's scan finished: its attempts start, with the networks it saw (every network when it failed).
    pub(crate) fn round_scanned(&mut self, now: Instant, seen: Option<Vec<Ssid>>) {
        let Some(round) = self.station.round.as_mut().filter(|round| round.scanning) else { return };
        round.scanning = false;
        if let Some(seen) = &seen {
            let missing: Vec<String> = self
                .networks
                .iter()
                .filter(|n| n.visibility() != Visibility::Hidden && !seen.contains(n.ssid()))
                .map(|n| n.ssid().to_string())
                .collect();
            if !missing.is_empty() {
                tracing::info!(?missing, "saved networks not in range are skipped this round");
            }
        }
        round.seen = seen;
        self.try_next(now);
    }

    /// Starts a round after the retry interval.
    pub(crate) fn schedule_round(&mut self, now: Instant) {
        self.station.round = None;
        self.station.next_round = Some(now + self.config.policy.retry_interval);
    }

    fn try_next(&mut self, now: Instant) {
        let Some(round) = &mut self.station.round else { return };
        let next = self.networks.iter().enumerate().find(|(_, network)| {
            let in_range = match &round.seen {
                Some(seen) => network.visibility() == Visibility::Hidden || seen.contains(network.ssid()),
                None => true,
            };
            in_range && !round.tried.contains(network.ssid())
        });
        if let Some((priority, network)) = next {
            round.tried.push(network.ssid().clone());
            let request = network.connect_request();
            tracing::info!(ssid = %network.ssid(), priority, "trying saved network");
            self.events.push_back(Event::TryingSaved { ssid: network.ssid().clone(), priority });
            let deadline = now + self.config.policy.attempt_timeout;
            self.issue_connect(request, Purpose::Saved, Some(deadline));
            return;
        }
        self.station.round = None;
        self.wifi = WifiState::Disconnected;
        if !self.networks.is_empty() {
            tracing::info!(saved = self.networks.len(), "no saved network could be joined");
            self.events.push_back(Event::NoNetworkJoined);
            self.station.next_round = Some(now + self.config.policy.retry_interval);
        }
        if std::mem::take(&mut self.station.reopen_when_round_fails) {
            self.reopen_provisioning();
        }
    }

    fn reopen_provisioning(&mut self) {
        if !self.config.policy.reopen || self.state != ProvState::Idle {
            return;
        }
        tracing::info!("offline: reopening provisioning");
        self.station.opened_by_policy = true;
        self.events.push_back(Event::ProvisioningReopened);
        self.open_service();
        self.actions.push_back(Action::StartService);
    }

    pub(crate) fn handle_policy_timeout(&mut self, now: Instant) {
        let expired = self.station.in_flight.as_ref().and_then(|f| f.deadline).is_some_and(|t| t <= now);
        if expired && let Some(flight) = self.station.in_flight.take() {
            // Abort the attempt in the backend before moving on.
            self.actions.push_back(Action::Disconnect);
            self.attempt_failed(now, flight, &ConnectError::Timeout);
        }
        if self.station.next_round.is_some_and(|t| t <= now) {
            self.station.next_round = None;
            if self.station.connected.is_none() {
                self.begin_round(now);
            }
        }
        if self.station.reopen_at.is_some_and(|t| t <= now) {
            self.station.reopen_at = None;
            if self.station.connected.is_none() {
                self.reopen_provisioning();
            }
        }
    }

    /// Saves the network a provisioning attempt joined at priority 0, and returns the revision that carries it
    /// (`None` when it cannot be saved). A full list makes room by dropping its lowest-priority network: the
    /// network that just worked is the one the user wants kept. A passphrase given for a network that turned out
    /// to be open is not kept: it was not used.
    pub(crate) fn save_provisioned(&mut self, credentials: &Credentials, link: &LinkInfo) -> Option<u64> {
        let security = NetworkSecurity::from_auth_mode(link.auth).unwrap_or(if credentials.passphrase.is_some() {
            NetworkSecurity::WpaPsk
        } else {
            NetworkSecurity::Open
        });
        let passphrase = if security == NetworkSecurity::Open { None } else { credentials.passphrase.clone() };
        let network = match SavedNetwork::new(credentials.ssid.clone(), security, passphrase) {
            Ok(network) => network,
            Err(error) => {
                tracing::warn!(ssid = %credentials.ssid, %error, "joined network cannot be saved");
                return None;
            }
        };
        let network = network.with_last_result(Some(self.last_result(ConnectOutcome::Connected)));
        if self.networks.get(&credentials.ssid).is_none()
            && self.networks.is_full()
            && let Some(last) = self.networks.as_slice().last().map(|n| n.ssid().clone())
        {
            tracing::warn!(dropped = %last, "saved-network list full; dropping its lowest-priority network");
            let _ = self.networks.remove(&last);
        }
        match self.networks.add_or_update(network, Some(0)) {
            Ok(_) => {
                self.networks_changed();
                Some(self.networks_revision)
            }
            Err(error) => {
                tracing::warn!(ssid = %credentials.ssid, %error, "joined network not saved");
                None
            }
        }
    }

    pub(crate) fn networks_changed(&mut self) {
        self.networks_revision += 1;
        self.events.push_back(Event::NetworksChanged);
        self.actions.push_back(Action::SaveNetworks(self.networks.clone()));
    }

    fn last_result(&self, outcome: ConnectOutcome) -> LastResult {
        LastResult::new(outcome, self.config.wall_clock.unix_secs())
    }

    /// Keeps the outcome in memory; the list is written only when it changes otherwise, so a flapping link
    /// does not wear the flash.
    fn record(&mut self, ssid: &Ssid, outcome: ConnectOutcome) {
        let result = self.last_result(outcome);
        let _ = self.networks.record_result(ssid, result);
    }

    pub(crate) fn start_request(
        &mut self,
        network: ConnectRequest,
        add: Option<(SavedNetwork, Option<usize>)>,
        now: Instant,
    ) -> RequestId {
        self.station.next_request += 1;
        let id = RequestId(self.station.next_request);
        self.station.cancel_round();
        self.station.in_flight = None;
        let deadline = now + self.config.policy.attempt_timeout;
        self.issue_connect(network, Purpose::Request { id, add }, Some(deadline));
        id
    }

    fn finish_request(&mut self, id: RequestId, outcome: RequestOutcome) {
        if self.station.finished.len() >= FINISHED_REQUESTS_KEPT {
            self.station.finished.pop_front();
        }
        self.station.finished.push_back((id, outcome));
    }

    /// The outcome of a client request, once it has one; each outcome is handed out once.
    pub fn take_request_outcome(&mut self, id: RequestId) -> Option<RequestOutcome> {
        let index = self.station.finished.iter().position(|(finished, _)| *finished == id)?;
        self.station.finished.remove(index).map(|(_, outcome)| outcome)
    }

    /// Whether a client request may take the radio now.
    pub(crate) fn radio_busy(&self) -> bool {
        self.state == ProvState::CredRecv
            || matches!(self.station.in_flight, Some(InFlight { purpose: Purpose::Request { .. }, .. }))
    }
}
