//! Integration tests for the simulated radio, all under a paused tokio clock: delays cost no real time and
//! timings are asserted exactly.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use wifiprov_backend::{
    AuthMode, Bssid, Channel, ConnectError, ConnectRequest, DisconnectReason, LinkEvent, Passphrase, ScanParams, Ssid,
    WifiBackend,
};
use wifiprov_backend_sim::SimRadio;

const DEMO_PASS: &str = "wifiprov-demo-pass";

fn ssid(name: &str) -> Ssid {
    Ssid::try_from(name).unwrap()
}

fn pass(value: &str) -> Option<Passphrase> {
    Some(Passphrase::try_from(value).unwrap())
}

fn bssid(text: &str) -> Bssid {
    text.parse().unwrap()
}

fn request(name: &str, passphrase: Option<&str>) -> ConnectRequest {
    ConnectRequest::new(ssid(name), passphrase.and_then(pass))
}

/// Waits for the next link event, failing (in virtual time, so instantly) if none comes within a minute.
async fn next_event(events: &mut broadcast::Receiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("no link event within 60 s")
        .expect("event channel closed or lagged")
}

/// Asserts that no event is pending right now, without letting time pass.
fn assert_no_event(events: &mut broadcast::Receiver<LinkEvent>) {
    match events.try_recv() {
        Err(broadcast::error::TryRecvError::Empty) => {}
        other => panic!("unexpected event: {other:?}"),
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(err), |e| e.source()).map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

mod scan {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lists_visible_default_aps_strongest_first_without_hidden() {
        let radio = SimRadio::builtin_default();
        let start = Instant::now();
        let found = radio.scan(ScanParams::default()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(1500));

        let names: Vec<String> = found.iter().map(|ap| ap.ssid.as_ref().unwrap().to_string()).collect();
        assert_eq!(
            names,
            ["wifiprov-demo", "wifiprov-wpa3", "wifiprov-open", "Neighbour-5G", "HomeNet 2.4", "eduroam", "caf\\xe9"]
        );
        assert!(found.windows(2).all(|pair| pair[0].rssi >= pair[1].rssi));
        assert!(found.iter().all(|ap| !ap.is_hidden()));

        let demo = &found[0];
        assert_eq!(demo.bssid, bssid("02:57:50:00:00:01"));
        assert_eq!(demo.channel, Channel::new(6).unwrap());
        assert_eq!(demo.rssi.dbm(), -42);
        assert_eq!(demo.auth, AuthMode::Wpa2Psk);
        assert_eq!(found[1].auth.esp_code(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn channel_filter() {
        let radio = SimRadio::builtin_default();
        let params = ScanParams {
            channels: Some(vec![Channel::new(1).unwrap(), Channel::new(6).unwrap()]),
            ..ScanParams::default()
        };
        let found = radio.scan(params).await.unwrap();
        let names: Vec<String> = found.iter().map(|ap| ap.ssid.as_ref().unwrap().to_string()).collect();
        assert_eq!(names, ["wifiprov-demo", "wifiprov-open"]);

        let none = ScanParams { channels: Some(Vec::new()), ..ScanParams::default() };
        assert!(radio.scan(none).await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn ties_broken_by_bssid() {
        let radio = SimRadio::from_toml_str(
            r#"
            scan_duration_ms = 10
            [[ap]]
            ssid = "b"
            bssid = "02:00:00:00:00:02"
            channel = 1
            rssi = -50
            auth = "open"
            [[ap]]
            ssid = "a"
            bssid = "02:00:00:00:00:01"
            channel = 1
            rssi = -50
            auth = "open"
            "#,
        )
        .unwrap();
        let found = radio.scan(ScanParams::default()).await.unwrap();
        let order: Vec<Bssid> = found.iter().map(|ap| ap.bssid).collect();
        assert_eq!(order, [bssid("02:00:00:00:00:01"), bssid("02:00:00:00:00:02")]);
    }
}

mod connect {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn right_passphrase_links_after_exactly_the_join_latency() {
        let radio = SimRadio::builtin_default();
        let mut events = radio.subscribe();
        let start = Instant::now();
        let info = radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(1200));

        assert_eq!(info.ssid, ssid("wifiprov-demo"));
        assert_eq!(info.bssid, bssid("02:57:50:00:00:01"));
        assert_eq!(info.channel, Channel::new(6).unwrap());
        assert_eq!(info.auth, AuthMode::Wpa2Psk);
        assert_eq!(info.ip4, Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(info.rssi.dbm(), -42);
        assert_eq!(radio.link(), Some(info.clone()));
        assert_eq!(next_event(&mut events).await, LinkEvent::Connected(info));
    }

    #[tokio::test(start_paused = true)]
    async fn wrong_passphrase_is_auth_failed() {
        let radio = SimRadio::builtin_default();
        let mut events = radio.subscribe();
        let start = Instant::now();
        let err = radio.connect(request("wifiprov-demo", Some("not-the-pass"))).await.unwrap_err();
        assert!(matches!(err, ConnectError::AuthFailed), "{err:?}");
        assert_eq!(err.reason(), DisconnectReason::AUTH_FAIL);
        assert_eq!(start.elapsed(), Duration::from_millis(1200));
        assert_eq!(radio.link(), None);
        assert_no_event(&mut events);
    }

    #[tokio::test(start_paused = true)]
    async fn missing_passphrase_is_auth_failed() {
        let radio = SimRadio::builtin_default();
        let err = radio.connect(request("wifiprov-wpa3", None)).await.unwrap_err();
        assert!(matches!(err, ConnectError::AuthFailed), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_ssid_is_network_not_found_after_a_scan() {
        let radio = SimRadio::builtin_default();
        let start = Instant::now();
        let err = radio.connect(request("nobody-here", Some(DEMO_PASS))).await.unwrap_err();
        assert!(matches!(err, ConnectError::NetworkNotFound), "{err:?}");
        assert_eq!(err.reason().code(), 201);
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn pinned_bssid_must_match() {
        let radio = SimRadio::builtin_default();
        let wrong = request("wifiprov-demo", Some(DEMO_PASS)).with_bssid(bssid("02:57:50:00:00:02"));
        assert!(matches!(radio.connect(wrong).await, Err(ConnectError::NetworkNotFound)));
        let right = request("wifiprov-demo", Some(DEMO_PASS)).with_bssid(bssid("02:57:50:00:00:01"));
        assert!(radio.connect(right).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn hidden_network_joinable_by_ssid() {
        let radio = SimRadio::builtin_default();
        let info = radio.connect(request("wifiprov-hidden", Some("wifiprov-hidden-pass"))).await.unwrap();
        assert_eq!(info.bssid, bssid("02:57:50:00:00:04"));
        // Fourth entry in the file: base + 3.
        assert_eq!(info.ip4, Ipv4Addr::new(192, 168, 1, 103));
    }

    #[tokio::test(start_paused = true)]
    async fn open_network_ignores_a_passphrase() {
        let radio = SimRadio::builtin_default();
        let start = Instant::now();
        let info = radio.connect(request("wifiprov-open", Some("whatever-you-say"))).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(800));
        assert_eq!(info.auth, AuthMode::Open);
        assert!(radio.connect(request("wifiprov-open", None)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn wpa3_needs_the_passphrase_itself() {
        let radio = SimRadio::builtin_default();
        let raw_psk = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let err = radio.connect(request("wifiprov-wpa3", Some(raw_psk))).await.unwrap_err();
        assert!(matches!(err, ConnectError::AuthFailed), "{err:?}");
        let info = radio.connect(request("wifiprov-wpa3", Some("wifiprov-sae-pass"))).await.unwrap();
        assert_eq!(info.auth, AuthMode::Wpa3Sae);
    }

    #[tokio::test(start_paused = true)]
    async fn raw_psk_matches_same_hex_in_any_case() {
        let radio = SimRadio::from_toml_str(
            r#"
            [[ap]]
            ssid = "psk"
            bssid = "02:00:00:00:00:01"
            channel = 1
            rssi = -50
            auth = "wpa2-psk"
            passphrase = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"
            "#,
        )
        .unwrap();
        let lower = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        assert!(radio.connect(request("psk", Some(lower))).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn enterprise_is_unsupported() {
        let radio = SimRadio::builtin_default();
        let err = radio.connect(request("eduroam", Some("my-university-pass"))).await.unwrap_err();
        assert!(matches!(err, ConnectError::UnsupportedAuth { auth: AuthMode::Wpa2Enterprise }), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn flaky_joins_fail_then_succeed() {
        let radio = SimRadio::from_toml_str(
            r#"
            [[ap]]
            ssid = "flaky"
            bssid = "02:00:00:00:00:01"
            channel = 1
            rssi = -50
            auth = "wpa2-psk"
            passphrase = "flaky-pass"
            join_latency_ms = 300
            flaky_joins = 2
            "#,
        )
        .unwrap();
        let start = Instant::now();
        for _ in 0..2 {
            let err = radio.connect(request("flaky", Some("flaky-pass"))).await.unwrap_err();
            assert!(matches!(err, ConnectError::AssociationFailed), "{err:?}");
            assert_eq!(err.reason(), DisconnectReason::ASSOC_FAIL);
        }
        assert!(radio.connect(request("flaky", Some("flaky-pass"))).await.is_ok());
        assert_eq!(start.elapsed(), Duration::from_millis(900));
    }

    #[tokio::test(start_paused = true)]
    async fn works_through_a_trait_object() {
        let backend: Arc<dyn WifiBackend> = Arc::new(SimRadio::builtin_default());
        let info = backend.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap();
        assert_eq!(backend.link(), Some(info));
    }
}

mod link {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lose_link_after_emits_link_lost() {
        let radio = SimRadio::from_toml_str(
            r#"
            [[ap]]
            ssid = "fragile"
            bssid = "02:00:00:00:00:01"
            channel = 1
            rssi = -50
            auth = "open"
            join_latency_ms = 1000
            lose_link_after_ms = 5000
            "#,
        )
        .unwrap();
        let mut events = radio.subscribe();
        let start = Instant::now();
        let info = radio.connect(request("fragile", None)).await.unwrap();
        assert_eq!(next_event(&mut events).await, LinkEvent::Connected(info));

        let lost = next_event(&mut events).await;
        assert_eq!(lost, LinkEvent::LinkLost { reason: DisconnectReason::BEACON_TIMEOUT });
        assert_eq!(start.elapsed(), Duration::from_millis(6000));
        assert_eq!(radio.link(), None);

        // The access point is still there; the timer starts again with each link.
        assert!(radio.connect(request("fragile", None)).await.is_ok());
        assert!(matches!(next_event(&mut events).await, LinkEvent::Connected(_)));
        assert!(matches!(next_event(&mut events).await, LinkEvent::LinkLost { .. }));
        assert_eq!(start.elapsed(), Duration::from_millis(12_000));
    }

    #[tokio::test(start_paused = true)]
    async fn disconnect_clears_link_and_cancels_the_loss_timer() {
        let radio = SimRadio::from_toml_str(
            r#"
            [[ap]]
            ssid = "fragile"
            bssid = "02:00:00:00:00:01"
            channel = 1
            rssi = -50
            auth = "open"
            lose_link_after_ms = 5000
            "#,
        )
        .unwrap();
        let mut events = radio.subscribe();
        radio.connect(request("fragile", None)).await.unwrap();
        assert!(matches!(next_event(&mut events).await, LinkEvent::Connected(_)));

        radio.disconnect().await.unwrap();
        assert_eq!(radio.link(), None);
        assert_eq!(next_event(&mut events).await, LinkEvent::Disconnected { reason: DisconnectReason::ASSOC_LEAVE });
        // Idempotent, and silent when there is nothing to leave.
        radio.disconnect().await.unwrap();
        // Past the old loss deadline: the cancelled timer must not fire.
        let quiet = tokio::time::timeout(Duration::from_secs(10), events.recv()).await;
        assert!(quiet.is_err(), "unexpected event {quiet:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn disconnect_cancels_a_join_in_flight() {
        let radio = SimRadio::builtin_default();
        let mut events = radio.subscribe();
        let (joined, ()) = tokio::join!(radio.connect(request("wifiprov-demo", Some(DEMO_PASS))), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            radio.disconnect().await.unwrap();
        });
        assert!(matches!(joined, Err(ConnectError::Cancelled)), "{joined:?}");
        assert_eq!(radio.link(), None);
        assert_no_event(&mut events);
    }

    #[tokio::test(start_paused = true)]
    async fn new_connect_supersedes_the_old_one() {
        let radio = SimRadio::builtin_default();
        let mut events = radio.subscribe();
        let start = Instant::now();
        let (first, second) = tokio::join!(radio.connect(request("wifiprov-demo", Some(DEMO_PASS))), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            radio.connect(request("wifiprov-open", None)).await
        });
        assert!(matches!(first, Err(ConnectError::Cancelled)), "{first:?}");
        let second = second.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(900));
        assert_eq!(next_event(&mut events).await, LinkEvent::Connected(second.clone()));

        // Replacing an established link reports leaving it first.
        let third = radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap();
        assert_eq!(next_event(&mut events).await, LinkEvent::Disconnected { reason: DisconnectReason::ASSOC_LEAVE });
        assert_eq!(next_event(&mut events).await, LinkEvent::Connected(third));
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_connect_future_leaves_the_radio_idle() {
        let radio = SimRadio::builtin_default();
        let abandoned =
            tokio::time::timeout(Duration::from_millis(500), radio.connect(request("wifiprov-demo", Some(DEMO_PASS))))
                .await;
        assert!(abandoned.is_err());
        assert_eq!(radio.link(), None);
        assert!(radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.is_ok());
    }
}

mod controls {
    use super::*;
    use wifiprov_backend::SsidVisibility;
    use wifiprov_backend_sim::{Presence, SimAccessPoint, SimError};

    const DEMO: &str = "02:57:50:00:00:01";

    #[tokio::test(start_paused = true)]
    async fn drop_link_emits_link_lost() {
        let radio = SimRadio::builtin_default();
        let mut events = radio.subscribe();
        assert_eq!(radio.drop_link(), None);
        let info = radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap();
        assert!(matches!(next_event(&mut events).await, LinkEvent::Connected(_)));
        assert_eq!(radio.drop_link(), Some(info));
        assert_eq!(radio.link(), None);
        assert_eq!(next_event(&mut events).await, LinkEvent::LinkLost { reason: DisconnectReason::BEACON_TIMEOUT });
        assert_no_event(&mut events);
    }

    #[tokio::test(start_paused = true)]
    async fn passphrase_change_applies_to_the_next_join() {
        let radio = SimRadio::builtin_default();
        radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap();
        radio.set_passphrase(bssid(DEMO), pass("rotated-pass")).unwrap();
        assert!(radio.link().is_some());

        let err = radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap_err();
        assert!(matches!(err, ConnectError::AuthFailed), "{err:?}");
        assert!(radio.connect(request("wifiprov-demo", Some("rotated-pass"))).await.is_ok());

        let err = radio.set_passphrase(bssid(DEMO), None).unwrap_err();
        assert!(matches!(err, SimError::Credentials { .. }), "{err:?}");
        let err = radio.set_passphrase(bssid("02:00:00:00:00:99"), None).unwrap_err();
        assert_eq!(err, SimError::UnknownBssid { bssid: bssid("02:00:00:00:00:99") });
    }

    #[tokio::test(start_paused = true)]
    async fn absence_hides_from_scans_and_joins_and_drops_the_link() {
        let radio = SimRadio::builtin_default();
        let mut events = radio.subscribe();
        radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap();
        assert!(matches!(next_event(&mut events).await, LinkEvent::Connected(_)));

        radio.set_presence(bssid(DEMO), Presence::Absent).unwrap();
        assert_eq!(next_event(&mut events).await, LinkEvent::LinkLost { reason: DisconnectReason::BEACON_TIMEOUT });
        assert_eq!(radio.link(), None);
        let found = radio.scan(ScanParams::default()).await.unwrap();
        assert!(found.iter().all(|ap| ap.bssid != bssid(DEMO)));
        let err = radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap_err();
        assert!(matches!(err, ConnectError::NetworkNotFound), "{err:?}");

        radio.set_presence(bssid(DEMO), Presence::Present).unwrap();
        assert!(radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn absent_in_scenario() {
        let radio = SimRadio::from_toml_str(
            r#"
            [[ap]]
            ssid = "gone"
            bssid = "02:00:00:00:00:01"
            channel = 1
            rssi = -50
            auth = "open"
            absent = true
            "#,
        )
        .unwrap();
        assert!(radio.scan(ScanParams::default()).await.unwrap().is_empty());
        let err = radio.connect(request("gone", None)).await.unwrap_err();
        assert!(matches!(err, ConnectError::NetworkNotFound), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn removal_during_a_join_means_not_found() {
        let radio = SimRadio::builtin_default();
        let (joined, removed) = tokio::join!(radio.connect(request("wifiprov-demo", Some(DEMO_PASS))), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            radio.remove_access_point(bssid(DEMO))
        });
        assert_eq!(removed.unwrap().ssid, ssid("wifiprov-demo"));
        assert!(matches!(joined, Err(ConnectError::NetworkNotFound)), "{joined:?}");
        assert!(matches!(radio.remove_access_point(bssid(DEMO)), Err(SimError::UnknownBssid { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn removing_the_linked_ap_loses_the_link() {
        let radio = SimRadio::builtin_default();
        let mut events = radio.subscribe();
        radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap();
        assert!(matches!(next_event(&mut events).await, LinkEvent::Connected(_)));
        // Removing some other access point leaves the link alone.
        radio.remove_access_point(bssid("02:57:50:00:00:02")).unwrap();
        assert!(radio.link().is_some());
        radio.remove_access_point(bssid(DEMO)).unwrap();
        assert!(matches!(next_event(&mut events).await, LinkEvent::LinkLost { .. }));
        assert_eq!(radio.link(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn added_ap_is_scanned_and_joinable() {
        let radio = SimRadio::builtin_default();
        let mut ap = SimAccessPoint::new(
            ssid("added-later"),
            bssid("02:00:00:00:00:42"),
            Channel::new(13).unwrap(),
            AuthMode::Wpa2Wpa3,
            pass("added-pass"),
        );
        ap.rssi = (-30).into();
        ap.join_latency = Duration::from_millis(250);
        radio.add_access_point(ap.clone()).unwrap();
        assert_eq!(radio.add_access_point(ap.clone()).unwrap_err(), SimError::DuplicateBssid { bssid: ap.bssid });

        let found = radio.scan(ScanParams::default()).await.unwrap();
        assert_eq!(found[0].ssid, Some(ssid("added-later")));

        let start = Instant::now();
        let info = radio.connect(request("added-later", Some("added-pass"))).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        // Ninth access point overall (eight in the default scenario): base + 8.
        assert_eq!(info.ip4, Ipv4Addr::new(192, 168, 1, 108));

        let mut hidden = SimAccessPoint::new(
            ssid("added-hidden"),
            bssid("02:00:00:00:00:43"),
            Channel::new(1).unwrap(),
            AuthMode::Open,
            None,
        );
        hidden.visibility = SsidVisibility::Hidden;
        hidden.ip4 = Some(Ipv4Addr::new(10, 9, 8, 7));
        radio.add_access_point(hidden).unwrap();
        let found = radio.scan(ScanParams::default()).await.unwrap();
        assert!(found.iter().all(|ap| ap.ssid != Some(ssid("added-hidden"))));
        assert_eq!(radio.connect(request("added-hidden", None)).await.unwrap().ip4, Ipv4Addr::new(10, 9, 8, 7));

        let open_with_pass = SimAccessPoint::new(
            ssid("bad"),
            bssid("02:00:00:00:00:44"),
            Channel::new(1).unwrap(),
            AuthMode::Open,
            pass("pointless-pass"),
        );
        assert!(matches!(radio.add_access_point(open_with_pass), Err(SimError::Credentials { .. })));
        assert_eq!(radio.access_points().len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn flaky_count_can_be_set_at_run_time() {
        let radio = SimRadio::builtin_default();
        radio.set_flaky_joins(bssid(DEMO), 1).unwrap();
        let err = radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.unwrap_err();
        assert!(matches!(err, ConnectError::AssociationFailed), "{err:?}");
        assert!(radio.connect(request("wifiprov-demo", Some(DEMO_PASS))).await.is_ok());
    }
}

mod scenario {
    use super::*;
    use wifiprov_backend_sim::{ApLabel, FieldError, ScenarioError};

    const GOOD_AP: &str = r#"
        [[ap]]
        ssid = "first"
        bssid = "02:00:00:00:00:01"
        channel = 1
        rssi = -50
        auth = "open"
    "#;

    fn parse_with_second(second: &str) -> ScenarioError {
        let text = format!("{GOOD_AP}\n[[ap]]\n{second}");
        match SimRadio::from_toml_str(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(err) => err,
        }
    }

    #[test]
    fn bad_bssid_names_the_access_point() {
        let err = parse_with_second(
            r#"ssid = "second"
            bssid = "02:00:00:00:00"
            channel = 6
            rssi = -60
            auth = "open""#,
        );
        let ScenarioError::AccessPoint { ap, field, problem } = &err else { panic!("{err:?}") };
        assert_eq!(*ap, ApLabel { index: 2, ssid: Some("second".to_owned()) });
        assert_eq!(*field, "bssid");
        assert!(matches!(problem, FieldError::Bssid(_)));
        assert_eq!(
            error_chain(&err),
            "access point #2 \"second\": field `bssid` is invalid: \
             BSSID \"02:00:00:00:00\" is not six colon-separated hex octets"
        );
    }

    #[test]
    fn missing_ssid_names_the_position() {
        let err = parse_with_second(
            r#"bssid = "02:00:00:00:00:02"
            channel = 6
            rssi = -60
            auth = "open""#,
        );
        assert_eq!(error_chain(&err), "access point #2: field `ssid` is invalid: value is missing");
    }

    #[test]
    fn value_problems_are_specific() {
        let base = r#"ssid = "second"
            bssid = "02:00:00:00:00:02""#;
        let cases = [
            ("channel = 0\nrssi = -60\nauth = \"open\"", "channel", "0 is outside 1 to 196"),
            ("channel = 6\nrssi = -200\nauth = \"open\"", "rssi", "-200 is outside -128 to 127"),
            ("channel = 6\nrssi = -60\nauth = \"wpa2\"", "auth", "unknown auth mode \"wpa2\""),
            ("channel = 6\nrssi = -60\nauth = \"wpa2-psk\"", "passphrase", "auth mode wpa2-psk needs a passphrase"),
            (
                "channel = 6\nrssi = -60\nauth = \"open\"\npassphrase = \"pointless-pass\"",
                "passphrase",
                "auth mode open takes no passphrase",
            ),
            ("channel = 6\nrssi = -60\nauth = \"open\"\nip4 = \"10.0.0\"", "ip4", "invalid IPv4 address syntax"),
        ];
        for (rest, want_field, want_problem) in cases {
            let err = parse_with_second(&format!("{base}\n{rest}"));
            let chain = error_chain(&err);
            assert!(chain.starts_with("access point #2 \"second\""), "{chain}");
            assert!(chain.contains(&format!("field `{want_field}`")), "{chain}");
            assert!(chain.contains(want_problem), "{chain}");
        }
    }

    #[test]
    fn ssid_forms() {
        let err = parse_with_second(
            r#"ssid = "a"
            ssid_hex = "61""#,
        );
        assert!(matches!(err, ScenarioError::AccessPoint { field: "ssid", problem: FieldError::Conflict { .. }, .. }));
        let err = parse_with_second(r#"ssid_hex = "6""#);
        assert!(matches!(err, ScenarioError::AccessPoint { field: "ssid_hex", problem: FieldError::NotHex, .. }));
        let err = parse_with_second(&format!("ssid = \"{}\"", "x".repeat(33)));
        assert!(matches!(err, ScenarioError::AccessPoint { field: "ssid", problem: FieldError::Ssid(_), .. }));
    }

    #[test]
    fn duplicate_bssid_names_both() {
        let err = parse_with_second(
            r#"ssid = "second"
            bssid = "02:00:00:00:00:01"
            channel = 6
            rssi = -60
            auth = "open""#,
        );
        assert_eq!(err.to_string(), "access points #1 \"first\" and #2 \"second\" share BSSID 02:00:00:00:00:01");
    }

    #[test]
    fn unknown_keys_are_syntax_errors_with_a_line() {
        let err = parse_with_second(
            r#"ssid = "second"
            bssid = "02:00:00:00:00:02"
            chanel = 6"#,
        );
        let ScenarioError::Syntax(inner) = &err else { panic!("{err:?}") };
        assert!(inner.message().starts_with("unknown field `chanel`"), "{inner}");
        assert_eq!((inner.line(), inner.column()), (Some(12), Some(13)));
        assert!(inner.to_string().ends_with(" at line 12, column 13"), "{inner}");
    }

    #[test]
    fn top_level_setting_errors() {
        let err = SimRadio::from_toml_str("ip4_base = \"nope\"").err().unwrap();
        assert!(matches!(err, ScenarioError::Setting { field: "ip4_base", .. }), "{err:?}");
    }

    #[test]
    fn file_errors_name_the_path() {
        let dir = std::env::temp_dir().join(format!("wifiprov-sim-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let missing = dir.join("missing.toml");
        let err = SimRadio::from_file(&missing).err().unwrap();
        assert!(matches!(&err, ScenarioError::Read { path, .. } if *path == missing), "{err:?}");

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[[ap]]\nssid = \"\"\n").unwrap();
        let err = SimRadio::from_file(&bad).err().unwrap();
        let chain = error_chain(&err);
        assert!(chain.starts_with(&format!("scenario file {} is invalid: access point #1", bad.display())), "{chain}");

        let good = dir.join("good.toml");
        std::fs::write(&good, GOOD_AP).unwrap();
        assert_eq!(SimRadio::from_file(&good).unwrap().access_points().len(), 1);

        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn defaults_apply() {
        let radio = SimRadio::from_toml_str(GOOD_AP).unwrap();
        let ap = &radio.access_points()[0];
        assert_eq!(ap.join_latency, Duration::from_millis(1000));
        assert_eq!(ap.flaky_joins, 0);
        assert_eq!(ap.lose_link_after, None);
        assert!(SimRadio::from_toml_str("").unwrap().access_points().is_empty());
    }
}

mod secrets {
    use super::*;

    const SECRET: &str = "correct-horse-battery";

    #[test]
    fn debug_never_shows_the_passphrase() {
        let passphrase = Passphrase::try_from(SECRET).unwrap();
        let req = ConnectRequest::new(ssid("home"), Some(passphrase.clone()));
        for text in [format!("{passphrase:?}"), format!("{passphrase}"), format!("{req:?}"), format!("{req:#?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains("horse"), "{text}");
        }
        assert!(format!("{req:?}").contains("passphrase: Some(<redacted>)"));
    }

    #[test]
    fn scenario_debug_and_errors_never_show_the_passphrase() {
        let radio = SimRadio::from_toml_str(&format!(
            r#"
            [[ap]]
            ssid = "home"
            bssid = "02:00:00:00:00:01"
            channel = 1
            rssi = -50
            auth = "wpa2-psk"
            passphrase = "{SECRET}"
            "#
        ))
        .unwrap();
        let text = format!("{:?}", radio.access_points());
        assert!(!text.contains(SECRET), "{text}");

        // Rejected by Passphrase (not ASCII), by TOML itself (DEL is not allowed in a string, so the line
        // does not even parse), and by type.
        for (value, want) in [
            ("\"horse-é-staple\"", "field `passphrase`"),
            ("\"horse\u{7f}-staple\"", "at line 8"),
            ("[\"horse-staple\"]", "expected a string"),
        ] {
            let err = SimRadio::from_toml_str(&format!(
                r#"
                [[ap]]
                ssid = "home"
                bssid = "02:00:00:00:00:01"
                channel = 1
                rssi = -50
                auth = "wpa2-psk"
                passphrase = {value}
                "#
            ))
            .err()
            .unwrap();
            let chain = error_chain(&err);
            assert!(chain.contains(want), "{chain}");
            for text in [chain, format!("{err:?}")] {
                assert!(!text.contains("horse"), "{text}");
            }
        }
    }
}
