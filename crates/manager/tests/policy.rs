//! The connection policy and `prov-networks`, in memory.

use std::time::{Duration, Instant};

use wifiprov_backend::{ConnectError, LinkEvent, Passphrase, Ssid};
use wifiprov_manager::networks::{NetworkList, NetworkSecurity, SavedNetwork};
use wifiprov_manager::{
    Action, Event, Manager, ManagerConfig, NetworksReply, PolicyConfig, ProvState, WallClock, WifiState,
    joined_response,
};
use wifiprov_proto::messages::networks::{AddRequest, ConnectFailure, NetStatus, Request, Response};

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
        policy: PolicyConfig { attempt_timeout: ATTEMPT, retry_interval: RETRY, reopen_grace: GRACE, reopen: true },
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

fn add(ssid: &str, connect: bool) -> Request {
    let mut add = AddRequest::new(ssid, format!("{ssid}-passphrase").as_str());
    add.connect = connect;
    Request::Add(add)
}

fn ready(reply: NetworksReply) -> Response {
    match reply {
        NetworksReply::Ready(response) => response,
        other => panic!("expected an immediate answer, got {other:?}"),
    }
}

#[test]
fn the_ninth_network_is_refused_with_full() {
    let t0 = Instant::now();
    let mut m = manager(&[]);
    for i in 0..8 {
        let response = ready(m.handle_networks(t0, &add(&format!("net{i}"), false)));
        assert!(matches!(response, Response::Add { status: NetStatus::Success, priority, .. } if priority == i));
    }
    let before = saved_order(&m);
    actions(&mut m);
    assert!(matches!(ready(m.handle_networks(t0, &add("net8", false))), Response::Add { status: NetStatus::Full, .. }));
    // A full list also refuses before trying to join.
    assert!(matches!(ready(m.handle_networks(t0, &add("net8", true))), Response::Add { status: NetStatus::Full, .. }));
    assert_eq!(saved_order(&m), before);
    assert!(actions(&mut m).is_empty(), "nothing written, nothing joined");
    // Updating a saved network needs no room.
    let response = ready(m.handle_networks(t0, &add("net3", false)));
    assert!(matches!(response, Response::Add { status: NetStatus::Success, updated: true, priority: 3, .. }));
}

#[test]
fn add_joins_first_and_saves_only_on_success() {
    let t0 = Instant::now();
    let mut m = manager(&["home"]);
    let request = add("office", true);
    let NetworksReply::AwaitJoin(id) = m.handle_networks(t0, &request) else { panic!() };
    let (attempt_id, connect) = attempt(&mut m);
    assert_eq!(connect.ssid.as_bytes(), b"office");
    assert!(m.take_request_outcome(id).is_none(), "no outcome before the radio answers");
    m.handle_connect_result(t0, attempt_id, Err(ConnectError::AuthFailed));
    let response = joined_response(&request, m.take_request_outcome(id));
    assert!(matches!(
        response,
        Response::Add { status: NetStatus::ConnectFailed, failure: Some(ConnectFailure::Auth), .. }
    ));
    assert_eq!(saved_order(&m), ["home"], "a network that failed is not saved");
    // The policy takes the radio back.
    let (back, request_back) = attempt(&mut m);
    assert_eq!(request_back.ssid.as_bytes(), b"home");
    m.handle_connect_result(t0, back, Ok(link("home")));

    let mut good = AddRequest::new("office", "office-passphrase");
    good.priority = Some(0);
    let request = Request::Add(good);
    let NetworksReply::AwaitJoin(id) = m.handle_networks(t0, &request) else { panic!() };
    let (attempt_id, _) = attempt(&mut m);
    m.handle_connect_result(t0, attempt_id, Ok(link("office")));
    let response = joined_response(&request, m.take_request_outcome(id));
    assert!(matches!(response, Response::Add { status: NetStatus::Success, priority: 0, connected: Some(_), .. }));
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
    let response = ready(m.handle_networks(t0, &Request::Remove { ssid: b"home".to_vec() }));
    assert_eq!(response, Response::Remove { status: NetStatus::Success });
    let pending = actions(&mut m);
    assert!(pending.iter().any(|a| matches!(a, Action::SaveNetworks(list) if list.len() == 1)));
    assert!(pending.iter().any(|a| matches!(a, Action::Disconnect)));
    assert!(
        pending.iter().any(|a| matches!(a, Action::Connect { request, .. } if request.ssid.as_bytes() == b"office"))
    );
    assert_eq!(
        ready(m.handle_networks(t0, &Request::Remove { ssid: b"home".to_vec() })),
        Response::Remove { status: NetStatus::NotFound }
    );
}

#[test]
fn move_reorders_and_refuses_out_of_range() {
    let t0 = Instant::now();
    let mut m = manager(&["a", "b", "c"]);
    let moved = ready(m.handle_networks(t0, &Request::Move { ssid: b"c".to_vec(), to: 0 }));
    assert_eq!(moved, Response::Move { status: NetStatus::Success, from: 2 });
    assert_eq!(saved_order(&m), ["c", "a", "b"]);
    let refused = ready(m.handle_networks(t0, &Request::Move { ssid: b"a".to_vec(), to: 3 }));
    assert!(matches!(refused, Response::Move { status: NetStatus::OutOfRange, .. }));
    let missing = ready(m.handle_networks(t0, &Request::Move { ssid: b"zz".to_vec(), to: 0 }));
    assert!(matches!(missing, Response::Move { status: NetStatus::NotFound, .. }));
    assert_eq!(saved_order(&m), ["c", "a", "b"]);
}

#[test]
fn connect_switches_and_a_provisioning_attempt_makes_the_radio_busy() {
    let t0 = Instant::now();
    let mut m = manager(&["home", "office"]);
    m.start_policy(t0);
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0, id, Ok(link("home")));
    let already = ready(m.handle_networks(t0, &Request::Connect { ssid: b"home".to_vec() }));
    assert!(matches!(already, Response::Connect { status: NetStatus::Success, connected: Some(_), .. }));
    let request = Request::Connect { ssid: b"office".to_vec() };
    let NetworksReply::AwaitJoin(req) = m.handle_networks(t0, &request) else { panic!() };
    let (id, _) = attempt(&mut m);
    // A second join request while the first is under way is refused.
    let busy = ready(m.handle_networks(t0, &Request::Connect { ssid: b"home".to_vec() }));
    assert!(matches!(busy, Response::Connect { status: NetStatus::Busy, .. }));
    m.handle_connect_result(t0, id, Ok(link("office")));
    let done = joined_response(&request, m.take_request_outcome(req));
    assert!(matches!(done, Response::Connect { status: NetStatus::Success, .. }));
    assert_eq!(saved_order(&m), ["home", "office"], "switching does not reorder");
}

#[test]
fn list_merges_saved_and_scanned_and_carries_no_secret() {
    let t0 = Instant::now();
    let mut m = manager(&["home", "attic"]);
    m.start_policy(t0);
    let (id, _) = attempt(&mut m);
    m.handle_connect_result(t0, id, Ok(link("home")));
    assert_eq!(m.handle_networks(t0, &Request::List { scan: true }), NetworksReply::AwaitScan);
    m.handle_scan_result(Ok(vec![super::ap(Some("home"), 1, -40), super::ap(Some("cafe"), 9, -70)]));
    assert!(m.scan_finished());
    let Response::List { status, networks, capacity } = m.networks_listing(NetStatus::Success) else { panic!() };
    assert_eq!((status, capacity), (NetStatus::Success, 8));
    let summary: Vec<_> =
        networks.iter().map(|n| (String::from_utf8_lossy(&n.ssid).into_owned(), n.priority, n.connected)).collect();
    assert_eq!(
        summary,
        [("home".to_owned(), Some(0), true), ("attic".to_owned(), Some(1), false), ("cafe".to_owned(), None, false)]
    );
    assert_eq!(networks.first().unwrap().rssi, Some(-40));
    assert_eq!(networks.get(1).unwrap().rssi, None);
    let encoded = Response::List { status, networks, capacity }.encode();
    assert!(!encoded.windows(b"passphrase".len()).any(|w| w == b"passphrase"));
}

#[test]
fn a_provisioning_attempt_preempts_a_waiting_join_request() {
    let t0 = Instant::now();
    let mut m = manager(&["home"]);
    m.start().unwrap();
    let request = add("office", true);
    let NetworksReply::AwaitJoin(req) = m.handle_networks(t0, &request) else { panic!() };
    actions(&mut m);
    let set = wifiprov_proto::messages::config::Request::SetConfig(wifiprov_proto::messages::config::SetConfig {
        ssid: b"cafe".to_vec(),
        passphrase: b"".as_slice().into(),
        bssid: vec![],
        channel: 0,
    });
    m.handle_config(t0, &set);
    m.handle_config(t0, &wifiprov_proto::messages::config::Request::ApplyConfig);
    let response = joined_response(&request, m.take_request_outcome(req));
    assert!(matches!(response, Response::Add { status: NetStatus::Busy, .. }));
    assert_eq!(saved_order(&m), ["home"]);
}
