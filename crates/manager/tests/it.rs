//! The manager in memory: requests in, actions and events out, time advanced by hand. No runtime, no radio.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]
#![allow(clippy::disallowed_methods, reason = "tests are the caller that supplies time")]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use wifiprov_backend::{
    AccessPoint, AuthMode, Bssid, Channel, ConnectError, ConnectRequest, LinkEvent, LinkInfo, Rssi, Ssid,
};
use wifiprov_manager::{
    Action, AttemptId, AutoStop, Event, FailReason, Manager, ManagerConfig, ManagerError, ProvState, WifiState,
};
use wifiprov_proto::messages::config::{self, Request, Response, StationState};
use wifiprov_proto::messages::{Status, ctrl, scan};

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

fn set_config(ssid: &str, pass: &str) -> Request {
    Request::SetConfig(config::SetConfig { ssid: ssid.into(), passphrase: pass.into(), bssid: vec![], channel: 0 })
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

fn status(m: &mut Manager, now: Instant) -> Option<StationState> {
    let Response::GetStatus(report) = m.handle_config(now, &Request::GetStatus) else { panic!() };
    report.state
}

fn events(m: &mut Manager) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// Started, credentials applied; returns the time of ApplyConfig.
fn applied(config: ManagerConfig, pass: &str) -> (Manager, Instant) {
    let t0 = Instant::now();
    let mut m = Manager::new(config);
    m.start().unwrap();
    assert_eq!(m.handle_config(t0, &set_config("home", pass)), Response::SetConfig(Status::Success));
    assert_eq!(m.handle_config(t0, &Request::ApplyConfig), Response::ApplyConfig(Status::Success));
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
    assert_eq!(m.state(), ProvState::Success);
    // The network that worked is saved at the top of the list.
    assert!(matches!(actions(&mut m).as_slice(), [Action::SaveNetworks(list)]
        if list.get_at(0).is_some_and(|n| n.ssid().as_bytes() == b"home")));
    // Auto-stop is armed at 30 s; the first Connected report brings it forward to the cleanup delay.
    assert_eq!(m.poll_timeout(), Some(t1 + Duration::from_secs(30)));
    let Response::GetStatus(report) = m.handle_config(t1, &Request::GetStatus) else { panic!() };
    assert!(matches!(report.state, Some(StationState::Connected(ref info)) if info.ip4_addr == "10.0.0.5"));
    assert_eq!(m.state(), ProvState::Stopping);
    assert_eq!(m.poll_timeout(), Some(t1 + Duration::from_secs(1)));
    m.handle_timeout(t1 + Duration::from_secs(1));
    assert_eq!(m.state(), ProvState::Idle);
    assert!(matches!(actions(&mut m).as_slice(), [Action::StopService]));
    let kinds: Vec<_> = events(&mut m)
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

#[test]
fn wrong_passphrase_fails_and_reset_accepts_new_credentials() {
    let (mut m, t0) = applied(ManagerConfig::default(), "wrong-horse");
    m.handle_timeout(t0 + Duration::from_secs(1));
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0 + Duration::from_secs(2), id, Err(ConnectError::AuthFailed));
    assert_eq!(m.state(), ProvState::Fail);
    assert_eq!(status(&mut m, t0), Some(StationState::Failed(config::FailReason::AuthError)));
    assert!(events(&mut m).contains(&Event::CredFail(FailReason::AuthError)));
    // Credentials applied and failed: ApplyConfig without new ones is refused.
    assert_eq!(m.handle_config(t0, &Request::ApplyConfig), Response::ApplyConfig(Status::InternalError));
    assert_eq!(m.handle_ctrl(t0, &ctrl::Request::Reset), ctrl::Response::Reset { status: Status::Success });
    assert_eq!(m.state(), ProvState::Started);
    // A second reset is refused: there is no failure to reset.
    assert_eq!(m.handle_ctrl(t0, &ctrl::Request::Reset), ctrl::Response::Reset { status: Status::InternalError });
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
    assert_eq!(status(&mut m, now), Some(StationState::Failed(config::FailReason::AuthError)));
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
    assert_eq!(status(&mut m, t0), Some(StationState::Failed(config::FailReason::NetworkNotFound)));
}

#[test]
fn set_config_validation_and_state_rules() {
    let t0 = Instant::now();
    let mut m = Manager::new(ManagerConfig::default());
    m.start().unwrap();
    for bad in [set_config("", "long-enough"), set_config(&"x".repeat(33), "long-enough"), set_config("a", "short")] {
        assert_eq!(m.handle_config(t0, &bad), Response::SetConfig(Status::InvalidArgument));
    }
    let bad_bssid = Request::SetConfig(config::SetConfig {
        ssid: b"a".to_vec(),
        passphrase: b"".as_slice().into(),
        bssid: vec![1, 2],
        channel: 0,
    });
    assert_eq!(m.handle_config(t0, &bad_bssid), Response::SetConfig(Status::InvalidArgument));
    assert_eq!(m.handle_config(t0, &Request::ApplyConfig), Response::ApplyConfig(Status::InternalError));
    // An open network: empty passphrase.
    assert_eq!(m.handle_config(t0, &set_config("cafe", "")), Response::SetConfig(Status::Success));
    assert_eq!(m.handle_config(t0, &Request::ApplyConfig), Response::ApplyConfig(Status::Success));
    // Once applied, new credentials need a reset first, as on ESP.
    assert_eq!(m.handle_config(t0, &set_config("other", "long-enough")), Response::SetConfig(Status::InternalError));
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
fn scan_results_are_sorted_filtered_capped_and_paged() {
    let mut m = Manager::new(ManagerConfig { scan_max_entries: 3, ..ManagerConfig::default() });
    let start = scan::Request::Start { blocking: false, passive: false, group_channels: 0, period_ms: 0 };
    // Not serving: refused with a status.
    assert_eq!(m.handle_scan(&start).unwrap(), scan::Response::Start { status: Status::InternalError });
    m.start().unwrap();
    actions(&mut m);
    assert_eq!(m.handle_scan(&start).unwrap(), scan::Response::Start { status: Status::Success });
    assert!(matches!(actions(&mut m).as_slice(), [Action::Scan(_)]));
    // A second start while scanning does not start another scan.
    m.handle_scan(&start).unwrap();
    assert!(actions(&mut m).is_empty());
    assert!(!m.scan_finished());
    m.handle_scan_result(Ok(vec![
        ap(Some("weak"), 1, -90),
        ap(None, 2, -10),
        ap(Some("strong"), 3, -30),
        ap(Some("mid"), 4, -60),
        ap(Some("mid2"), 5, -61),
    ]));
    assert!(m.scan_finished());
    assert_eq!(
        m.handle_scan(&scan::Request::Status).unwrap(),
        scan::Response::Status { status: Status::Success, finished: true, result_count: 3 }
    );
    let scan::Response::Result { status, entries } =
        m.handle_scan(&scan::Request::Result { start_index: 0, count: 3 }).unwrap()
    else {
        panic!()
    };
    assert_eq!(status, Status::Success);
    let names: Vec<&[u8]> = entries.iter().map(|e| e.ssid.as_slice()).collect();
    assert_eq!(names, [&b"strong"[..], b"mid", b"mid2"]);
    assert!(matches!(
        m.handle_scan(&scan::Request::Result { start_index: 3, count: 1 }),
        Err(ManagerError::InvalidRequest(_))
    ));
    assert!(matches!(
        m.handle_scan(&scan::Request::Result { start_index: 1, count: 3 }),
        Err(ManagerError::InvalidRequest(_))
    ));
}

#[test]
fn reprovision_needs_auto_stop_disabled() {
    let (mut m, t0) = applied(ManagerConfig::default(), "correct-horse");
    assert_eq!(m.handle_ctrl(t0, &ctrl::Request::Reprov), ctrl::Response::Reprov { status: Status::InternalError });

    let config = ManagerConfig { auto_stop: AutoStop::Disabled, ..ManagerConfig::default() };
    let (mut m, t0) = applied(config, "correct-horse");
    m.handle_timeout(t0 + Duration::from_secs(1));
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0 + Duration::from_secs(1), id, Ok(link("home")));
    let Response::GetStatus(_) = m.handle_config(t0, &Request::GetStatus) else { panic!() };
    assert_eq!(m.state(), ProvState::Success, "no auto-stop");
    events(&mut m);
    actions(&mut m);
    assert_eq!(m.handle_ctrl(t0, &ctrl::Request::Reprov), ctrl::Response::Reprov { status: Status::Success });
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
    // The network is saved now, so the policy rejoins it at once.
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
    let Response::GetStatus(report) = m.handle_config(Instant::now(), &Request::GetStatus) else { panic!() };
    assert_eq!(report.state, Some(StationState::Disconnected));
    m.deinit();
    let all = events(&mut m);
    assert_eq!(all.last(), Some(&Event::Deinit));
    assert!(all.contains(&Event::End));
    let Response::GetStatus(report) = m.handle_config(Instant::now(), &Request::GetStatus) else { panic!() };
    assert_eq!(
        report,
        config::StatusReport { status: Status::Success, state: None },
        "a stopped manager reports nothing"
    );
}

mod policy;
