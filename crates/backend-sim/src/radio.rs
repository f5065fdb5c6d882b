//! The simulated radio: state, the `WifiBackend` implementation, and the controls tests use.

use core::time::Duration;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{broadcast, oneshot};
use tokio::task::AbortHandle;
use wifiprov_backend::{
    AccessPoint, AuthMode, BackendError, BoxFuture, Bssid, ConnectError, ConnectRequest, DisconnectReason, LinkEvent,
    LinkInfo, Passphrase, ScanParams, WifiBackend,
};

use crate::access_point::{CredentialError, Presence, SimAccessPoint};
use crate::scenario::{Scenario, ScenarioError, Settings};

/// The scenario [`SimRadio::builtin_default`] loads; its header comment documents the scenario format.
pub const BUILTIN_SCENARIO: &str = include_str!("../scenarios/default.toml");

/// Link events a subscriber may fall behind by before it sees `Lagged`. Links change a few times a minute at
/// most, so this only matters for a subscriber that has stopped reading.
const EVENT_CAPACITY: usize = 64;

/// A runtime control was given an access point the simulator cannot accept or does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// No access point has this BSSID.
    #[error("no simulated access point has BSSID {bssid}")]
    UnknownBssid {
        /// The BSSID asked for.
        bssid: Bssid,
    },
    /// An access point with this BSSID already exists.
    #[error("a simulated access point with BSSID {bssid} already exists")]
    DuplicateBssid {
        /// The BSSID in use.
        bssid: Bssid,
    },
    /// The passphrase does not fit the access point's security.
    #[error("simulated access point {bssid} has unusable credentials")]
    Credentials {
        /// The access point.
        bssid: Bssid,
        /// What does not fit.
        #[source]
        problem: CredentialError,
    },
}

/// A deterministic simulated station radio.
///
/// Every delay is a `tokio::time` sleep, so under a paused clock (`#[tokio::test(start_paused = true)]`) a
/// test runs instantly and timings are exact. Nothing is random. Joins and scans must be awaited inside a
/// tokio runtime.
///
/// Behaviour, beyond the [`WifiBackend`] contract:
/// - A scan takes the scenario's `scan_duration_ms` whatever the [`ScanParams`] timing says, lists the
///   present, non-hidden access points on the requested channels (the mode is ignored), strongest first,
///   ties broken by BSSID, as they are when the scan ends.
/// - A join to a known SSID picks the strongest present access point with that SSID (or the one with the
///   requested BSSID), waits its `join_latency`, then decides, against the access point's settings at that
///   moment and in this order: gone ([`ConnectError::NetworkNotFound`]); WEP or enterprise
///   ([`ConnectError::UnsupportedAuth`]); a flaky join left ([`ConnectError::AssociationFailed`]); wrong or
///   missing passphrase ([`ConnectError::AuthFailed`]); otherwise success.
/// - A join to an SSID no present access point has fails with [`ConnectError::NetworkNotFound`] after the
///   scan duration, as a real supplicant reports it after scanning.
/// - Hidden access points are joinable by exact SSID whatever the request's visibility hint says.
/// - An open network accepts a join that carries a passphrase (ESP-IDF and wpa_supplicant do the same: the
///   passphrase is simply unused).
/// - Passphrases are compared exactly; a 64-hex-digit raw PSK matches only the same hex string (compared
///   ignoring case), since the simulator does not derive PSKs. WPA3-SAE rejects raw PSKs, as SAE needs the
///   passphrase itself.
///
/// Cloning gives another handle to the same radio, so a test can keep one while the code under test holds
/// an `Arc<dyn WifiBackend>`.
#[derive(Clone)]
pub struct SimRadio {
    shared: Arc<Shared>,
}

struct Shared {
    // Never held across an `.await`: every critical section is a few field updates.
    state: Mutex<State>,
    events: broadcast::Sender<LinkEvent>,
}

struct State {
    settings: Settings,
    access_points: Vec<Entry>,
    next_ordinal: u32,
    next_attempt: u64,
    link: Link,
}

struct Entry {
    ap: SimAccessPoint,
    // Position in insertion order, used to derive a stable per-AP address from `ip4_base`.
    ordinal: u32,
}

enum Link {
    Idle,
    Joining {
        attempt: u64,
        // Dropping this wakes the joining future, which then reports `Cancelled`.
        _cancel: oneshot::Sender<()>,
    },
    Up {
        info: LinkInfo,
        attempt: u64,
        // The pending `lose_link_after` timer, cancelled when the link goes down for another reason.
        watchdog: Option<AbortHandle>,
    },
}

impl SimRadio {
    /// A radio surrounded by the access points of a TOML scenario.
    pub fn from_toml_str(text: &str) -> Result<Self, ScenarioError> {
        Scenario::from_toml_str(text).map(Self::from_scenario)
    }

    /// Like [`SimRadio::from_toml_str`], reading the scenario from a file. Errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        Self::from_toml_str(&text).map_err(|err| ScenarioError::InFile { path: path.to_owned(), source: Box::new(err) })
    }

    /// The built-in scenario ([`BUILTIN_SCENARIO`]): `wifiprov-demo` (WPA2-PSK, passphrase
    /// `wifiprov-demo-pass`), an open network, a WPA3-SAE network, a hidden network, and some neighbours.
    pub fn builtin_default() -> Self {
        let scenario = Scenario::from_toml_str(BUILTIN_SCENARIO)
            .expect("the built-in scenario is checked by a unit test and cannot change at run time");
        Self::from_scenario(scenario)
    }

    fn from_scenario(scenario: Scenario) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let access_points: Vec<Entry> =
            (0..).zip(scenario.access_points).map(|(ordinal, ap)| Entry { ap, ordinal }).collect();
        let next_ordinal = u32::try_from(access_points.len()).unwrap_or(u32::MAX);
        let state =
            State { settings: scenario.settings, access_points, next_ordinal, next_attempt: 0, link: Link::Idle };
        Self { shared: Arc::new(Shared { state: Mutex::new(state), events }) }
    }

    /// A snapshot of every access point, present or not, in the order they were added.
    pub fn access_points(&self) -> Vec<SimAccessPoint> {
        self.shared.lock().access_points.iter().map(|entry| entry.ap.clone()).collect()
    }

    /// Adds an access point. It shows up in scans that end from now on and can be joined at once.
    pub fn add_access_point(&self, ap: SimAccessPoint) -> Result<(), SimError> {
        ap.check_credentials().map_err(|problem| SimError::Credentials { bssid: ap.bssid, problem })?;
        let mut state = self.shared.lock();
        if state.find(ap.bssid).is_some() {
            return Err(SimError::DuplicateBssid { bssid: ap.bssid });
        }
        let ordinal = state.next_ordinal;
        state.next_ordinal = ordinal.saturating_add(1);
        state.access_points.push(Entry { ap, ordinal });
        Ok(())
    }

    /// Removes an access point and returns it. If the station is linked to it, the link is lost
    /// ([`LinkEvent::LinkLost`] with [`DisconnectReason::BEACON_TIMEOUT`]); a join in flight to it fails with
    /// [`ConnectError::NetworkNotFound`].
    pub fn remove_access_point(&self, bssid: Bssid) -> Result<SimAccessPoint, SimError> {
        let mut state = self.shared.lock();
        let index = state
            .access_points
            .iter()
            .position(|entry| entry.ap.bssid == bssid)
            .ok_or(SimError::UnknownBssid { bssid })?;
        let entry = state.access_points.remove(index);
        self.shared.lose_link_to(&mut state, bssid);
        Ok(entry.ap)
    }

    /// Switches an access point off ([`Presence::Absent`]) or back on. Switching off the access point the
    /// station is linked to loses the link, as [`SimRadio::remove_access_point`] does.
    pub fn set_presence(&self, bssid: Bssid, presence: Presence) -> Result<(), SimError> {
        let mut state = self.shared.lock();
        state.find_mut(bssid).ok_or(SimError::UnknownBssid { bssid })?.ap.presence = presence;
        if presence == Presence::Absent {
            self.shared.lose_link_to(&mut state, bssid);
        }
        Ok(())
    }

    /// Changes the passphrase an access point expects. It applies to joins that complete from now on; an
    /// established link stays up, as it would until a real access point re-keys.
    pub fn set_passphrase(&self, bssid: Bssid, passphrase: Option<Passphrase>) -> Result<(), SimError> {
        let mut state = self.shared.lock();
        let entry = state.find_mut(bssid).ok_or(SimError::UnknownBssid { bssid })?;
        crate::access_point::check_credentials(entry.ap.auth, passphrase.as_ref())
            .map_err(|problem| SimError::Credentials { bssid, problem })?;
        entry.ap.passphrase = passphrase;
        Ok(())
    }

    /// Makes the next `count` joins to an access point fail with [`ConnectError::AssociationFailed`],
    /// replacing any count left over.
    pub fn set_flaky_joins(&self, bssid: Bssid, count: u32) -> Result<(), SimError> {
        let mut state = self.shared.lock();
        state.find_mut(bssid).ok_or(SimError::UnknownBssid { bssid })?.ap.flaky_joins = count;
        Ok(())
    }

    /// Drops the current link as if the access point had stopped answering: [`LinkEvent::LinkLost`] with
    /// [`DisconnectReason::BEACON_TIMEOUT`]. Returns the link that was up, or `None` (and emits nothing) if
    /// there was none. The access point itself stays joinable.
    pub fn drop_link(&self) -> Option<LinkInfo> {
        let mut state = self.shared.lock();
        self.shared.take_link(&mut state, |_| true, LinkEnd::Lost(DisconnectReason::BEACON_TIMEOUT))
    }

    async fn scan_impl(&self, params: ScanParams) -> Result<Vec<AccessPoint>, BackendError> {
        let duration = self.shared.lock().settings.scan_duration;
        tokio::time::sleep(duration).await;
        let state = self.shared.lock();
        let mut found: Vec<AccessPoint> = state
            .access_points
            .iter()
            .map(|entry| &entry.ap)
            .filter(|ap| ap.is_visible())
            .filter(|ap| params.channels.as_ref().is_none_or(|channels| channels.contains(&ap.channel)))
            .map(|ap| AccessPoint {
                ssid: Some(ap.ssid.clone()),
                bssid: ap.bssid,
                channel: ap.channel,
                rssi: ap.rssi,
                auth: ap.auth,
            })
            .collect();
        found.sort_by(|a, b| b.rssi.cmp(&a.rssi).then_with(|| a.bssid.cmp(&b.bssid)));
        Ok(found)
    }

    async fn connect_impl(&self, request: ConnectRequest) -> Result<LinkInfo, ConnectError> {
        let (attempt, cancelled, target, wait) = {
            let mut state = self.shared.lock();
            let (attempt, cancelled) = self.shared.begin_attempt(&mut state);
            match state.pick(&request) {
                Some(ap) => (attempt, cancelled, Some(ap.bssid), ap.join_latency),
                None => (attempt, cancelled, None, state.settings.scan_duration),
            }
        };
        // Resets the link to idle if this future is dropped mid-join.
        let _guard = AttemptGuard { shared: &self.shared, attempt };

        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = cancelled => return Err(ConnectError::Cancelled),
        }

        let mut state = self.shared.lock();
        if !matches!(state.link, Link::Joining { attempt: current, .. } if current == attempt) {
            return Err(ConnectError::Cancelled);
        }
        let outcome = match target {
            Some(bssid) => self.shared.complete_join(&mut state, attempt, bssid, &request),
            None => Err(ConnectError::NetworkNotFound),
        };
        if outcome.is_err() {
            state.link = Link::Idle;
        }
        outcome
    }

    fn disconnect_now(&self) {
        let mut state = self.shared.lock();
        if matches!(state.link, Link::Joining { .. }) {
            // Dropping the cancel sender wakes the joining future with `Cancelled`.
            state.link = Link::Idle;
            return;
        }
        self.shared.take_link(&mut state, |_| true, LinkEnd::Requested);
    }
}

/// How a link ended, which decides the event.
#[derive(Clone, Copy)]
enum LinkEnd {
    Requested,
    Lost(DisconnectReason),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (only possible in a failing test) leaves the state consistent,
        // because every critical section writes whole values, so carry on rather than cascade the panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, event: LinkEvent) {
        // An error only means nobody is subscribed, which is fine.
        let _ = self.events.send(event);
    }

    /// Supersedes whatever link or attempt exists and registers a new attempt.
    fn begin_attempt(&self, state: &mut State) -> (u64, oneshot::Receiver<()>) {
        self.take_link(state, |_| true, LinkEnd::Requested);
        let attempt = state.next_attempt;
        state.next_attempt = attempt.wrapping_add(1);
        let (cancel, cancelled) = oneshot::channel();
        // Replacing a `Joining` link drops its sender, cancelling that attempt.
        state.link = Link::Joining { attempt, _cancel: cancel };
        (attempt, cancelled)
    }

    fn complete_join(
        self: &Arc<Self>,
        state: &mut State,
        attempt: u64,
        bssid: Bssid,
        request: &ConnectRequest,
    ) -> Result<LinkInfo, ConnectError> {
        let base = state.settings.ip4_base;
        let entry = state
            .find_mut(bssid)
            .filter(|entry| entry.ap.presence == Presence::Present)
            .ok_or(ConnectError::NetworkNotFound)?;
        let ap = &mut entry.ap;
        if ap.auth != AuthMode::Open && !ap.auth.uses_passphrase() {
            return Err(ConnectError::UnsupportedAuth { auth: ap.auth });
        }
        if ap.flaky_joins > 0 {
            ap.flaky_joins -= 1;
            return Err(ConnectError::AssociationFailed);
        }
        if !credentials_match(ap, request.passphrase.as_ref()) {
            return Err(ConnectError::AuthFailed);
        }

        let ip4 = ap.ip4.unwrap_or_else(|| derive_address(base, entry.ordinal));
        let ap = &entry.ap;
        let info =
            LinkInfo { ssid: ap.ssid.clone(), bssid: ap.bssid, channel: ap.channel, auth: ap.auth, ip4, rssi: ap.rssi };
        let watchdog = ap.lose_link_after.map(|after| self.spawn_watchdog(attempt, after));
        state.link = Link::Up { info: info.clone(), attempt, watchdog };
        self.emit(LinkEvent::Connected(info.clone()));
        Ok(info)
    }

    fn spawn_watchdog(self: &Arc<Self>, attempt: u64, after: Duration) -> AbortHandle {
        // Weak, so a forgotten timer does not keep a dropped radio alive.
        let shared: Weak<Self> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(shared) = shared.upgrade() {
                let mut state = shared.lock();
                let end = LinkEnd::Lost(DisconnectReason::BEACON_TIMEOUT);
                shared.take_link(&mut state, |current| current == attempt, end);
            }
        });
        task.abort_handle()
    }

    /// Loses the link if it is to `bssid`.
    fn lose_link_to(&self, state: &mut State, bssid: Bssid) {
        if matches!(&state.link, Link::Up { info, .. } if info.bssid == bssid) {
            self.take_link(state, |_| true, LinkEnd::Lost(DisconnectReason::BEACON_TIMEOUT));
        }
    }

    /// Takes down an established link whose attempt number passes `which`, emitting the event for `end`.
    /// Leaves idle and joining states alone.
    fn take_link(&self, state: &mut State, which: impl FnOnce(u64) -> bool, end: LinkEnd) -> Option<LinkInfo> {
        let Link::Up { attempt, .. } = &state.link else { return None };
        if !which(*attempt) {
            return None;
        }
        let Link::Up { info, watchdog, .. } = core::mem::replace(&mut state.link, Link::Idle) else {
            return None;
        };
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        self.emit(match end {
            LinkEnd::Requested => LinkEvent::Disconnected { reason: DisconnectReason::ASSOC_LEAVE },
            LinkEnd::Lost(reason) => LinkEvent::LinkLost { reason },
        });
        Some(info)
    }
}

impl State {
    fn find(&self, bssid: Bssid) -> Option<&Entry> {
        self.access_points.iter().find(|entry| entry.ap.bssid == bssid)
    }

    fn find_mut(&mut self, bssid: Bssid) -> Option<&mut Entry> {
        self.access_points.iter_mut().find(|entry| entry.ap.bssid == bssid)
    }

    /// The access point a supplicant would pick for the request: present, the right SSID (and BSSID, if
    /// pinned), strongest first. The first added wins a tie, so the choice is deterministic.
    fn pick(&self, request: &ConnectRequest) -> Option<&SimAccessPoint> {
        self.access_points
            .iter()
            .map(|entry| &entry.ap)
            .filter(|ap| ap.presence == Presence::Present && ap.ssid == request.ssid)
            .filter(|ap| request.bssid.is_none_or(|bssid| bssid == ap.bssid))
            .reduce(|best, ap| if ap.rssi > best.rssi { ap } else { best })
    }
}

fn credentials_match(ap: &SimAccessPoint, given: Option<&Passphrase>) -> bool {
    if ap.auth == AuthMode::Open {
        return true;
    }
    let (Some(expected), Some(given)) = (ap.passphrase.as_ref(), given) else {
        return false;
    };
    if ap.auth == AuthMode::Wpa3Sae && given.is_raw_psk() {
        return false;
    }
    // The simulator is a stand-in radio: comparing here is what a real supplicant does with the key.
    // Constant-time, as a supplicant's key check is: a stand-in radio must not teach callers otherwise.
    let (expected, given) = if expected.is_raw_psk() && given.is_raw_psk() {
        (expected.expose_secret().to_ascii_lowercase(), given.expose_secret().to_ascii_lowercase())
    } else {
        (expected.expose_secret().to_owned(), given.expose_secret().to_owned())
    };
    let (expected, given) = (zeroize::Zeroizing::new(expected), zeroize::Zeroizing::new(given));
    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes()).into()
}

fn derive_address(base: Ipv4Addr, ordinal: u32) -> Ipv4Addr {
    // Wrapping past 255.255.255.255 would only happen with billions of access points; fall back to the base.
    u32::from(base).checked_add(ordinal).map_or(base, Ipv4Addr::from)
}

struct AttemptGuard<'a> {
    shared: &'a Shared,
    attempt: u64,
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if matches!(state.link, Link::Joining { attempt, .. } if attempt == self.attempt) {
            state.link = Link::Idle;
        }
    }
}

impl WifiBackend for SimRadio {
    fn scan(&self, params: ScanParams) -> BoxFuture<'_, Result<Vec<AccessPoint>, BackendError>> {
        Box::pin(self.scan_impl(params))
    }

    fn connect(&self, request: ConnectRequest) -> BoxFuture<'_, Result<LinkInfo, ConnectError>> {
        Box::pin(self.connect_impl(request))
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.disconnect_now();
            Ok(())
        })
    }

    fn link(&self) -> Option<LinkInfo> {
        match &self.shared.lock().link {
            Link::Up { info, .. } => Some(info.clone()),
            Link::Idle | Link::Joining { .. } => None,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.shared.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scenario_is_valid() {
        let scenario = Scenario::from_toml_str(BUILTIN_SCENARIO);
        assert!(scenario.is_ok(), "{scenario:?}");
    }

    #[test]
    fn addresses_follow_insertion_order() {
        let base = Ipv4Addr::new(10, 0, 0, 254);
        assert_eq!(derive_address(base, 3), Ipv4Addr::new(10, 0, 1, 1));
        let top = Ipv4Addr::new(255, 255, 255, 255);
        assert_eq!(derive_address(top, 1), top);
    }
}
