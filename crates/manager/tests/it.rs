//! The manager in memory: requests in, actions and events out, time advanced by hand. No runtime, no radio.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]
#![allow(clippy::disallowed_methods, reason = "tests are the caller that supplies time")]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use wifiprov_backend::{
    AccessPoint, AuthMode, Bssid, Channel, ConnectError, ConnectRequest, LinkEvent, LinkInfo, Passphrase, Rssi,
    ScanParams, Ssid,
};
use wifiprov_manager::{
    Action, AttemptId, AutoStop, ClientId, Credentials, Event, FailReason, Manager, ManagerConfig, ManagerError,
    ProvState, ProvisioningStatus, RequestError, WifiState, WriteOutcome,
};

/// The client of most tests.
const ALICE: ClientId = ClientId(1);
const BOB: ClientId = ClientId(2);

fn link(ssid: &str) -> LinkInfo {
    LinkInfo {
        ssid: Ssid::try_from(ssid).unwrap(),
        bssid: "02:00:00:00:00:01".parse::<Bssid>().unwrap(),
        channel: Channel::new(6).unwrap(),
        auth: AuthMode::Wpa2Psk,
        ip4: Ipv4Addr::new(10, 0, 0, 5),
        rssi: Rssi::new(-40),
    }
}

fn credentials(ssid: &str, pass: &str) -> Credentials {
    Credentials {
        ssid: Ssid::try_from(ssid).unwrap(),
        passphrase: (!pass.is_empty()).then(|| Passphrase::new(pass.to_owned()).unwrap()),
    }
}

fn actions(m: &mut Manager) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

/// The one connection attempt among the pending actions.
fn attempt(m: &mut Manager) -> (AttemptId, ConnectRequest) {
    let connects: Vec<_> = actions(m)
        .into_iter()
        .filter_map(|a| match a {
            Action::Connect { attempt, request } => Some((attempt, request)),
            _ => None,
        })
        .collect();
    assert_eq!(connects.len(), 1, "exactly one connect expected");
    connects.into_iter().next().unwrap()
}

/// Answers the scan a policy round starts with: `ssid` is in range.
fn round_scan_sees(m: &mut Manager, now: Instant, ssid: &str) {
    let pending = actions(m);
    assert!(pending.iter().any(|a| matches!(a, Action::Scan(_))), "a round starts with a scan: {pending:?}");
    m.handle_scan_result(now, Ok(vec![ap(Some(ssid), 1, -50)]));
}

fn status(m: &mut Manager, now: Instant) -> ProvisioningStatus {
    m.provisioning_status(ALICE, now)
}

fn events(m: &mut Manager) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// Started, credentials applied; returns the time of ApplyConfig.
fn applied(config: ManagerConfig, pass: &str) -> (Manager, Instant) {
    let t0 = Instant::now();
    let mut m = Manager::new(config);
    m.start().unwrap();
    m.set_credentials(ALICE, credentials("home", pass)).unwrap();
    m.apply_credentials(ALICE, t0).unwrap();
    (m, t0)
}

#[test]
fn success_persists_reports_and_auto_stops() {
    let (mut m, t0) = applied(ManagerConfig::default(), "correct-horse");
    assert_eq!(m.state(), ProvState::CredRecv);
    // The connection starts only after the connect delay, so the ApplyConfig reply goes out first.
    assert!(actions(&mut m).is_empty());
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    m.handle_timeout(t0 + Duration::from_millis(999));
    assert!(actions(&mut m).is_empty());
    let t1 = t0 + Duration::from_secs(1);
    m.handle_timeout(t1);
    let (id, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"home");

    m.handle_connect_result(t1, id, Ok(link("home")));
    // The network that worked is saved at the top of the list; the attempt succeeds once that is on storage.
    assert!(matches!(actions(&mut m).as_slice(), [Action::SaveNetworks(list)]
        if list.get_at(0).is_some_and(|n| n.ssid().as_bytes() == b"home")));
    assert_eq!(m.state(), ProvState::CredRecv);
    assert_eq!(status(&mut m, t1), ProvisioningStatus::Connecting { attempts_remaining: None });
    let mut seen = events(&mut m);
    assert!(!seen.iter().any(|e| matches!(e, Event::CredSuccess(_))), "no success before the write");
    m.handle_networks_written(t1, m.networks_revision(), WriteOutcome::Written);
    assert_eq!(m.state(), ProvState::Success);
    // Auto-stop is armed at 30 s; the first Connected report brings it forward to the cleanup delay.
    assert_eq!(m.poll_timeout(), Some(t1 + Duration::from_secs(30)));
    // Another client seeing the success does not end provisioning; the one that applied does.
    assert!(matches!(m.provisioning_status(BOB, t1), ProvisioningStatus::Connected(_)));
    assert_eq!(m.state(), ProvState::Success);
    let ProvisioningStatus::Connected(info) = status(&mut m, t1) else { panic!() };
    assert_eq!(info.ip4.to_string(), "10.0.0.5");
    assert_eq!(m.state(), ProvState::Stopping);
    assert_eq!(m.poll_timeout(), Some(t1 + Duration::from_secs(1)));
    m.handle_timeout(t1 + Duration::from_secs(1));
    assert_eq!(m.state(), ProvState::Idle);
    assert!(matches!(actions(&mut m).as_slice(), [Action::StopService]));
    seen.extend(events(&mut m));
    let kinds: Vec<_> = seen
        .into_iter()
        .map(|e| match e {
            Event::Init => "Init",
            Event::Start => "Start",
            Event::SetStaConfig { .. } => "SetStaConfig",
            Event::CredRecv { .. } => "CredRecv",
            Event::CredSuccess(_) => "CredSuccess",
            Event::End => "End",
            _ => "other",
        })
        .filter(|k| *k != "other")
        .collect();
    assert_eq!(kinds, ["Init", "Start", "SetStaConfig", "CredRecv", "CredSuccess", "End"]);
}

/// Joined the network of ALICE's credentials; the save is handed out and not reported yet.
fn joined_and_saving(config: ManagerConfig) -> (Manager, Instant, u64) {
    let (mut m, t0) = applied(config, "correct-horse");
    m.handle_timeout(t0 + Duration::from_secs(1));
    let (id, _) = attempt(&mut m);
    let t1 = t0 + Duration::from_secs(1);
    m.handle_connect_result(t1, id, Ok(link("home")));
    assert!(actions(&mut m).iter().any(|a| matches!(a, Action::SaveNetworks(_))));
    events(&mut m);
    let revision = m.networks_revision();
    (m, t1, revision)
}

#[test]
fn a_network_that_cannot_be_saved_fails_the_attempt() {
    let (mut m, t1, revision) = joined_and_saving(ManagerConfig::default());
    assert_eq!(m.networks().len(), 1);
    // An older revision's outcome says nothing about this one.
    m.handle_networks_written(t1, revision - 1, WriteOutcome::Failed);
    assert_eq!(m.state(), ProvState::CredRecv);
    m.handle_networks_written(t1, revision, WriteOutcome::Failed);
    assert_eq!(m.state(), ProvState::Fail);
    assert_eq!(status(&mut m, t1), ProvisioningStatus::Failed(FailReason::NotSaved));
    // An observer sees the failure too; nobody is ever told "connected".
    assert_eq!(m.provisioning_status(ClientId(9), t1), ProvisioningStatus::Failed(FailReason::NotSaved));
    assert_eq!(events(&mut m), [Event::CredFail(FailReason::NotSaved)]);
    // The device leaves the network, and the list is back to what storage holds: nothing to rejoin.
    assert!(matches!(actions(&mut m).as_slice(), [Action::Disconnect]));
    assert_eq!(*m.wifi(), WifiState::Disconnected);
    assert!(m.networks().is_empty());
    // The client can try again.
    m.set_credentials(ALICE, credentials("home", "correct-horse")).unwrap();
    assert_eq!(m.state(), ProvState::Started);
}

#[test]
fn an_open_network_given_a_passphrase_is_saved_without_it() {
    let (mut m, t0) = applied(ManagerConfig::default(), "not-needed-here");
    m.handle_timeout(t0 + Duration::from_secs(1));
    let (id, _) = attempt(&mut m);
    let open = LinkInfo { auth: AuthMode::Open, ..link("home") };
    m.handle_connect_result(t0 + Duration::from_secs(1), id, Ok(open));
    let saved = m.networks().get_at(0).unwrap();
    assert!(saved.passphrase().is_none());
    m.handle_networks_written(t0, m.networks_revision(), WriteOutcome::Written);
    assert!(matches!(status(&mut m, t0), ProvisioningStatus::Connected(_)));
}

#[test]
fn a_save_that_takes_too_long_fails_the_attempt() {
    let (mut m, t1, revision) = joined_and_saving(ManagerConfig::default());
    let limit = m.poll_timeout().unwrap();
    assert_eq!(limit, t1 + Duration::from_secs(10));
    m.handle_timeout(limit - Duration::from_millis(1));
    assert_eq!(m.state(), ProvState::CredRecv);
    m.handle_timeout(limit);
    assert_eq!(status(&mut m, limit), ProvisioningStatus::Failed(FailReason::NotSaved));
    // A late success changes nothing.
    m.handle_networks_written(limit, revision, WriteOutcome::Written);
    assert_eq!(m.state(), ProvState::Fail);
}

#[test]
fn a_lost_link_while_saving_is_rejoined_and_the_save_still_counts() {
    let (mut m, t1, revision) = joined_and_saving(ManagerConfig::default());
    m.handle_link_event(t1, LinkEvent::LinkLost { reason: wifiprov_backend::DisconnectReason::BEACON_TIMEOUT });
    // The network is in the list: the policy rejoins it rather than leaving the station offline, once its scan
    // sees it.
    round_scan_sees(&mut m, t1, "home");
    let (id, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"home");
    m.handle_networks_written(t1, revision, WriteOutcome::Written);
    assert_eq!(m.state(), ProvState::Success);
    m.handle_connect_result(t1, id, Ok(link("home")));
    assert!(matches!(status(&mut m, t1), ProvisioningStatus::Connected(_)));
}

#[test]
fn wrong_passphrase_fails_and_reset_accepts_new_credentials() {
    let (mut m, t0) = applied(ManagerConfig::default(), "wrong-horse");
    m.handle_timeout(t0 + Duration::from_secs(1));
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0 + Duration::from_secs(2), id, Err(ConnectError::AuthFailed));
    assert_eq!(m.state(), ProvState::Fail);
    assert_eq!(status(&mut m, t0), ProvisioningStatus::Failed(FailReason::AuthError));
    assert!(events(&mut m).contains(&Event::CredFail(FailReason::AuthError)));
    // Credentials applied and failed: applying without new ones is refused.
    assert_eq!(m.apply_credentials(ALICE, t0), Err(RequestError::AlreadyApplied { state: ProvState::Fail }));
    m.reset_on_failure().unwrap();
    assert_eq!(m.state(), ProvState::Started);
    // A second reset is refused: there is no failure to reset.
    assert!(m.reset_on_failure().is_err());
}

#[test]
fn limited_attempts_report_what_remains_then_fail() {
    let config = ManagerConfig { connect_attempts: 3, ..ManagerConfig::default() };
    let (mut m, t0) = applied(config, "correct-horse");
    let mut now = t0;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
        let (id, _) = attempt(&mut m);
        m.handle_connect_result(now, id, Err(ConnectError::AssociationFailed));
        if let WifiState::Connecting { attempts_remaining: Some(n) } = m.wifi() {
            remaining.push(*n);
        }
    }
    assert_eq!(remaining, [2, 1]);
    // An unclassified failure at the limit reports ESP's default reason.
    assert_eq!(status(&mut m, now), ProvisioningStatus::Failed(FailReason::AuthError));
    assert!(events(&mut m).contains(&Event::CredFail(FailReason::AuthError)));
    m.handle_timeout(now + Duration::from_secs(3600));
    assert!(actions(&mut m).iter().all(|a| !matches!(a, Action::Connect { .. })), "no further attempt");
}

#[test]
fn unlimited_attempts_retry_transient_failures_and_stop_on_definite_ones() {
    let (mut m, t0) = applied(ManagerConfig::default(), "correct-horse");
    m.handle_timeout(t0 + Duration::from_secs(1));
    let (first, _) = attempt(&mut m);
    m.handle_connect_result(t0 + Duration::from_secs(1), first, Err(ConnectError::Timeout));
    assert_eq!(*m.wifi(), WifiState::Connecting { attempts_remaining: None });
    m.handle_timeout(m.poll_timeout().unwrap());
    let (second, _) = attempt(&mut m);
    // A late answer to a superseded attempt changes nothing.
    m.handle_connect_result(t0 + Duration::from_secs(3), first, Err(ConnectError::NetworkNotFound));
    assert_eq!(m.state(), ProvState::CredRecv);
    m.handle_connect_result(t0 + Duration::from_secs(4), second, Err(ConnectError::NetworkNotFound));
    assert_eq!(status(&mut m, t0), ProvisioningStatus::Failed(FailReason::NetworkNotFound));
}

#[test]
fn retries_of_a_failing_backend_back_off() {
    // A backend that fails at once (NetworkManager gone) must not be retried in a tight loop forever.
    let (mut m, t0) = applied(ManagerConfig::default(), "correct-horse");
    let mut now = t0 + Duration::from_secs(1);
    m.handle_timeout(now);
    let mut pauses = Vec::new();
    for _ in 0..8 {
        let (id, _) = attempt(&mut m);
        m.handle_connect_result(now, id, Err(ConnectError::Timeout));
        assert_eq!(m.state(), ProvState::CredRecv, "an unclassified failure is retried");
        let next = m.poll_timeout().unwrap();
        pauses.push((next - now).as_secs());
        now = next;
        m.handle_timeout(now);
    }
    assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
    // New credentials start from the short pause again.
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(now, id, Err(ConnectError::AuthFailed));
    m.reset_on_failure().unwrap();
    m.set_credentials(ALICE, credentials("home", "correct-horse")).unwrap();
    m.apply_credentials(ALICE, now).unwrap();
    m.handle_timeout(now + Duration::from_secs(1));
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(now + Duration::from_secs(1), id, Err(ConnectError::Timeout));
    assert_eq!(m.poll_timeout().unwrap() - (now + Duration::from_secs(1)), Duration::from_secs(1));
}

#[test]
fn credentials_follow_esp_state_rules() {
    let t0 = Instant::now();
    let mut m = Manager::new(ManagerConfig::default());
    assert_eq!(m.set_credentials(ALICE, credentials("home", "long-enough")), Err(RequestError::NotServing));
    m.start().unwrap();
    assert_eq!(m.apply_credentials(ALICE, t0), Err(RequestError::NoCredentials));
    // An open network: no passphrase.
    m.set_credentials(ALICE, credentials("cafe", "")).unwrap();
    m.apply_credentials(ALICE, t0).unwrap();
    // Once applied, new credentials need the attempt to end first, as on ESP.
    assert_eq!(m.set_credentials(ALICE, credentials("other", "long-enough")), Err(RequestError::Busy));
    assert_eq!(m.apply_credentials(ALICE, t0), Err(RequestError::Busy));
}

#[test]
fn each_client_applies_only_its_own_credentials() {
    let t0 = Instant::now();
    let mut m = Manager::new(ManagerConfig::default());
    m.start().unwrap();
    // In lock-step: Alice sets the right passphrase, Bob a wrong one, Alice applies.
    m.set_credentials(ALICE, credentials("home", "correct-horse")).unwrap();
    m.set_credentials(BOB, credentials("home", "wrong-horse")).unwrap();
    m.apply_credentials(ALICE, t0).unwrap();
    // Bob's apply while Alice's attempt runs is refused; it does not replace hers.
    assert_eq!(m.apply_credentials(BOB, t0), Err(RequestError::Busy));
    m.handle_timeout(t0 + Duration::from_secs(1));
    let (id, request) = attempt(&mut m);
    assert_eq!(request.passphrase.unwrap().expose_secret(), "correct-horse", "the device joins with Alice's");
    // Only Alice is told how her attempt counts down; Bob sees the station connecting.
    assert_eq!(m.provisioning_status(BOB, t0), ProvisioningStatus::Connecting { attempts_remaining: None });
    m.handle_connect_result(t0 + Duration::from_secs(2), id, Err(ConnectError::AuthFailed));
    // Alice's failure never reads as Bob's: he still holds credentials of his own.
    assert_eq!(status(&mut m, t0), ProvisioningStatus::Failed(FailReason::AuthError));
    assert_eq!(m.provisioning_status(BOB, t0), ProvisioningStatus::Disconnected);
    // A client with nothing in play (a later run of a command-line client) sees the device as ESP reports it.
    let observer = ClientId(3);
    assert_eq!(m.provisioning_status(observer, t0), ProvisioningStatus::Failed(FailReason::AuthError));
    // A client that leaves takes its credentials with it.
    m.forget_client(BOB);
    m.reset_on_failure().unwrap();
    assert_eq!(m.apply_credentials(BOB, t0), Err(RequestError::NoCredentials));
}

fn ap(ssid: Option<&str>, last: u8, rssi: i8) -> AccessPoint {
    AccessPoint {
        ssid: ssid.map(|s| Ssid::try_from(s).unwrap()),
        bssid: format!("02:00:00:00:00:{last:02x}").parse().unwrap(),
        channel: Channel::new(1).unwrap(),
        rssi: Rssi::new(rssi),
        auth: AuthMode::Open,
    }
}

#[test]
fn scan_results_are_sorted_filtered_and_capped() {
    let mut m = Manager::new(ManagerConfig { scan_max_entries: 3, ..ManagerConfig::default() });
    // Not serving: refused.
    assert_eq!(m.start_scan(ScanParams::default()), Err(RequestError::NotServing));
    m.start().unwrap();
    actions(&mut m);
    m.start_scan(ScanParams::default()).unwrap();
    assert!(matches!(actions(&mut m).as_slice(), [Action::Scan(_)]));
    // A second start while scanning does not start another scan.
    m.start_scan(ScanParams::default()).unwrap();
    assert!(actions(&mut m).is_empty());
    assert!(!m.scan_finished() && m.scan_running());
    m.handle_scan_result(
        Instant::now(),
        Ok(vec![
            ap(Some("weak"), 1, -90),
            ap(None, 2, -10),
            ap(Some("strong"), 3, -30),
            ap(Some("mid"), 4, -60),
            ap(Some("mid2"), 5, -61),
        ]),
    );
    assert!(m.scan_finished());
    let names: Vec<&[u8]> = m.scan_results().iter().map(|ap| ap.ssid.as_ref().unwrap().as_bytes()).collect();
    assert_eq!(names, [&b"strong"[..], b"mid", b"mid2"]);
}

#[test]
fn reprovision_needs_auto_stop_disabled() {
    let (mut m, t0) = applied(ManagerConfig::default(), "correct-horse");
    assert!(m.reset_for_reprovision(t0).is_err());

    let config = ManagerConfig { auto_stop: AutoStop::Disabled, ..ManagerConfig::default() };
    let (mut m, t0) = applied(config, "correct-horse");
    m.handle_timeout(t0 + Duration::from_secs(1));
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0 + Duration::from_secs(1), id, Ok(link("home")));
    m.handle_networks_written(t0, m.networks_revision(), WriteOutcome::Written);
    status(&mut m, t0);
    assert_eq!(m.state(), ProvState::Success, "no auto-stop");
    events(&mut m);
    actions(&mut m);
    m.reset_for_reprovision(t0).unwrap();
    assert_eq!(m.state(), ProvState::Started);
    assert!(events(&mut m).contains(&Event::Start));
    assert!(actions(&mut m).iter().any(|a| matches!(a, Action::Disconnect)));
}

#[test]
fn a_lost_link_is_rejoined() {
    let (mut m, t0) = applied(ManagerConfig::default(), "correct-horse");
    m.handle_timeout(t0 + Duration::from_secs(1));
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0 + Duration::from_secs(1), id, Ok(link("home")));
    actions(&mut m);
    let t2 = t0 + Duration::from_secs(5);
    m.handle_link_event(t2, LinkEvent::LinkLost { reason: wifiprov_backend::DisconnectReason::BEACON_TIMEOUT });
    assert_eq!(*m.wifi(), WifiState::Connecting { attempts_remaining: None });
    // The network is saved now, so the policy rejoins it as soon as a scan sees it.
    round_scan_sees(&mut m, t2, "home");
    let (_, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"home");
}

#[test]
fn lifecycle_calls_are_checked() {
    let mut m = Manager::new(ManagerConfig::default());
    assert!(matches!(m.reset_on_failure(), Err(ManagerError::InvalidState { state: ProvState::Idle })));
    m.start().unwrap();
    assert!(m.start().is_err());
    assert!(m.disable_auto_stop(Duration::from_secs(1)).is_err(), "only before start");
    assert_eq!(status(&mut m, Instant::now()), ProvisioningStatus::Disconnected);
    m.deinit();
    let all = events(&mut m);
    assert_eq!(all.last(), Some(&Event::Deinit));
    assert!(all.contains(&Event::End));
    assert_eq!(status(&mut m, Instant::now()), ProvisioningStatus::NotServing, "a stopped manager reports nothing");
}

mod policy;
