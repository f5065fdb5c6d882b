//! Saved networks end to end: `prov-networks` over HTTP with a real session, the store on disk, the
//! connection policy on the simulated radio.

use std::time::Duration;

use wifiprov_backend::{Bssid, WifiBackend as _};
use wifiprov_backend_sim::Presence;
use wifiprov_manager::{Event, ManagerConfig, PolicyConfig, WifiState};
use wifiprov_proto::messages::networks::{AddRequest, ConnectFailure, NetStatus, Request, Response};
use wifiprov_proto::security::Sec2Patch;
use wifiprov_proto::version::VersionInfo;
use wifiprov_store::NetworkStore;

use crate::common::{Daemon, Setup, daemon_test, fast_manager, sec1, sec2, start, wait_event};

fn policy_manager() -> ManagerConfig {
    ManagerConfig {
        policy: PolicyConfig {
            attempt_timeout: Duration::from_secs(2),
            retry_interval: Duration::from_millis(200),
            reopen_grace: Duration::from_millis(400),
            reopen: true,
            scan_first: true,
        },
        ..fast_manager()
    }
}

fn bssid(last: u8) -> Bssid {
    Bssid::new([2, 0, 0, 0, 0, last])
}

fn add(ssid: &str, passphrase: &str, connect: bool) -> Request {
    let mut add = AddRequest::new(ssid, passphrase);
    add.connect = connect;
    Request::Add(add)
}

async fn order(daemon: &Daemon) -> Vec<String> {
    daemon.service.networks().await.iter().map(|n| n.ssid().to_string()).collect()
}

async fn linked_to(daemon: &Daemon, ssid: &str) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if daemon.radio.link().is_some_and(|l| l.ssid.as_bytes() == ssid.as_bytes())
                && matches!(daemon.service.wifi_state().await, WifiState::Connected(_))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never joined {ssid}; radio link: {:?}", daemon.radio.link()));
}

daemon_test! {
    async fn proto_ver_advertises_the_endpoint() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut client = daemon.client().await;
        let version: VersionInfo = client.version().await.unwrap();
        let app = version.app_info.iter().find(|a| a.label == "networks").expect("networks label");
        assert_eq!(app.ver, "v1");
    }
}

daemon_test! {
    async fn the_ninth_add_reports_full_and_changes_nothing() {
        let daemon = start(sec2(Sec2Patch::Counter), Setup::default()).await;
        let mut client = daemon.client().await;
        let names = ["home", "cafe", "office", "attic", "flaky", "hidden", "n7", "n8"];
        for (index, name) in names.iter().enumerate() {
            let response = client.networks(&add(name, "long-enough-pass", false)).await.unwrap();
            assert!(
                matches!(response, Response::Add { status: NetStatus::Success, priority, .. } if priority as usize == index),
                "{response:?}"
            );
        }
        let response = client.networks(&add("n9", "long-enough-pass", false)).await.unwrap();
        assert_eq!(response.status(), NetStatus::Full);
        daemon.service.flush().await;
        let stored = NetworkStore::open(daemon.state_dir.path()).load().unwrap();
        assert_eq!(stored.len(), 8);
        assert!(stored.get(&"n9".try_into().unwrap()).is_none());
        // Bad input gets a status and the daemon keeps serving.
        let bad = client.networks(&add("x", "short", false)).await.unwrap();
        assert_eq!(bad.status(), NetStatus::InvalidArgument);
        let listed = client.networks(&Request::List { scan: false }).await.unwrap();
        assert!(matches!(listed, Response::List { ref networks, capacity: 8, .. } if networks.len() == 8));
    }
}

daemon_test! {
    async fn reorder_and_delete_survive_a_restart() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut client = daemon.client().await;
        for name in ["a", "b", "c", "d"] {
            assert!(client.networks(&add(name, "long-enough-pass", false)).await.unwrap().status().is_success());
        }
        let moved = client.networks(&Request::Move { ssid: b"d".to_vec(), to: 0 }).await.unwrap();
        assert_eq!(moved, Response::Move { status: NetStatus::Success, from: 3 });
        let removed = client.networks(&Request::Remove { ssid: b"b".to_vec() }).await.unwrap();
        assert_eq!(removed.status(), NetStatus::Success);
        let out_of_range = client.networks(&Request::Move { ssid: b"a".to_vec(), to: 7 }).await.unwrap();
        assert_eq!(out_of_range.status(), NetStatus::OutOfRange);
        assert_eq!(order(&daemon).await, ["d", "a", "c"]);
        let state_dir = daemon.state_dir;
        drop(client);
        daemon.service.deinit().await;

        let restarted = start(sec1(), Setup { state_dir: Some(state_dir), ..Setup::default() }).await;
        assert_eq!(order(&restarted).await, ["d", "a", "c"]);
    }
}

daemon_test! {
    async fn add_joins_before_saving_and_a_wrong_passphrase_saves_nothing() {
        let daemon = start(sec1(), Setup { manager: policy_manager(), ..Setup::default() }).await;
        let mut client = daemon.client().await;
        let refused = client.networks(&add("home", "wrong-horse", true)).await.unwrap();
        assert!(
            matches!(refused, Response::Add { status: NetStatus::ConnectFailed, failure: Some(ConnectFailure::Auth), .. }),
            "{refused:?}"
        );
        assert!(order(&daemon).await.is_empty());

        let joined = client.networks(&add("home", "correct-horse", true)).await.unwrap();
        let Response::Add { status: NetStatus::Success, priority: 0, connected: Some(link), .. } = joined else {
            panic!("{joined:?}")
        };
        assert_eq!(link.ssid, b"home");
        assert_eq!(order(&daemon).await, ["home"]);
        linked_to(&daemon, "home").await;

        // The list shows it connected, with the scan merged in when asked for.
        let Response::List { networks, .. } = client.networks(&Request::List { scan: true }).await.unwrap() else {
            panic!()
        };
        let home = networks.iter().find(|n| n.ssid == b"home").unwrap();
        assert!(home.saved && home.connected && home.rssi == Some(-40));
        assert!(networks.iter().any(|n| n.ssid == b"cafe" && !n.saved && n.priority.is_none()));
    }
}

daemon_test! {
    async fn provisioning_through_prov_config_saves_the_network_at_the_top() {
        let daemon = start(sec1(), Setup { saved: vec![("attic", "attic-pass")], open: true, ..Setup::default() }).await;
        let mut client = daemon.client().await;
        client.provision(b"home", b"correct-horse", crate::common::poll(), |_| {}).await.unwrap();
        assert_eq!(order(&daemon).await, ["home", "attic"]);
    }
}

daemon_test! {
    async fn start_skips_an_absent_network_and_joins_the_next() {
        let daemon = start(
            sec1(),
            Setup {
                manager: policy_manager(),
                saved: vec![("nowhere", "long-enough-pass"), ("home", "correct-horse")],
                open: false,
                ..Setup::default()
            },
        )
        .await;
        let mut events = daemon.events.resubscribe();
        assert!(daemon.service.start_policy().await);
        linked_to(&daemon, "home").await;
        // The round's scan did not see "nowhere": it was skipped, not tried until its attempt timed out.
        let mut tried = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::TryingSaved { ssid, .. } = event {
                tried.push(ssid.to_string());
            }
        }
        assert_eq!(tried, ["home"]);
        assert!(daemon.service.local_addr().await.is_none(), "provisioning stays closed");
    }
}

daemon_test! {
    async fn with_every_saved_network_absent_provisioning_opens() {
        let daemon = start(
            sec1(),
            Setup {
                manager: policy_manager(),
                saved: vec![("nowhere", "long-enough-pass"), ("gone", "")],
                open: false,
                ..Setup::default()
            },
        )
        .await;
        let mut events = daemon.events.resubscribe();
        daemon.service.start_policy().await;
        wait_event(&mut events, |e| *e == Event::ProvisioningReopened).await;
        wait_event(&mut events, |e| *e == Event::Start).await;
        let addr = daemon.service.local_addr().await.expect("transport up");
        // A client can provision the device through the reopened service.
        let mut client = daemon.client_at(addr).await;
        let listed = client.networks(&Request::List { scan: false }).await.unwrap();
        assert!(matches!(listed, Response::List { ref networks, .. } if networks.len() == 2));
        client.provision(b"home", b"correct-horse", crate::common::poll(), |_| {}).await.unwrap();
        assert_eq!(order(&daemon).await, ["home", "nowhere", "gone"]);
    }
}

daemon_test! {
    async fn a_lost_link_is_retried_then_provisioning_reopens() {
        let daemon = start(
            sec1(),
            Setup { manager: policy_manager(), saved: vec![("home", "correct-horse")], open: false, ..Setup::default() },
        )
        .await;
        let mut events = daemon.events.resubscribe();
        daemon.service.start_policy().await;
        linked_to(&daemon, "home").await;
        daemon.radio.set_presence(bssid(1), Presence::Absent).unwrap();
        wait_event(&mut events, |e| matches!(e, Event::LinkLost { ssid } if ssid.as_bytes() == b"home")).await;
        // Its rounds scan and do not see it, so nothing is tried.
        wait_event(&mut events, |e| *e == Event::NoNetworkJoined).await;
        wait_event(&mut events, |e| *e == Event::ProvisioningReopened).await;
        assert!(daemon.service.local_addr().await.is_some());

        // The network comes back: the background retry rejoins it and the reopened provisioning closes again.
        daemon.radio.set_presence(bssid(1), Presence::Present).unwrap();
        linked_to(&daemon, "home").await;
        wait_event(&mut events, |e| *e == Event::End).await;
        assert!(daemon.service.local_addr().await.is_none());
    }
}

daemon_test! {
    async fn removing_the_connected_network_switches_to_the_next() {
        let daemon = start(
            sec1(),
            Setup {
                manager: policy_manager(),
                saved: vec![("home", "correct-horse"), ("attic", "attic-pass")],
                ..Setup::default()
            },
        )
        .await;
        daemon.service.start_policy().await;
        linked_to(&daemon, "home").await;
        let mut client = daemon.client().await;
        let removed = client.networks(&Request::Remove { ssid: b"home".to_vec() }).await.unwrap();
        assert_eq!(removed.status(), NetStatus::Success);
        linked_to(&daemon, "attic").await;
        assert_eq!(order(&daemon).await, ["attic"]);

        // And connect switches on request.
        assert!(client.networks(&add("cafe", "", false)).await.unwrap().status().is_success());
        let switched = client.networks(&Request::Connect { ssid: b"cafe".to_vec() }).await.unwrap();
        assert!(matches!(switched, Response::Connect { status: NetStatus::Success, .. }), "{switched:?}");
        linked_to(&daemon, "cafe").await;
        let missing = client.networks(&Request::Connect { ssid: b"nowhere".to_vec() }).await.unwrap();
        assert_eq!(missing.status(), NetStatus::NotFound);
    }
}

daemon_test! {
    async fn a_corrupt_store_is_moved_aside_and_the_daemon_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NetworkStore::FILE_NAME), b"{ not json").unwrap();
        let daemon = start(sec1(), Setup { state_dir: Some(dir), ..Setup::default() }).await;
        assert!(order(&daemon).await.is_empty());
        let kept: Vec<_> = std::fs::read_dir(daemon.state_dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
            .collect();
        assert_eq!(kept.len(), 1, "the corrupt file is kept for inspection");
        assert_eq!(std::fs::read(kept[0].path()).unwrap(), b"{ not json");
    }
}
