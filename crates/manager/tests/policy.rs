//! The connection policy and `prov-networks`, in memory.

use std::time::{Duration, Instant};

use wifiprov_backend::{ConnectError, LinkEvent, Passphrase, Ssid};
use wifiprov_manager::networks::{
    AddOutcome, ConnectOutcome, NetworkError, NetworkList, NetworkSecurity, SavedNetwork,
};
use wifiprov_manager::{
    Action, AddNetwork, ConnectNetwork, Event, JoinFirst, Manager, ManagerConfig, NetworksError, PolicyConfig,
    ProvState, RequestOutcome, WallClock, WifiState,
};

use super::{actions, attempt, events, link};

#[derive(Debug)]
struct FixedClock;

impl WallClock for FixedClock {
    fn unix_secs(&self) -> u64 {
        1_800_000_000
    }
}

const ATTEMPT: Duration = Duration::from_secs(20);
const RETRY: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(60);

fn config() -> ManagerConfig {
    ManagerConfig {
        // Rounds without a scan first; `scan_first_*` tests cover the scan.
        policy: PolicyConfig {
            attempt_timeout: ATTEMPT,
            retry_interval: RETRY,
            reopen_grace: GRACE,
            reopen: true,
            scan_first: false,
        },
        wall_clock: std::sync::Arc::new(FixedClock),
        ..ManagerConfig::default()
    }
}

fn saved(ssid: &str) -> SavedNetwork {
    let passphrase = Passphrase::new(format!("{ssid}-passphrase")).unwrap();
    SavedNetwork::new(Ssid::try_from(ssid).unwrap(), NetworkSecurity::WpaPsk, Some(passphrase)).unwrap()
}

fn manager(ssids: &[&str]) -> Manager {
    let list = NetworkList::from_networks(8, ssids.iter().map(|s| saved(s)).collect()).unwrap();
    let mut m = Manager::with_networks(config(), list);
    events(&mut m);
    m
}

fn saved_order(m: &Manager) -> Vec<String> {
    m.networks().iter().map(|n| n.ssid().to_string()).collect()
}

#[test]
fn start_tries_saved_networks_in_priority_order() {
    let t0 = Instant::now();
    let mut m = manager(&["top", "second", "third"]);
    assert!(m.start_policy(t0));
    let (first, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"top");
    m.handle_connect_result(t0, first, Err(ConnectError::NetworkNotFound));
    let (second, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"second");
    m.handle_connect_result(t0, second, Ok(link("second")));
    assert!(matches!(m.wifi(), WifiState::Connected(l) if l.ssid.as_bytes() == b"second"));
    assert_eq!(m.state(), ProvState::Idle, "provisioning stays closed when a saved network works");
    let all = events(&mut m);
    assert!(all.contains(&Event::TryingSaved { ssid: Ssid::try_from("top").unwrap(), priority: 0 }));
    assert!(all.contains(&Event::TryingSaved { ssid: Ssid::try_from("second").unwrap(), priority: 1 }));
    assert!(all.iter().any(|e| matches!(e, Event::StationConnected(l) if l.ssid.as_bytes() == b"second")));
    // The outcomes are remembered per network.
    assert!(m.networks().get_at(0).unwrap().last_result().is_some_and(|r| !r.outcome.is_success()));
    assert!(m.networks().get_at(1).unwrap().last_result().is_some_and(|r| r.outcome.is_success()));
    assert_eq!(m.networks().get_at(1).unwrap().last_result().unwrap().at_unix_secs, 1_800_000_000);
}

#[test]
fn an_attempt_without_an_answer_times_out_and_the_next_is_tried() {
    let t0 = Instant::now();
    let mut m = manager(&["silent", "good"]);
    m.start_policy(t0);
    let (silent, _) = attempt(&mut m);
    assert_eq!(m.poll_timeout(), Some(t0 + ATTEMPT));
    m.handle_timeout(t0 + ATTEMPT);
    let pending = actions(&mut m);
    assert!(matches!(pending.first(), Some(Action::Disconnect)), "the stuck attempt is aborted first");
    let Some(Action::Connect { attempt: good, request }) = pending.get(1) else { panic!("{pending:?}") };
    assert_eq!(request.ssid.as_bytes(), b"good");
    // The late answer of the abandoned attempt is ignored.
    m.handle_connect_result(t0 + ATTEMPT, silent, Ok(link("silent")));
    assert!(matches!(m.wifi(), WifiState::Connecting { .. }));
    m.handle_connect_result(t0 + ATTEMPT, *good, Ok(link("good")));
    assert!(matches!(m.wifi(), WifiState::Connected(l) if l.ssid.as_bytes() == b"good"));
}

#[test]
fn when_nothing_works_provisioning_opens_and_closes_again_once_online() {
    let t0 = Instant::now();
    let mut m = manager(&["a", "b"]);
    m.start_policy(t0);
    for _ in 0..2 {
        let (id, _) = attempt(&mut m);
        m.handle_connect_result(t0, id, Err(ConnectError::NetworkNotFound));
    }
    assert_eq!(m.state(), ProvState::Started);
    assert!(actions(&mut m).iter().any(|a| matches!(a, Action::StartService)));
    let all = events(&mut m);
    let reopened = all.iter().position(|e| *e == Event::ProvisioningReopened).unwrap();
    assert_eq!(all.get(reopened + 1), Some(&Event::Start));
    assert!(all.contains(&Event::NoNetworkJoined));

    // The saved networks are retried in the background.
    assert_eq!(m.poll_timeout(), Some(t0 + RETRY));
    m.handle_timeout(t0 + RETRY);
    let (id, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"a");
    m.handle_connect_result(t0 + RETRY, id, Ok(link("a")));
    // Online again: the provisioning the policy opened closes.
    assert_eq!(m.state(), ProvState::Stopping);
    m.handle_timeout(m.poll_timeout().unwrap());
    assert_eq!(m.state(), ProvState::Idle);
    assert!(actions(&mut m).iter().any(|a| matches!(a, Action::StopService)));
}

#[test]
fn a_lost_link_is_retried_and_provisioning_reopens_after_the_grace_period() {
    let t0 = Instant::now();
    let mut m = manager(&["home"]);
    m.start_policy(t0);
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0, id, Ok(link("home")));
    events(&mut m);

    let lost = t0 + Duration::from_secs(100);
    m.handle_link_event(lost, LinkEvent::LinkLost { reason: wifiprov_backend::DisconnectReason::BEACON_TIMEOUT });
    assert!(events(&mut m).contains(&Event::LinkLost { ssid: Ssid::try_from("home").unwrap() }));
    let (retry, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"home");
    m.handle_connect_result(lost, retry, Err(ConnectError::NetworkNotFound));
    // Still inside the grace period: no provisioning yet, only the next round.
    assert_eq!(m.state(), ProvState::Idle);
    assert!(!actions(&mut m).iter().any(|a| matches!(a, Action::StartService)));

    let mut now = lost;
    while now < lost + GRACE {
        now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
        for action in actions(&mut m) {
            if let Action::Connect { attempt, .. } = action {
                m.handle_connect_result(now, attempt, Err(ConnectError::NetworkNotFound));
            }
        }
    }
    assert_eq!(now, lost + GRACE);
    assert_eq!(m.state(), ProvState::Started);
    assert!(events(&mut m).contains(&Event::ProvisioningReopened));
}

#[test]
fn a_link_regained_within_the_grace_period_keeps_provisioning_closed() {
    let t0 = Instant::now();
    let mut m = manager(&["home"]);
    m.start_policy(t0);
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0, id, Ok(link("home")));
    m.handle_link_event(t0, LinkEvent::LinkLost { reason: wifiprov_backend::DisconnectReason::BEACON_TIMEOUT });
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0, id, Ok(link("home")));
    m.handle_timeout(t0 + GRACE * 2);
    assert_eq!(m.state(), ProvState::Idle);
    assert!(actions(&mut m).is_empty());
}

fn ssid(name: &str) -> Ssid {
    Ssid::try_from(name).unwrap()
}

/// A network as a client adds it: WPA2 with a passphrase, security guessed.
fn added(name: &str) -> SavedNetwork {
    saved(name)
}

#[test]
fn the_ninth_network_is_refused_with_full() {
    let t0 = Instant::now();
    let mut m = manager(&[]);
    for i in 0..8 {
        let reply = m.add_network(t0, added(&format!("net{i}")), None, JoinFirst::No).unwrap();
        assert_eq!(reply, AddNetwork::Saved(AddOutcome::Added { index: i }));
    }
    let before = saved_order(&m);
    actions(&mut m);
    let full = Err(NetworksError::List(NetworkError::Full { capacity: 8 }));
    assert_eq!(m.add_network(t0, added("net8"), None, JoinFirst::No), full);
    // A full list also refuses before trying to join.
    assert_eq!(m.add_network(t0, added("net8"), None, JoinFirst::Yes), full);
    assert_eq!(saved_order(&m), before);
    assert!(actions(&mut m).is_empty(), "nothing written, nothing joined");
    // Updating a saved network needs no room.
    let reply = m.add_network(t0, added("net3"), None, JoinFirst::No).unwrap();
    assert_eq!(reply, AddNetwork::Saved(AddOutcome::Updated { index: 3 }));
}

#[test]
fn add_joins_first_and_saves_only_on_success() {
    let t0 = Instant::now();
    let mut m = manager(&["home"]);
    let AddNetwork::Joining(id) = m.add_network(t0, added("office"), None, JoinFirst::Yes).unwrap() else { panic!() };
    let (attempt_id, connect) = attempt(&mut m);
    assert_eq!(connect.ssid.as_bytes(), b"office");
    assert!(m.take_request_outcome(id).is_none(), "no outcome before the radio answers");
    m.handle_connect_result(t0, attempt_id, Err(ConnectError::AuthFailed));
    assert_eq!(m.take_request_outcome(id), Some(RequestOutcome::Failed(ConnectOutcome::AuthFailed)));
    assert_eq!(saved_order(&m), ["home"], "a network that failed is not saved");
    // The policy takes the radio back.
    let (back, request_back) = attempt(&mut m);
    assert_eq!(request_back.ssid.as_bytes(), b"home");
    m.handle_connect_result(t0, back, Ok(link("home")));

    let AddNetwork::Joining(id) = m.add_network(t0, added("office"), Some(0), JoinFirst::Yes).unwrap() else {
        panic!()
    };
    let (attempt_id, _) = attempt(&mut m);
    m.handle_connect_result(t0, attempt_id, Ok(link("office")));
    let Some(RequestOutcome::Joined { index: 0, updated: false, link }) = m.take_request_outcome(id) else { panic!() };
    assert_eq!(link.ssid, ssid("office"));
    assert_eq!(saved_order(&m), ["office", "home"]);
    assert!(actions(&mut m).iter().any(|a| matches!(a, Action::SaveNetworks(_))));
    // The security the radio found replaces the guess.
    assert_eq!(m.networks().get_at(0).unwrap().security(), NetworkSecurity::WpaPsk);
}

#[test]
fn removing_the_connected_network_leaves_it_and_joins_the_next() {
    let t0 = Instant::now();
    let mut m = manager(&["home", "office"]);
    m.start_policy(t0);
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0, id, Ok(link("home")));
    actions(&mut m);
    m.remove_network(t0, &ssid("home")).unwrap();
    let pending = actions(&mut m);
    assert!(pending.iter().any(|a| matches!(a, Action::SaveNetworks(list) if list.len() == 1)));
    // The disconnect comes before the connect that follows it.
    let disconnect = pending.iter().position(|a| matches!(a, Action::Disconnect)).unwrap();
    let connect = pending
        .iter()
        .position(|a| matches!(a, Action::Connect { request, .. } if request.ssid.as_bytes() == b"office"))
        .unwrap();
    assert!(disconnect < connect);
    assert!(matches!(m.remove_network(t0, &ssid("home")), Err(NetworksError::List(NetworkError::NotFound { .. }))));
}

#[test]
fn move_reorders_and_refuses_out_of_range() {
    let mut m = manager(&["a", "b", "c"]);
    assert_eq!(m.move_network(&ssid("c"), 0), Ok(2));
    assert_eq!(saved_order(&m), ["c", "a", "b"]);
    assert!(matches!(m.move_network(&ssid("a"), 3), Err(NetworksError::List(NetworkError::OutOfRange { .. }))));
    assert!(matches!(m.move_network(&ssid("zz"), 0), Err(NetworksError::List(NetworkError::NotFound { .. }))));
    assert_eq!(saved_order(&m), ["c", "a", "b"]);
}

#[test]
fn connect_switches_and_a_join_makes_the_radio_busy() {
    let t0 = Instant::now();
    let mut m = manager(&["home", "office"]);
    m.start_policy(t0);
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0, id, Ok(link("home")));
    assert!(matches!(m.connect_network(t0, &ssid("home")), Ok(ConnectNetwork::Connected(_))));
    let Ok(ConnectNetwork::Joining(req)) = m.connect_network(t0, &ssid("office")) else { panic!() };
    let (id, _) = attempt(&mut m);
    // A second join request while the first is under way is refused.
    assert_eq!(m.connect_network(t0, &ssid("home")), Err(NetworksError::Busy));
    m.handle_connect_result(t0, id, Ok(link("office")));
    assert!(matches!(m.take_request_outcome(req), Some(RequestOutcome::Joined { .. })));
    assert_eq!(saved_order(&m), ["home", "office"], "switching does not reorder");
}

#[test]
fn list_merges_saved_and_scanned_and_carries_no_secret() {
    let t0 = Instant::now();
    let mut m = manager(&["home", "attic"]);
    m.start_policy(t0);
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0, id, Ok(link("home")));
    actions(&mut m);
    m.scan_for_listing();
    assert!(matches!(actions(&mut m).as_slice(), [Action::Scan(_)]));
    m.handle_scan_result(t0, Ok(vec![super::ap(Some("home"), 1, -40), super::ap(Some("cafe"), 9, -70)]));
    assert!(m.scan_finished());
    let listed = m.listed_networks();
    let summary: Vec<_> = listed.iter().map(|n| (n.ssid.to_string(), n.priority, n.connected)).collect();
    assert_eq!(
        summary,
        [("home".to_owned(), Some(0), true), ("attic".to_owned(), Some(1), false), ("cafe".to_owned(), None, false)]
    );
    assert_eq!(listed.first().unwrap().rssi.map(|r| r.dbm()), Some(-40));
    assert_eq!(listed.get(1).unwrap().rssi, None);
    assert!(listed.first().unwrap().last_result.is_some_and(|r| r.outcome == ConnectOutcome::Connected));
    assert!(!format!("{listed:?}").contains("passphrase"));
}

#[test]
fn a_provisioning_attempt_preempts_a_waiting_join_request() {
    let t0 = Instant::now();
    let mut m = manager(&["home"]);
    m.start().unwrap();
    let AddNetwork::Joining(req) = m.add_network(t0, added("office"), None, JoinFirst::Yes).unwrap() else { panic!() };
    actions(&mut m);
    let client = wifiprov_manager::ClientId(7);
    let credentials = wifiprov_manager::Credentials { ssid: ssid("cafe"), passphrase: None };
    m.set_credentials(client, credentials).unwrap();
    m.apply_credentials(client, t0).unwrap();
    assert_eq!(m.take_request_outcome(req), Some(RequestOutcome::Preempted));
    assert_eq!(saved_order(&m), ["home"]);
}

fn scanning_manager(networks: Vec<SavedNetwork>) -> Manager {
    let mut config = config();
    config.policy.scan_first = true;
    let list = NetworkList::from_networks(8, networks).unwrap();
    let mut m = Manager::with_networks(config, list);
    events(&mut m);
    m
}

#[test]
fn scan_first_tries_only_the_saved_networks_in_range_and_hidden_ones() {
    use wifiprov_manager::networks::Visibility;
    let t0 = Instant::now();
    let mut m = scanning_manager(vec![
        saved("away"),
        saved("attic").with_visibility(Visibility::Hidden),
        saved("office"),
        saved("home"),
    ]);
    assert!(m.start_policy(t0));
    assert!(matches!(actions(&mut m).as_slice(), [Action::Scan(_)]), "a round starts with a scan");
    m.handle_scan_result(t0, Ok(vec![super::ap(Some("home"), 1, -40), super::ap(None, 2, -50)]));
    // "away" and "office" are not in range; the hidden "attic" cannot be seen and is tried anyway.
    let (id, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"attic");
    m.handle_connect_result(t0, id, Err(ConnectError::NetworkNotFound));
    let (id, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"home");
    m.handle_connect_result(t0, id, Err(ConnectError::AuthFailed));
    // Nothing else is tried: provisioning opens after one scan and two attempts, not four.
    assert_eq!(m.state(), ProvState::Started);
    let tried: Vec<_> = events(&mut m)
        .into_iter()
        .filter_map(|e| match e {
            Event::TryingSaved { ssid, .. } => Some(ssid.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(tried, ["attic", "home"]);

    // The next round scans again and finds "office" this time.
    m.handle_timeout(t0 + RETRY);
    assert!(actions(&mut m).iter().any(|a| matches!(a, Action::Scan(_))));
    m.handle_scan_result(t0 + RETRY, Ok(vec![super::ap(Some("office"), 3, -60)]));
    let (_, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"attic");
}

#[test]
fn scan_first_with_a_failed_scan_tries_every_network() {
    let t0 = Instant::now();
    let mut m = scanning_manager(vec![saved("a"), saved("b")]);
    m.start_policy(t0);
    actions(&mut m);
    m.handle_scan_result(t0, Err(wifiprov_backend::BackendError::Busy));
    let (id, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"a");
    m.handle_connect_result(t0, id, Err(ConnectError::NetworkNotFound));
    let (_, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"b");
}

#[test]
fn scan_first_with_nothing_in_range_opens_provisioning_at_once() {
    let t0 = Instant::now();
    let mut m = scanning_manager(vec![saved("a"), saved("b")]);
    m.start_policy(t0);
    actions(&mut m);
    m.handle_scan_result(t0, Ok(vec![super::ap(Some("elsewhere"), 1, -40)]));
    assert_eq!(m.state(), ProvState::Started);
    let pending = actions(&mut m);
    assert!(pending.iter().all(|a| !matches!(a, Action::Connect { .. })), "{pending:?}");
    assert!(pending.iter().any(|a| matches!(a, Action::StartService)));
}

#[test]
fn scan_first_after_a_failed_add_rejoins_the_saved_network() {
    let t0 = Instant::now();
    let mut m = scanning_manager(vec![saved("home")]);
    m.start_policy(t0);
    actions(&mut m);
    m.handle_scan_result(t0, Ok(vec![super::ap(Some("home"), 1, -40)]));
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0, id, Ok(link("home")));
    let AddNetwork::Joining(_) = m.add_network(t0, saved("office"), None, JoinFirst::Yes).unwrap() else {
        panic!("joins first")
    };
    let (id, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"office");
    m.handle_connect_result(t0, id, Err(ConnectError::AuthFailed));
    let pending = actions(&mut m);
    assert!(pending.iter().any(|a| matches!(a, Action::Scan(_))), "{pending:?}");
    m.handle_scan_result(t0, Ok(vec![super::ap(Some("home"), 1, -40), super::ap(Some("office"), 2, -50)]));
    let (_, request) = attempt(&mut m);
    assert_eq!(request.ssid.as_bytes(), b"home");
}
