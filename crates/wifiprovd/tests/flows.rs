//! Provisioning flows over HTTP, as the issue lists them.

use std::sync::Arc;
use std::time::Duration;

use wifiprov_client::{ClientError, HttpClient, ProvisionOutcome, TransportError};
use wifiprov_manager::{AutoStop, Event, ManagerConfig, ProvState, WifiState};
use wifiprov_proto::danger;
use wifiprov_proto::endpoint::{HandlerError, SessionId};
use wifiprov_proto::messages::config::{FailReason, StationState};
use wifiprov_proto::messages::{AuthMode, Status};
use wifiprov_proto::security::Sec2Patch;
use wifiprov_store::NetworkStore;

use crate::common::{Setup, daemon_test, fast_manager, poll, sec1, sec2, start, wait_event};

daemon_test! {
    async fn provisions_with_every_security_scheme() {
        for security in [danger::sec0(), sec1(), sec2(Sec2Patch::Counter), sec2(Sec2Patch::Legacy)] {
            let daemon = start(security, Setup::default()).await;
            let mut events = daemon.events.resubscribe();
            let mut client = daemon.client().await;
            let version = client.version().await.unwrap().prov.unwrap();
            assert_eq!(version.sec_ver, Some(u64::from(daemon.security.version().number())));

            let mut seen = Vec::new();
            let outcome = client.provision(b"home", b"correct-horse", poll(), |r| seen.push(r.clone())).await.unwrap();
            let ProvisionOutcome::Connected(info) = outcome else { panic!("not connected: {outcome:?}") };
            assert_eq!(info.ssid, b"home");
            assert_eq!(info.bssid, [2, 0, 0, 0, 0, 1]);
            assert_eq!(info.channel, 6);
            assert_eq!(info.auth_mode, AuthMode::Wpa2Psk);
            assert_eq!(info.ip4_addr, "10.0.0.10");
            assert!(
                seen.iter().any(|r| matches!(r.state, Some(StationState::Connecting { attempts_remaining: None }))),
                "the device reports Connecting before Connected: {seen:?}"
            );

            wait_event(&mut events, |e| matches!(e, Event::CredSuccess(_))).await;
            // Auto-stop: the first Connected report ends the service after the cleanup delay.
            wait_event(&mut events, |e| *e == Event::End).await;
            daemon.service.flush().await;
            let saved = NetworkStore::open(daemon.state_dir.path()).load().unwrap();
            assert_eq!(saved.get_at(0).unwrap().ssid().as_bytes(), b"home");
            assert!(HttpClient::connect(daemon.addr).await.is_err(), "the transport closed after the service ended");
        }
    }
}

daemon_test! {
    async fn events_arrive_in_esp_order() {
        let mut daemon = start(sec1(), Setup::default()).await;
        let mut client = daemon.client().await;
        client.provision(b"home", b"correct-horse", poll(), |_| {}).await.unwrap();
        let events = &mut daemon.events;
        let mut order = Vec::new();
        while order.last() != Some(&"End") {
            let event = wait_event(events, |_| true).await;
            order.push(match event {
                Event::Init => "Init",
                Event::Start => "Start",
                Event::SetStaConfig { .. } => "SetStaConfig",
                Event::CredRecv { .. } => "CredRecv",
                Event::CredSuccess(_) => "CredSuccess",
                Event::End => "End",
                _ => continue,
            });
        }
        // wifiprov's own events (StationConnected, NetworksChanged) come in between; ESP's keep their order.
        assert_eq!(order, ["Init", "Start", "SetStaConfig", "CredRecv", "CredSuccess", "End"]);
    }
}

daemon_test! {
    async fn wrong_passphrase_fails_then_reset_and_retry_succeed() {
        let daemon = start(sec2(Sec2Patch::Counter), Setup::default()).await;
        let mut events = daemon.events.resubscribe();
        let mut client = daemon.client().await;
        let outcome = client.provision(b"home", b"wrong-horse", poll(), |_| {}).await.unwrap();
        assert_eq!(outcome, ProvisionOutcome::Failed(FailReason::AuthError));
        wait_event(&mut events, |e| *e == Event::CredFail(wifiprov_manager::FailReason::AuthError)).await;
        // The failure is sticky until a reset.
        let report = client.status().await.unwrap();
        assert_eq!(report.state, Some(StationState::Failed(FailReason::AuthError)));
        client.reset().await.unwrap();
        let outcome = client.provision(b"home", b"correct-horse", poll(), |_| {}).await.unwrap();
        assert!(matches!(outcome, ProvisionOutcome::Connected(_)), "{outcome:?}");
    }
}

daemon_test! {
    async fn absent_network_is_reported_as_not_found() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut client = daemon.client().await;
        let outcome = client.provision(b"nowhere", b"whatever-pass", poll(), |_| {}).await.unwrap();
        assert_eq!(outcome, ProvisionOutcome::Failed(FailReason::NetworkNotFound));
    }
}

daemon_test! {
    async fn attempts_remaining_are_reported() {
        let setup = Setup { manager: ManagerConfig { connect_attempts: 3, ..fast_manager() }, ..Setup::default() };
        let daemon = start(sec1(), setup).await;
        let mut client = daemon.client().await;
        // "flaky" fails its first two joins, so the third of three attempts succeeds.
        let mut remaining = Vec::new();
        let outcome = client
            .provision(b"flaky", b"flaky-pass", poll(), |r| {
                if let Some(StationState::Connecting { attempts_remaining: Some(n) }) = r.state {
                    remaining.push(n);
                }
            })
            .await
            .unwrap();
        assert!(matches!(outcome, ProvisionOutcome::Connected(_)), "{outcome:?}");
        remaining.dedup();
        assert_eq!(remaining, [2, 1]);

        // A wrong passphrase uses up all three attempts, then fails.
        let daemon =
            start(sec1(), Setup { manager: ManagerConfig { connect_attempts: 3, ..fast_manager() }, ..Setup::default() })
                .await;
        let mut client = daemon.client().await;
        let outcome = client.provision(b"home", b"wrong-horse", poll(), |_| {}).await.unwrap();
        assert_eq!(outcome, ProvisionOutcome::Failed(FailReason::AuthError));
    }
}

daemon_test! {
    async fn scan_is_sorted_by_signal_and_paged() {
        let daemon = start(sec2(Sec2Patch::Counter), Setup::default()).await;
        let mut client = daemon.client().await;
        for page in [1, 2, 100] {
            let entries = client.scan(page).await.unwrap();
            let names: Vec<&[u8]> = entries.iter().map(|e| e.ssid.as_slice()).collect();
            // Strongest first; the hidden network never appears.
            assert_eq!(names, [&b"home"[..], b"office", b"flaky", b"cafe", b"attic"], "page size {page}");
            assert_eq!(entries[0].rssi, -40);
            assert_eq!(entries[0].channel, 6);
            assert_eq!(entries[1].auth, AuthMode::Wpa3Psk);
        }
    }
}

daemon_test! {
    async fn scan_requests_out_of_range_are_refused_without_harm() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut client = daemon.client().await;
        client.scan(4).await.unwrap();
        let page = wifiprov_proto::messages::scan::Request::Result { start_index: 16, count: 1 };
        let err = client.call("prov-scan", &page.encode()).await.unwrap_err();
        assert!(matches!(err, ClientError::Transport(TransportError::ConnectionClosed { .. })), "{err:?}");
        // The device keeps serving: a new client provisions.
        let mut client = daemon.client().await;
        assert!(matches!(client.provision(b"cafe", b"", poll(), |_| {}).await.unwrap(), ProvisionOutcome::Connected(_)));
    }
}

daemon_test! {
    async fn reprovision_after_success_with_auto_stop_disabled() {
        let setup =
            Setup { manager: ManagerConfig { auto_stop: AutoStop::Disabled, ..fast_manager() }, ..Setup::default() };
        let daemon = start(sec2(Sec2Patch::Counter), setup).await;
        let mut client = daemon.client().await;
        assert!(matches!(
            client.provision(b"home", b"correct-horse", poll(), |_| {}).await.unwrap(),
            ProvisionOutcome::Connected(_)
        ));
        // Still serving after success; a reset is refused (not failed), a reprov is accepted.
        assert!(matches!(client.reset().await, Err(ClientError::Status { status: Status::InternalError, .. })));
        client.reprov().await.unwrap();
        assert_eq!(client.status().await.unwrap().state, Some(StationState::Disconnected));
        let outcome = client.provision(b"office", b"office-secret", poll(), |_| {}).await.unwrap();
        let ProvisionOutcome::Connected(info) = outcome else { panic!("{outcome:?}") };
        assert_eq!(info.ssid, b"office");
        assert_eq!(daemon.service.state().borrow().clone(), ProvState::Success);
    }
}

daemon_test! {
    async fn reprov_is_refused_while_auto_stop_is_on() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut client = daemon.client().await;
        assert!(matches!(client.reprov().await, Err(ClientError::Status { status: Status::InternalError, .. })));
    }
}

daemon_test! {
    async fn custom_endpoint_created_before_start_and_registered_after() {
        let daemon = start(sec1(), Setup { custom_endpoint: Some("custom-data"), ..Setup::default() }).await;
        let mut client = daemon.client().await;
        // Not registered yet: the device refuses without answering.
        assert!(client.call("custom-data", b"early").await.is_err());
        let handler = |_: Option<SessionId>, request: &[u8]| -> Result<Vec<u8>, HandlerError> {
            Ok([b"got:".as_slice(), request].concat())
        };
        daemon.service.register_endpoint("custom-data", Arc::new(handler)).await.unwrap();
        // The refused request desynchronised that session's keystream (as with ESP); a fresh session works.
        let mut client = daemon.client().await;
        assert_eq!(client.call("custom-data", b"hello").await.unwrap(), b"got:hello");
        assert!(daemon.service.create_endpoint("too-late").await.is_err(), "endpoints are created before start");
    }
}

daemon_test! {
    async fn two_clients_keep_separate_sessions() {
        let daemon = start(sec2(Sec2Patch::Counter), Setup::default()).await;
        let mut a = daemon.client().await;
        let mut b = daemon.client().await;
        for _ in 0..5 {
            // Interleaved calls on two sessions with independent keys and nonce counters.
            a.status().await.unwrap();
            b.status().await.unwrap();
            b.status().await.unwrap();
        }
        let scan = b.scan(100).await.unwrap();
        assert_eq!(scan.len(), 5);
        assert!(matches!(
            a.provision(b"home", b"correct-horse", poll(), |_| {}).await.unwrap(),
            ProvisionOutcome::Connected(_)
        ));
    }
}

daemon_test! {
    /// Two clients in lock-step, each in its own session: A sets the right passphrase, B a wrong one, A applies.
    /// The device joins with A's (ESP's single pending configuration would have joined with B's and told A
    /// "wrong password"); B's apply while A's attempt runs is refused; B is never told a result of A's.
    async fn two_clients_in_lock_step_keep_their_credentials_apart() {
        let daemon = start(sec2(Sec2Patch::Counter), Setup::default()).await;
        let mut a = daemon.client().await;
        let mut b = daemon.client().await;
        a.set_config(b"home", b"correct-horse").await.unwrap();
        b.set_config(b"home", b"wrong-horse").await.unwrap();
        a.apply_config().await.unwrap();
        assert!(
            matches!(b.apply_config().await, Err(ClientError::Status { status: Status::InternalError, .. })),
            "one attempt at a time"
        );
        let outcome = a.wait_for_connection(poll(), |_| {}).await.unwrap();
        assert!(matches!(outcome, ProvisionOutcome::Connected(ref info) if info.ssid == b"home"), "{outcome:?}");
        assert_eq!(wifiprov_backend::WifiBackend::link(&daemon.radio).unwrap().ssid.as_bytes(), b"home");
        // B holds credentials of its own: it sees the device's station, never a verdict on its passphrase.
        let report = b.status().await.unwrap();
        assert!(matches!(report.state, Some(StationState::Connected(_))), "{report:?}");
    }
}

daemon_test! {
    /// The same, with A's passphrase the wrong one: only A is told it failed.
    async fn a_failure_is_told_only_to_the_client_whose_credentials_failed() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut a = daemon.client().await;
        let mut b = daemon.client().await;
        a.set_config(b"home", b"wrong-horse").await.unwrap();
        b.set_config(b"home", b"correct-horse").await.unwrap();
        a.apply_config().await.unwrap();
        let outcome = a.wait_for_connection(poll(), |_| {}).await.unwrap();
        assert_eq!(outcome, ProvisionOutcome::Failed(FailReason::AuthError));
        assert_eq!(b.status().await.unwrap().state, Some(StationState::Disconnected));
        // B's own credentials were kept: after a reset it applies them and the device joins.
        b.reset().await.unwrap();
        b.apply_config().await.unwrap();
        assert!(matches!(b.wait_for_connection(poll(), |_| {}).await.unwrap(), ProvisionOutcome::Connected(_)));
    }
}

daemon_test! {
    async fn restart_keeps_the_provisioned_network() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut events = daemon.events.resubscribe();
        let mut client = daemon.client().await;
        client.provision(b"home", b"correct-horse", poll(), |_| {}).await.unwrap();
        wait_event(&mut events, |e| *e == Event::End).await;
        assert!(daemon.service.is_provisioned().await);
        daemon.service.flush().await;
        let state_dir = daemon.state_dir;
        drop(daemon.service);

        // A new service on the same state directory joins the saved network at start.
        let restarted = start(sec1(), Setup { state_dir: Some(state_dir), ..Setup::default() }).await;
        assert!(restarted.service.is_provisioned().await);
        assert!(restarted.service.start_policy().await);
        tokio::time::timeout(Duration::from_secs(10), async {
            while !matches!(restarted.service.wifi_state().await, WifiState::Connected(_)) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the provisioned network was not joined");
        assert_eq!(wifiprov_backend::WifiBackend::link(&restarted.radio).unwrap().ssid.as_bytes(), b"home");

        restarted.service.reset_provisioning().await;
        tokio::time::timeout(Duration::from_secs(10), async {
            while restarted.service.is_provisioned().await {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("reset did not clear the provisioned state");
    }
}

daemon_test! {
    async fn invalid_credentials_are_refused_with_invalid_argument() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut client = daemon.client().await;
        for (ssid, pass) in [
            (&[][..], &b"long-enough"[..]),
            (&[b'x'; 33][..], b"long-enough"),
            (b"home", b"short"),
            (b"home", &[b'p'; 64][..]),
        ] {
            let err = client.set_config(ssid, pass).await.unwrap_err();
            assert!(matches!(err, ClientError::Status { status: Status::InvalidArgument, .. }), "{err:?}");
        }
        // Nothing was applied: ApplyConfig has no credentials to use.
        assert!(matches!(client.apply_config().await, Err(ClientError::Status { status: Status::InternalError, .. })));
        assert!(matches!(
            client.provision(b"home", b"correct-horse", poll(), |_| {}).await.unwrap(),
            ProvisionOutcome::Connected(_)
        ));
    }
}

daemon_test! {
    async fn status_before_credentials_and_when_stopped() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut client = daemon.client().await;
        assert_eq!(client.status().await.unwrap().state, Some(StationState::Disconnected));
        daemon.service.stop_provisioning().await;
        daemon.service.wait().await;
        assert_eq!(*daemon.service.state().borrow(), ProvState::Idle);
        assert!(client.status().await.is_err(), "the transport is gone once the service has ended");
        assert!(
            matches!(
                daemon
                    .service
                    .start_provisioning(
                        sec1(),
                        crate::common::http(wifiprov_transport_http::listen(([127, 0, 0, 1], 0).into()).unwrap())
                    )
                    .await,
                Ok(())
            ),
            "a stopped service can start again"
        );
    }
}

daemon_test! {
    async fn deinit_ends_and_shuts_down() {
        let daemon = start(sec1(), Setup::default()).await;
        let mut events = daemon.events.resubscribe();
        let addr = daemon.addr;
        daemon.service.clone().deinit().await;
        wait_event(&mut events, |e| *e == Event::End).await;
        wait_event(&mut events, |e| *e == Event::Deinit).await;
        assert!(HttpClient::connect(addr).await.is_err());
    }
}
