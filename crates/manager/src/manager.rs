//! The manager's state machine (fact sheet §8.2) and the inputs that drive it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use wifiprov_backend::{AccessPoint, BackendError, ConnectError, LinkEvent, LinkInfo};

use crate::action::{Action, AttemptId, Credentials, Event, FailReason, WriteOutcome};
use crate::client::ClientId;
use crate::config::{AutoStop, ManagerConfig};
use crate::networks::NetworkList;
use crate::policy::{Purpose, Station};

/// The provisioning service's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProvState {
    /// Not serving.
    Idle,
    /// Serving, waiting for credentials.
    Started,
    /// Credentials applied; connecting, then saving the network that was joined.
    CredRecv,
    /// Connected with the received credentials, and the network saved.
    Success,
    /// Connecting with the received credentials failed; waiting for a reset or new credentials.
    Fail,
    /// Stop requested; the service ends after the cleanup delay.
    Stopping,
}

/// The station as clients see it through `prov-config` GetStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WifiState {
    /// No connection and none under way.
    Disconnected,
    /// A connection attempt is under way; `attempts_remaining` once an attempt has failed.
    Connecting {
        /// Attempts left before the failure is reported, when attempts are limited.
        attempts_remaining: Option<u32>,
    },
    /// Connected.
    Connected(LinkInfo),
}

/// A call that the manager's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The call is not valid in the current state.
    #[error("not allowed while {state:?}")]
    InvalidState {
        /// The state the manager was in.
        state: ProvState,
    },
    /// A request the device refuses outright (ESP answers these by dropping the exchange).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
}

#[derive(Debug, Default)]
pub(crate) struct ScanState {
    pub(crate) running: bool,
    pub(crate) finished: bool,
    /// Sorted strongest first, hidden networks dropped, capped at `scan_max_entries`.
    pub(crate) results: Vec<AccessPoint>,
}

/// How long the provisioned network may take to reach storage before the attempt counts as failed (the service
/// gives a saved-network change as long).
const SAVE_LIMIT: Duration = Duration::from_secs(10);
/// The shortest pause before a failed provisioning attempt is retried.
const RETRY_DELAY_MIN: Duration = Duration::from_secs(1);
/// The longest pause between retries of a provisioning attempt that keeps failing for an unclassified reason.
const RETRY_DELAY_MAX: Duration = Duration::from_secs(30);

/// The save a joined provisioning attempt waits for: it succeeds only once its network is on storage.
#[derive(Debug)]
pub(crate) struct Saving {
    /// The first revision that carries the network.
    revision: u64,
    /// The list before it, put back when the save fails.
    before: NetworkList,
    /// The link the attempt joined, announced with the success.
    link: LinkInfo,
    /// When the save counts as failed.
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Timers {
    connect: Option<Instant>,
    auto_stop: Option<Instant>,
    cleanup: Option<Instant>,
}

/// The provisioning manager. See the crate documentation for how it is driven.
#[derive(Debug)]
pub struct Manager {
    pub(crate) config: ManagerConfig,
    pub(crate) state: ProvState,
    pub(crate) wifi: WifiState,
    /// Credentials each client has set and not applied yet.
    pub(crate) pending: Pending,
    /// The credentials of the provisioning attempt (ApplyConfig), while it is under way or succeeded.
    pub(crate) applied: Option<Credentials>,
    /// The client whose credentials the provisioning attempt uses: the only one told its failure.
    pub(crate) owner: Option<ClientId>,
    /// The provisioning attempt joined its network and waits for it to be saved (state `CredRecv`).
    pub(crate) saving: Option<Saving>,
    /// Failed attempts of the provisioning attempt so far: counts toward `connect_attempts` and spaces the
    /// retries.
    attempts: u32,
    last_reason: FailReason,
    pub(crate) scan: ScanState,
    timers: Timers,
    /// The saved networks, in priority order.
    pub(crate) networks: NetworkList,
    /// The connection policy's state: attempts in flight, rounds, reopen deadlines.
    pub(crate) station: Station,
    /// Counts the changes to `networks` that were handed out for saving.
    pub(crate) networks_revision: u64,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) events: VecDeque<Event>,
}

impl Manager {
    /// A manager in `Idle` with no saved network; emits [`Event::Init`].
    pub fn new(config: ManagerConfig) -> Self {
        let networks = NetworkList::with_capacity(config.max_networks.max(1)).unwrap_or_default();
        Self::with_networks(config, networks)
    }

    /// A manager in `Idle` with these saved networks (as loaded from storage); emits [`Event::Init`]. The
    /// list's capacity is raised to `config.max_networks` when that is larger; it is never lowered below the
    /// networks already saved.
    pub fn with_networks(config: ManagerConfig, mut networks: NetworkList) -> Self {
        if networks.set_capacity(config.max_networks).is_err() {
            tracing::warn!(
                saved = networks.len(),
                max_networks = config.max_networks,
                "more networks are saved than the configured maximum; keeping them all"
            );
        }
        let mut m = Self {
            config,
            state: ProvState::Idle,
            wifi: WifiState::Disconnected,
            pending: Pending::default(),
            applied: None,
            owner: None,
            saving: None,
            attempts: 0,
            last_reason: FailReason::AuthError,
            scan: ScanState::default(),
            timers: Timers::default(),
            networks,
            station: Station::default(),
            networks_revision: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        m.events.push_back(Event::Init);
        m
    }

    /// The service state.
    pub fn state(&self) -> ProvState {
        self.state
    }

    /// The station state.
    pub fn wifi(&self) -> &WifiState {
        &self.wifi
    }

    /// The settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// The saved networks, in priority order.
    pub fn networks(&self) -> &NetworkList {
        &self.networks
    }

    /// A number that grows with every change of the saved networks, i.e. with every
    /// [`Action::SaveNetworks`]; the driver uses it to tell clients when their change is on disk.
    pub fn networks_revision(&self) -> u64 {
        self.networks_revision
    }

    /// How the write of the saved networks up to `revision` ended (see [`Action::SaveNetworks`]). A provisioning
    /// attempt that joined its network succeeds once the network is written ([`Event::CredSuccess`]), and fails
    /// with [`FailReason::NotSaved`] when it could not be: a client is never told "connected" for a network the
    /// device would forget at its next start.
    pub fn handle_networks_written(&mut self, now: Instant, revision: u64, outcome: WriteOutcome) {
        let Some(saving) = &self.saving else { return };
        if revision < saving.revision {
            return;
        }
        if self.state != ProvState::CredRecv {
            self.saving = None;
            return;
        }
        match outcome {
            WriteOutcome::Written => self.provisioning_saved(now),
            WriteOutcome::Failed => self.provisioning_not_saved(now),
        }
    }

    /// A provisioning attempt is connecting (not only waiting for its network to be saved): it owns the radio.
    pub(crate) fn provisioning_connecting(&self) -> bool {
        self.state == ProvState::CredRecv && self.saving.is_none()
    }

    /// Starts serving. Allowed only when idle; like ESP it also starts on a provisioned device, and leaves
    /// the current network so the new credentials are tried on a clean radio.
    pub fn start(&mut self) -> Result<(), ManagerError> {
        if self.state != ProvState::Idle {
            return Err(ManagerError::InvalidState { state: self.state });
        }
        self.begin_provisioning();
        Ok(())
    }

    fn begin_provisioning(&mut self) {
        let had_credentials = self.applied.is_some();
        self.open_service();
        if had_credentials || !matches!(self.wifi, WifiState::Disconnected) {
            // ESP leaves the network so the new credentials are tried on a clean radio.
            self.leave_network();
        }
    }

    /// Enters `Started` without touching the station (the policy keeps running).
    pub(crate) fn open_service(&mut self) {
        self.state = ProvState::Started;
        self.pending.clear();
        self.applied = None;
        self.owner = None;
        self.saving = None;
        self.attempts = 0;
        self.timers.connect = None;
        self.timers.auto_stop = None;
        self.events.push_back(Event::Start);
    }

    /// Asks the service to stop after the cleanup delay (non-blocking, like `wifi_prov_mgr_stop_provisioning`).
    /// A connection attempt already under way carries on. Returns whether a stop was scheduled.
    pub fn stop(&mut self, now: Instant) -> bool {
        match self.state {
            ProvState::Idle | ProvState::Stopping => false,
            _ => {
                self.state = ProvState::Stopping;
                self.timers.auto_stop = None;
                self.timers.cleanup = Some(now + self.config.effective_cleanup_delay());
                self.scan = ScanState::default();
                true
            }
        }
    }

    /// Stops at once and shuts the manager down: [`Event::End`] if it was serving, then [`Event::Deinit`].
    pub fn deinit(&mut self) {
        if self.state != ProvState::Idle {
            self.end();
        }
        self.events.push_back(Event::Deinit);
    }

    fn end(&mut self) {
        self.state = ProvState::Idle;
        self.station.opened_by_policy = false;
        self.timers.cleanup = None;
        self.timers.auto_stop = None;
        self.scan = ScanState::default();
        self.pending.clear();
        self.owner = None;
        self.saving = None;
        self.actions.push_back(Action::StopService);
        self.events.push_back(Event::End);
    }

    /// Keeps the service up after success (required for reprovisioning); allowed only when idle.
    pub fn disable_auto_stop(&mut self, cleanup_delay: Duration) -> Result<(), ManagerError> {
        if self.state != ProvState::Idle {
            return Err(ManagerError::InvalidState { state: self.state });
        }
        self.config.auto_stop = AutoStop::Disabled;
        self.config.cleanup_delay = cleanup_delay;
        Ok(())
    }

    /// After a failed attempt, accepts new credentials again (`prov-ctrl` reset). Unlike ESP, the attempts
    /// counter starts over too.
    pub fn reset_on_failure(&mut self) -> Result<(), ManagerError> {
        if self.state != ProvState::Fail {
            return Err(ManagerError::InvalidState { state: self.state });
        }
        self.state = ProvState::Started;
        self.applied = None;
        self.owner = None;
        // The station state is the policy's by now (the failed attempt already left its network).
        self.attempts = 0;
        Ok(())
    }

    /// Starts over from any serving state (`prov-ctrl` reprov); only when auto-stop is disabled. Like ESP it
    /// leaves the current network; the policy rejoins a saved one after its retry interval unless new
    /// credentials arrive first.
    pub fn reset_for_reprovision(&mut self, now: Instant) -> Result<(), ManagerError> {
        if self.config.auto_stop != AutoStop::Disabled || matches!(self.state, ProvState::Idle | ProvState::Stopping) {
            return Err(ManagerError::InvalidState { state: self.state });
        }
        self.begin_provisioning();
        self.schedule_round(now);
        Ok(())
    }

    /// Forgets every saved network and leaves the current one (`wifi_prov_mgr_reset_provisioning`).
    pub fn reset_provisioning(&mut self) {
        self.applied = None;
        self.timers.connect = None;
        self.leave_network();
        self.station.cancel_round();
        let capacity = self.networks.capacity();
        self.networks = NetworkList::with_capacity(capacity).unwrap_or_default();
        self.networks_changed();
    }

    /// Leaves the current network and forgets any attempt in flight.
    pub(crate) fn leave_network(&mut self) {
        self.station.in_flight = None;
        self.station.connected = None;
        self.wifi = WifiState::Disconnected;
        self.actions.push_back(Action::Disconnect);
    }

    /// Starts the provisioning attempt with `client`'s credentials (ESP's ApplyConfig).
    pub(crate) fn apply(&mut self, client: ClientId, credentials: Credentials, now: Instant) {
        self.events.push_back(Event::SetStaConfig { ssid: credentials.ssid.clone() });
        self.events.push_back(Event::CredRecv { ssid: credentials.ssid.clone() });
        // The provisioning attempt takes the radio from the policy and from any client request.
        self.station.cancel_round();
        self.abandon_in_flight();
        self.applied = Some(credentials);
        self.owner = Some(client);
        self.attempts = 0;
        self.last_reason = FailReason::AuthError;
        self.wifi = WifiState::Connecting { attempts_remaining: None };
        self.state = ProvState::CredRecv;
        self.timers.connect = Some(now + self.config.connect_delay);
    }

    /// Called when a client has seen the success (GetStatus answered Connected): ESP's `wifi_prov_mgr_done`.
    pub(crate) fn done(&mut self, now: Instant) {
        if matches!(self.config.auto_stop, AutoStop::After { .. }) && self.state == ProvState::Success {
            self.stop(now);
        }
    }

    /// The outcome of the [`Action::Connect`] that carried `attempt`. Outcomes of attempts that were
    /// superseded or timed out meanwhile are ignored.
    pub fn handle_connect_result(&mut self, now: Instant, attempt: AttemptId, result: Result<LinkInfo, ConnectError>) {
        let Some(flight) = self.station.take_in_flight(attempt) else { return };
        match result {
            Ok(link) if link.ssid == flight.ssid => self.joined(now, flight.purpose, link),
            Ok(link) => {
                tracing::warn!(expected = %flight.ssid, got = %link.ssid, "the radio joined another network");
                self.attempt_failed(now, flight, &ConnectError::AssociationFailed);
            }
            Err(error) => self.attempt_failed(now, flight, &error),
        }
    }

    /// The provisioning attempt (ApplyConfig) joined its network: it succeeds once the network is saved.
    pub(crate) fn provisioning_joined(&mut self, now: Instant, link: &LinkInfo) {
        if self.state != ProvState::CredRecv {
            return;
        }
        let before = self.networks.clone();
        match self.applied.clone().and_then(|credentials| self.save_provisioned(&credentials, link)) {
            Some(revision) => {
                tracing::info!(ssid = %link.ssid, revision, "joined; saving the network before reporting success");
                self.saving = Some(Saving { revision, before, link: link.clone(), deadline: now + SAVE_LIMIT });
            }
            None => {
                // Nothing was handed out for saving; undo whatever making room did.
                self.networks = before;
                self.fail(now, FailReason::NotSaved);
            }
        }
    }

    /// The provisioned network is on storage: the attempt succeeded.
    fn provisioning_saved(&mut self, now: Instant) {
        let Some(saving) = self.saving.take() else { return };
        self.state = ProvState::Success;
        self.events.push_back(Event::CredSuccess(saving.link));
        if let AutoStop::After { timeout } = self.config.auto_stop {
            self.timers.auto_stop = Some(now + timeout);
        }
    }

    /// The provisioned network could not be saved: the attempt failed. When nothing else changed the list since,
    /// it goes back to what storage holds.
    fn provisioning_not_saved(&mut self, now: Instant) {
        let Some(saving) = self.saving.take() else { return };
        tracing::warn!(
            ssid = %saving.link.ssid,
            "the joined network could not be saved; the provisioning attempt fails and the device leaves it"
        );
        if self.networks_revision == saving.revision {
            self.networks = saving.before;
        }
        self.fail(now, FailReason::NotSaved);
    }

    /// The provisioning attempt (ApplyConfig) failed once.
    pub(crate) fn provisioning_failed(&mut self, now: Instant, error: &ConnectError) {
        if self.applied.is_none() || self.state != ProvState::CredRecv {
            return;
        }
        let classified = match error {
            ConnectError::AuthFailed | ConnectError::UnsupportedAuth { .. } => Some(FailReason::AuthError),
            ConnectError::NetworkNotFound => Some(FailReason::NetworkNotFound),
            _ => None,
        };
        if let Some(reason) = classified {
            self.last_reason = reason;
        }
        self.attempts = self.attempts.saturating_add(1);
        let limit = self.config.connect_attempts;
        if limit > 0 {
            if self.attempts < limit {
                self.retry_later(now, Some(limit - self.attempts));
            } else {
                self.fail(now, self.last_reason);
            }
        } else {
            match classified {
                Some(reason) => self.fail(now, reason),
                None => self.retry_later(now, None),
            }
        }
    }

    /// The next try after `self.attempts` failures. ESP retries at once, but an attempt on its radio always takes
    /// a while; a backend can fail at once (NetworkManager gone, say), and retrying forever without a pause would
    /// spin. So the pause doubles from `connect_delay` (at least [`RETRY_DELAY_MIN`]) up to [`RETRY_DELAY_MAX`].
    fn retry_later(&mut self, now: Instant, attempts_remaining: Option<u32>) {
        self.wifi = WifiState::Connecting { attempts_remaining };
        let base = self.config.connect_delay.max(RETRY_DELAY_MIN);
        let doublings = self.attempts.saturating_sub(1).min(16);
        let delay = base.saturating_mul(1 << doublings).min(RETRY_DELAY_MAX);
        tracing::debug!(failed = self.attempts, ?delay, "retrying the provisioning attempt");
        self.timers.connect = Some(now + delay);
    }

    fn fail(&mut self, now: Instant, reason: FailReason) {
        self.state = ProvState::Fail;
        self.last_reason = reason;
        self.timers.connect = None;
        self.leave_network();
        self.events.push_back(Event::CredFail(reason));
        // Clients see the failure until they reset; meanwhile the device goes back to a saved network.
        self.schedule_round(now);
    }

    /// Why the provisioning attempt failed, while in [`ProvState::Fail`].
    pub(crate) fn fail_reason(&self) -> FailReason {
        self.last_reason
    }

    /// Whether `client` owns the provisioning attempt (applied the credentials it uses).
    pub(crate) fn owns_attempt(&self, client: ClientId) -> bool {
        self.owner == Some(client)
    }

    /// A link event from the backend.
    pub fn handle_link_event(&mut self, now: Instant, event: LinkEvent) {
        match event {
            LinkEvent::LinkLost { reason } => {
                let Some(ssid) = self.station.connected.take() else { return };
                tracing::info!(%ssid, %reason, "link lost");
                self.events.push_back(Event::LinkLost { ssid });
                self.wifi = WifiState::Disconnected;
                self.link_lost(now);
            }
            LinkEvent::Connected(link) => {
                if matches!(self.wifi, WifiState::Connected(_)) {
                    self.wifi = WifiState::Connected(link);
                }
            }
            // Disconnects we asked for, and whatever a newer backend reports.
            _ => {}
        }
    }

    /// The outcome of an [`Action::Scan`], asked for by a client or by the connection policy (one answer serves
    /// both when their scans overlap).
    pub fn handle_scan_result(&mut self, now: Instant, result: Result<Vec<AccessPoint>, BackendError>) {
        if self.round_scanning() {
            let seen = match &result {
                Ok(found) => Some(found.iter().filter_map(|ap| ap.ssid.clone()).collect()),
                Err(error) => {
                    tracing::info!(%error, "scan failed; trying every saved network");
                    None
                }
            };
            self.round_scanned(now, seen);
        }
        if !self.scan.running {
            return;
        }
        let mut results: Vec<AccessPoint> =
            result.unwrap_or_default().into_iter().filter(|ap| !ap.is_hidden()).collect();
        results.sort_by(|a, b| b.rssi.cmp(&a.rssi).then(a.bssid.cmp(&b.bssid)));
        results.truncate(usize::try_from(self.config.scan_max_entries).unwrap_or(usize::MAX));
        self.scan = ScanState { running: false, finished: true, results };
    }

    /// Whether the last scan has finished.
    pub fn scan_finished(&self) -> bool {
        self.scan.finished
    }

    /// The results of the last finished scan: strongest first, hidden networks left out, at most
    /// [`ManagerConfig::scan_max_entries`].
    pub fn scan_results(&self) -> &[AccessPoint] {
        &self.scan.results
    }

    /// Whether a scan is under way.
    pub fn scan_running(&self) -> bool {
        self.scan.running
    }

    pub(crate) fn start_scan_now(&mut self, params: wifiprov_backend::ScanParams) {
        self.scan = ScanState { running: true, finished: false, results: Vec::new() };
        self.actions.push_back(Action::Scan(params));
    }

    /// The earliest deadline at which [`Manager::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.connect,
            self.timers.auto_stop,
            self.timers.cleanup,
            self.saving.as_ref().map(|saving| saving.deadline),
            self.station.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.connect.is_some_and(|t| t <= now) {
            self.timers.connect = None;
            if let Some(credentials) = &self.applied {
                let request = credentials.connect_request();
                self.issue_connect(request, Purpose::Provisioning, None);
            }
        }
        if self.saving.as_ref().is_some_and(|saving| saving.deadline <= now) {
            tracing::warn!(limit = ?SAVE_LIMIT, "the joined network was not saved in time");
            self.provisioning_not_saved(now);
        }
        self.handle_policy_timeout(now);
        if self.timers.auto_stop.is_some_and(|t| t <= now) {
            self.timers.auto_stop = None;
            self.stop(now);
        }
        if self.timers.cleanup.is_some_and(|t| t <= now) {
            self.end();
        }
    }

    /// The next piece of work for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for subscribers.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// How many clients may hold unapplied credentials at once. Front-ends report closed sessions with
/// [`Manager::forget_client`]; this bound only matters if one does not, and then the oldest are dropped.
const PENDING_KEPT: usize = 64;

/// Credentials set by each client and not applied yet, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Pending(VecDeque<(ClientId, Credentials)>);

impl Pending {
    pub(crate) fn set(&mut self, client: ClientId, credentials: Credentials) {
        self.0.retain(|(c, _)| *c != client);
        if self.0.len() >= PENDING_KEPT {
            self.0.pop_front();
        }
        self.0.push_back((client, credentials));
    }

    pub(crate) fn take(&mut self, client: ClientId) -> Option<Credentials> {
        let index = self.0.iter().position(|(c, _)| *c == client)?;
        self.0.remove(index).map(|(_, credentials)| credentials)
    }

    pub(crate) fn remove(&mut self, client: ClientId) {
        self.0.retain(|(c, _)| *c != client);
    }

    pub(crate) fn contains(&self, client: ClientId) -> bool {
        self.0.iter().any(|(c, _)| *c == client)
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}
