//! The manager's state machine (fact sheet §8.2) and the inputs that drive it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use wifiprov_backend::{AccessPoint, BackendError, ConnectError, LinkEvent, LinkInfo};

use crate::action::{Action, Credentials, Event, FailReason};
use crate::config::{AutoStop, ManagerConfig};

/// The provisioning service's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProvState {
    /// Not serving.
    Idle,
    /// Serving, waiting for credentials.
    Started,
    /// Credentials applied; connecting.
    CredRecv,
    /// Connected with the received credentials.
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
    /// Gave up.
    Failed(FailReason),
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
    /// From SetConfig, until ApplyConfig takes it.
    pub(crate) pending: Option<Credentials>,
    /// The network being joined or joined.
    pub(crate) applied: Option<Credentials>,
    attempts: u32,
    last_reason: FailReason,
    pub(crate) scan: ScanState,
    timers: Timers,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl Manager {
    /// A manager in `Idle`; emits [`Event::Init`].
    pub fn new(config: ManagerConfig) -> Self {
        let mut m = Self {
            config,
            state: ProvState::Idle,
            wifi: WifiState::Disconnected,
            pending: None,
            applied: None,
            attempts: 0,
            last_reason: FailReason::AuthError,
            scan: ScanState::default(),
            timers: Timers::default(),
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
        self.state = ProvState::Started;
        self.pending = None;
        self.attempts = 0;
        self.timers.connect = None;
        self.timers.auto_stop = None;
        if self.applied.take().is_some() || !matches!(self.wifi, WifiState::Disconnected) {
            self.actions.push_back(Action::Disconnect);
        }
        self.wifi = WifiState::Disconnected;
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
        self.timers.cleanup = None;
        self.timers.auto_stop = None;
        self.scan = ScanState::default();
        self.pending = None;
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
        self.pending = None;
        self.applied = None;
        self.attempts = 0;
        self.wifi = WifiState::Disconnected;
        Ok(())
    }

    /// Starts over from any serving state (`prov-ctrl` reprov); only when auto-stop is disabled.
    pub fn reset_for_reprovision(&mut self) -> Result<(), ManagerError> {
        if self.config.auto_stop != AutoStop::Disabled || matches!(self.state, ProvState::Idle | ProvState::Stopping) {
            return Err(ManagerError::InvalidState { state: self.state });
        }
        self.begin_provisioning();
        Ok(())
    }

    /// Joins previously provisioned credentials outside a provisioning session (a provisioned device at boot).
    pub fn connect_provisioned(&mut self, credentials: Credentials) {
        self.actions.push_back(Action::Connect(credentials.connect_request()));
        self.applied = Some(credentials);
        self.wifi = WifiState::Connecting { attempts_remaining: None };
    }

    /// Forgets the provisioned credentials and leaves the network (`wifi_prov_mgr_reset_provisioning`).
    pub fn reset_provisioning(&mut self) {
        self.applied = None;
        self.timers.connect = None;
        self.wifi = WifiState::Disconnected;
        self.actions.push_back(Action::Disconnect);
        self.actions.push_back(Action::ClearPersisted);
    }

    /// Called by the `prov-config` handler on ApplyConfig.
    pub(crate) fn apply(&mut self, now: Instant) -> bool {
        if self.state != ProvState::Started {
            return false;
        }
        let Some(credentials) = self.pending.take() else { return false };
        self.events.push_back(Event::SetStaConfig { ssid: credentials.ssid.clone() });
        self.events.push_back(Event::CredRecv { ssid: credentials.ssid.clone() });
        self.applied = Some(credentials);
        self.attempts = 0;
        self.last_reason = FailReason::AuthError;
        self.wifi = WifiState::Connecting { attempts_remaining: None };
        self.state = ProvState::CredRecv;
        self.timers.connect = Some(now + self.config.connect_delay);
        true
    }

    /// Called when a client has seen the success (GetStatus answered Connected): ESP's `wifi_prov_mgr_done`.
    pub(crate) fn done(&mut self, now: Instant) {
        if matches!(self.config.auto_stop, AutoStop::After { .. }) && self.state == ProvState::Success {
            self.stop(now);
        }
    }

    /// The outcome of an [`Action::Connect`].
    pub fn handle_connect_result(&mut self, now: Instant, result: Result<LinkInfo, ConnectError>) {
        match result {
            Ok(link) => self.connected(now, link),
            // Superseded by a later connect or a disconnect we asked for: that one reports instead.
            Err(ConnectError::Cancelled) => {}
            Err(error) => self.connect_failed(now, &error),
        }
    }

    fn connected(&mut self, now: Instant, link: LinkInfo) {
        if self.applied.as_ref().is_none_or(|c| c.ssid != link.ssid) {
            // A result for credentials that were replaced meanwhile.
            return;
        }
        self.wifi = WifiState::Connected(link.clone());
        if self.state == ProvState::CredRecv {
            self.state = ProvState::Success;
            if let Some(credentials) = &self.applied {
                self.actions.push_back(Action::Persist(credentials.clone()));
            }
            self.events.push_back(Event::CredSuccess(link));
            if let AutoStop::After { timeout } = self.config.auto_stop {
                self.timers.auto_stop = Some(now + timeout);
            }
        }
    }

    fn connect_failed(&mut self, now: Instant, error: &ConnectError) {
        if self.applied.is_none() {
            return;
        }
        let classified = match error {
            ConnectError::AuthFailed | ConnectError::UnsupportedAuth { .. } => Some(FailReason::AuthError),
            ConnectError::NetworkNotFound => Some(FailReason::NetworkNotFound),
            _ => None,
        };
        if self.state != ProvState::CredRecv {
            // Outside a provisioning attempt (a provisioned device at boot, or after a lost link) keep trying.
            self.retry_later(now, None);
            return;
        }
        if let Some(reason) = classified {
            self.last_reason = reason;
        }
        let limit = self.config.connect_attempts;
        if limit > 0 {
            self.attempts += 1;
            if self.attempts < limit {
                self.retry_later(now, Some(limit - self.attempts));
            } else {
                self.fail(self.last_reason);
            }
        } else {
            match classified {
                Some(reason) => self.fail(reason),
                None => self.retry_later(now, None),
            }
        }
    }

    fn retry_later(&mut self, now: Instant, attempts_remaining: Option<u32>) {
        self.wifi = WifiState::Connecting { attempts_remaining };
        self.timers.connect = Some(now + self.config.connect_delay);
    }

    fn fail(&mut self, reason: FailReason) {
        self.state = ProvState::Fail;
        self.wifi = WifiState::Failed(reason);
        self.timers.connect = None;
        self.actions.push_back(Action::Disconnect);
        self.events.push_back(Event::CredFail(reason));
    }

    /// A link event from the backend.
    pub fn handle_link_event(&mut self, now: Instant, event: LinkEvent) {
        match event {
            LinkEvent::LinkLost { .. } if self.applied.is_some() => {
                if matches!(self.wifi, WifiState::Connected(_)) {
                    self.retry_later(now, None);
                }
            }
            LinkEvent::Connected(link) => {
                if matches!(self.wifi, WifiState::Connected(_)) {
                    self.wifi = WifiState::Connected(link);
                }
            }
            _ => {}
        }
    }

    /// The outcome of an [`Action::Scan`].
    pub fn handle_scan_result(&mut self, result: Result<Vec<AccessPoint>, BackendError>) {
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

    pub(crate) fn start_scan(&mut self, params: wifiprov_backend::ScanParams) {
        self.scan = ScanState { running: true, finished: false, results: Vec::new() };
        self.actions.push_back(Action::Scan(params));
    }

    /// The earliest deadline at which [`Manager::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timers.connect, self.timers.auto_stop, self.timers.cleanup].into_iter().flatten().min()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.connect.is_some_and(|t| t <= now) {
            self.timers.connect = None;
            if let Some(credentials) = &self.applied {
                self.actions.push_back(Action::Connect(credentials.connect_request()));
            }
        }
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
