//! Writes the seed corpora, `fuzz/corpus/<target>/`, from the golden vectors (`tests/vectors/`) and from
//! messages built with the crates' own types. Deterministic: the same sources give the same files, named after
//! what they hold. Each target's directory is replaced as a whole.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --features gen-corpus --bin gen-corpus          # write
//! cargo run --manifest-path fuzz/Cargo.toml --features gen-corpus --bin gen-corpus -- --check  # compare only
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wifiprov_backend::{Bssid, DisconnectReason, Passphrase, Ssid};
use wifiprov_fuzz::golden::{Exchange, golden};
use wifiprov_fuzz::input::Builder;
use wifiprov_fuzz::{client, messages, protocomm, session};
use wifiprov_manager::networks::{ConnectOutcome, LastResult, NetworkList, NetworkSecurity, SavedNetwork, Visibility};
use wifiprov_proto::danger;
use wifiprov_proto::endpoint::names;
use wifiprov_proto::messages::networks::{self, AddRequest, Entry, LastAttempt, NetStatus};
use wifiprov_proto::messages::{AuthMode, config, ctrl, scan};
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::DeviceSecurity;
use wifiprov_proto::version::{AppInfo, ProvInfo, VersionInfo};
use wifiprov_store::NetworkStore;

/// Seeds per target, by name.
#[derive(Default)]
struct Corpus(BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>);

impl Corpus {
    fn add(&mut self, target: &'static str, name: impl Into<String>, bytes: Vec<u8>) {
        let seeds = self.0.entry(target).or_default();
        if !seeds.values().any(|b| *b == bytes) {
            seeds.insert(name.into(), bytes);
        }
    }
}

fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn plain_request(e: &Exchange, scheme: u8) -> Option<Vec<u8>> {
    if scheme == 0 { Some(e.request.clone()) } else { e.request_plain.clone() }
}

fn plain_response(e: &Exchange, scheme: u8) -> Option<Vec<u8>> {
    if scheme == 0 { e.response.clone() } else { e.response_plain.clone() }
}

const ORDINARY: [&str; 5] =
    [names::PROV_CONFIG, names::PROV_SCAN, names::PROV_CTRL, names::PROV_NETWORKS, "custom-data"];

/// Sessions: every transcript replayed with its profile's device secrets queued, the compact vectors, honest
/// clients with the right and the wrong credentials, and a failing random source.
fn sessions(c: &mut Corpus) {
    let g = golden();
    let target = |scheme: u8| match scheme {
        0 => "session_sec0",
        1 => "session_sec1",
        _ => "session_sec2",
    };
    for t in &g.transcripts {
        let mut b = Builder::new(&session::header(t.profile as u8, session::FLAG_GOLDEN, 0, 0));
        for e in &t.exchanges {
            match e.endpoint.as_str() {
                names::PROTO_VER => {}
                names::PROV_SESSION => b = b.record(session::HANDSHAKE, &e.request),
                _ => {
                    b = b.record(session::DECRYPT, &e.request);
                    if let Some(plain) = plain_response(e, t.scheme) {
                        b = b.record(session::ENCRYPT, &plain);
                    }
                }
            }
        }
        c.add(target(t.scheme), format!("transcript-{}", slug(&t.name)), b.finish());
    }
    for (scheme, profile, cipher, _, plain_response, _) in &g.compact_pairs {
        let steps = match scheme {
            1 => &g.sec1[*profile].handshake,
            _ => &g.sec2[*profile].handshake,
        };
        let mut b = Builder::new(&session::header(*profile as u8, session::FLAG_GOLDEN, 0, 0));
        for s in steps {
            b = b.record(session::HANDSHAKE, &s.request);
        }
        b = b.record(session::DECRYPT, cipher).record(session::ENCRYPT, plain_response);
        c.add(target(*scheme), "compact-vectors", b.finish());
    }
    c.add("session_sec0", "compact-vectors", {
        Builder::new(&session::header(0, 0, 0, 0)).record(session::HANDSHAKE, &g.sec0.request).finish()
    });
    // Honest clients, then the plaintexts of the transcripts sealed by them.
    let plaintexts: Vec<Vec<u8>> = g
        .transcripts
        .iter()
        .flat_map(|t| t.exchanges.iter().filter_map(move |e| plain_request(e, t.scheme)))
        .take(8)
        .collect();
    for (scheme, profiles) in [(0u8, 1usize), (1, g.sec1.len()), (2, g.sec2.len())] {
        for profile in 0..profiles {
            let pops: &[u8] = if scheme == 1 { &[0, 2, 4] } else { &[0] };
            for &pop in pops {
                let mut b = Builder::new(&session::header(profile as u8, pop, 0, 7)).record(session::HONEST, &[0]);
                for p in &plaintexts {
                    b = b.record(session::SEALED, p);
                }
                b = b.record(session::ENCRYPT, b"answer").record(session::DECRYPT, &[0u8; 24]);
                c.add(target(scheme), format!("honest-profile{profile}-pop{pop}"), b.finish());
            }
            let wrong = Builder::new(&session::header(profile as u8, 0, 0, 7))
                .record(session::HONEST, &[1, b'x'])
                .record(session::DECRYPT, b"after a refused handshake")
                .record(session::HONEST, &[0])
                .record(session::RESTART, &[])
                .record(session::ENCRYPT, b"after a restart")
                .finish();
            c.add(target(scheme), format!("wrong-credentials-profile{profile}"), wrong);
        }
    }
    for scheme in 0..3u8 {
        let b = Builder::new(&session::header(0, session::FLAG_GOLDEN, 4, 1))
            .record(session::HONEST, &[0])
            .record(session::SEALED, b"rng runs out")
            .record(session::HONEST, &[0])
            .finish();
        c.add(target(scheme), "failing-random-source", b);
    }
}

/// The protocomm table: every scheme with honest clients, transcripts replayed request by request, and the
/// session table pushed around.
fn protocomm_seeds(c: &mut Corpus) {
    let g = golden();
    let endpoint_index = |name: &str| protocomm::ENDPOINTS.iter().position(|e| *e == name).unwrap_or(6) as u8;
    let plain: Vec<(u8, Vec<u8>)> = g
        .transcripts
        .iter()
        .filter(|t| t.scheme == 1)
        .flat_map(|t| t.exchanges.iter())
        .filter_map(|e| {
            let index = ORDINARY.iter().position(|n| *n == e.endpoint)? as u8;
            Some((index, e.request_plain.clone()?))
        })
        .take(10)
        .collect();
    for scheme in 0..4u8 {
        let mut b = Builder::new(&protocomm::header(scheme, 1, 1, 30, 5, 3)).record(protocomm::HONEST, &[0, 0]);
        for (index, p) in &plain {
            b = b.record(protocomm::SEALED, &[&[0, *index][..], p].concat());
        }
        let net = networks::Request::List { scan: true }.encode();
        b = b.record(protocomm::SEALED, &[&[0, 3][..], &net].concat());
        c.add("protocomm", format!("honest-scheme{scheme}"), b.finish());

        // Several peers, the table full, time passing, a wrong client, out-of-order steps.
        let mut b = Builder::new(&protocomm::header(scheme, 0, 1, 2, 1, 9))
            .record(protocomm::HONEST, &[0, 0])
            .record(protocomm::HONEST, &[1, 1])
            .record(protocomm::BEGIN, &[2, 0, 1, 1, 2, 3])
            .record(protocomm::BEGIN, &[1, 1, 2, 0x52, 0x00])
            .record(protocomm::BEGIN, &[1, 1, 2, 0x52, 0x00])
            .record(protocomm::FINISH, &[1])
            .record(protocomm::CANCEL, &[0])
            .record(protocomm::ADVANCE, &200u16.to_le_bytes())
            .record(protocomm::OPEN, &[0x80, 3])
            .record(protocomm::ATTACH, &[0, 0])
            .record(protocomm::ATTACH, &[0, 1])
            .record(protocomm::HONEST, &[2, 0])
            .record(protocomm::ADVANCE, &4000u16.to_le_bytes())
            .record(protocomm::HONEST, &[3, 0])
            .record(protocomm::CLOSE, &[0])
            .record(protocomm::OPEN, &[1, 0]);
        for endpoint in 0..protocomm::ENDPOINTS.len() as u8 {
            b = b.record(protocomm::HANDLE, &[0, 0, endpoint, 0x08, 0x01]);
            b = b.record(protocomm::HANDLE, &[0, 1, endpoint, 0x08, 0x01]);
        }
        c.add("protocomm", format!("table-scheme{scheme}"), b.finish());
    }
    // A session reopened while a request of it runs (what found the check-in fix of issue #12).
    let hello = &g.sec0.request;
    let b = Builder::new(&protocomm::header(0, 1, 1, 30, 5, 1))
        .record(protocomm::OPEN, &[0x80, 0])
        .record(protocomm::HANDLE, &[&[0, 1, 1][..], hello].concat())
        .record(protocomm::BEGIN, &[0, 1, 2, 0x52, 0x00])
        .record(protocomm::OPEN, &[0, 0])
        .record(protocomm::BEGIN, &[0, 1, 2, 0x52, 0x00])
        .record(protocomm::FINISH, &[0])
        .record(protocomm::BEGIN, &[0, 1, 2, 0x52, 0x00])
        .record(protocomm::FINISH, &[0]);
    c.add("protocomm", "reopened-while-running", b.finish());
    // The guessing limit with no free failures (issue #12): two sessions wait for their proofs; the first proof in
    // flight makes the second busy, its failure locks both out, the second's proof is lost with its session (a
    // longer wait from when it began), and the right PoP forgives both once the wait is over.
    let cmd0 = &g.sec1[0].handshake[0].request;
    let junk = [0x52, 0x00];
    let b = Builder::new(&protocomm::header(1 + 4, 3, 3, 30, 5, 5))
        .record(protocomm::HANDLE, &[&[0, 0, 1][..], cmd0].concat())
        .record(protocomm::HANDLE, &[&[1, 0, 1][..], cmd0].concat())
        .record(protocomm::BEGIN, &[&[0, 1, 1][..], &junk].concat())
        .record(protocomm::BEGIN, &[&[1, 2, 1][..], &junk].concat())
        .record(protocomm::FINISH, &[0])
        .record(protocomm::BEGIN, &[&[1, 2, 1][..], &junk].concat())
        .record(protocomm::ADVANCE, &30u16.to_le_bytes())
        .record(protocomm::BEGIN, &[&[1, 2, 1][..], &junk].concat())
        .record(protocomm::CLOSE, &[1])
        .record(protocomm::FINISH, &[0])
        .record(protocomm::HONEST, &[2, 0])
        .record(protocomm::ADVANCE, &50u16.to_le_bytes())
        .record(protocomm::HONEST, &[2, 0]);
    c.add("protocomm", "guessing-one-proof-at-a-time", b.finish());
    // Security 0 transcript, request by request, through begin and check-in.
    for t in g.transcripts.iter().filter(|t| t.scheme == 0) {
        let mut b = Builder::new(&protocomm::header(0, 1, 1, 30, 5, 1));
        for (i, e) in t.exchanges.iter().enumerate() {
            let claim = if i == 0 { 0 } else { 1 };
            let head = [0, claim, endpoint_index(&e.endpoint)];
            b = b.record(protocomm::BEGIN, &[&head[..], &e.request].concat()).record(protocomm::FINISH, &[0]);
        }
        c.add("protocomm", format!("transcript-{}", slug(&t.name)), b.finish());
    }
    for t in g.transcripts.iter().filter(|t| t.scheme == 1).take(2) {
        let mut b = Builder::new(&protocomm::header(1, 1, 1, 30, 5, 1));
        for (i, e) in t.exchanges.iter().enumerate() {
            let claim = if i == 0 { 0 } else { 1 };
            let head = [0, claim, endpoint_index(&e.endpoint)];
            b = b.record(protocomm::HANDLE, &[&head[..], &e.request].concat());
        }
        c.add("protocomm", format!("transcript-{}", slug(&t.name)), b.finish());
    }
}

fn sample_networks_messages() -> (Vec<networks::Request>, Vec<networks::Response>) {
    let mut add = AddRequest::new(b"home".to_vec(), "correct horse");
    add.security = Some(networks::Security::Wpa2Wpa3);
    add.hidden = true;
    add.priority = Some(2);
    add.bssid = Some([2, 0, 0, 0, 0, 1]);
    add.connect = false;
    let requests = vec![
        networks::Request::List { scan: true },
        networks::Request::Add(add),
        networks::Request::Remove { ssid: b"home".to_vec() },
        networks::Request::Move { ssid: b"home".to_vec(), to: 3 },
        networks::Request::Connect { ssid: b"cafe".to_vec() },
    ];
    let mut responses: Vec<networks::Response> = requests.iter().map(messages::answer_networks).collect();
    responses.push(networks::Response::List {
        status: NetStatus::InternalError,
        networks: vec![
            Entry {
                ssid: b"home".to_vec(),
                priority: Some(0),
                saved: true,
                connected: true,
                rssi: Some(-41),
                bssid: Some([2, 0, 0, 0, 0, 9]),
                auth_mode: AuthMode::Wpa2Psk,
                hidden: false,
                last_attempt: Some(LastAttempt::Connected),
            },
            Entry {
                ssid: vec![0xff, 0],
                priority: None,
                saved: false,
                connected: false,
                rssi: None,
                bssid: None,
                auth_mode: AuthMode::Other(11),
                hidden: true,
                last_attempt: Some(LastAttempt::Failed(networks::ConnectFailure::Timeout)),
            },
        ],
        capacity: 8,
    });
    responses.push(networks::Response::Add {
        status: NetStatus::ConnectFailed,
        priority: 0,
        updated: true,
        failure: Some(networks::ConnectFailure::Auth),
        connected: None,
    });
    (requests, responses)
}

/// Endpoint payloads: every plaintext of the transcripts and vectors, and each message kind built with the
/// proto crate's types.
fn payloads(c: &mut Corpus) {
    let g = golden();
    let selector = |endpoint: &str| match endpoint {
        names::PROV_CONFIG => Some(messages::CONFIG),
        names::PROV_SCAN => Some(messages::SCAN),
        names::PROV_CTRL => Some(messages::CTRL),
        names::PROV_NETWORKS => Some(messages::NETWORKS),
        _ => None,
    };
    let mut add = |endpoint: u8, name: String, payload: Vec<u8>| {
        let prefix = ["config", "scan", "ctrl", "networks"][usize::from(endpoint)];
        c.add("messages", format!("{prefix}-{name}"), [&[endpoint][..], &payload].concat());
    };
    for t in &g.transcripts {
        for (i, e) in t.exchanges.iter().enumerate() {
            let Some(endpoint) = selector(&e.endpoint) else { continue };
            if let Some(p) = plain_request(e, t.scheme) {
                add(endpoint, format!("request-{}-{i}", slug(&t.name)), p);
            }
            if let Some(p) = plain_response(e, t.scheme) {
                add(endpoint, format!("response-{}-{i}", slug(&t.name)), p);
            }
        }
    }
    for (scheme, _, _, request, response, _) in &g.compact_pairs {
        add(messages::CONFIG, format!("compact-sec{scheme}-request"), request.clone());
        add(messages::CONFIG, format!("compact-sec{scheme}-response"), response.clone());
    }
    for (i, r) in messages::config_requests().iter().enumerate() {
        add(messages::CONFIG, format!("built-request-{i}"), r.encode());
        add(messages::CONFIG, format!("built-response-{i}"), messages::answer_config(r).encode());
    }
    for (i, r) in messages::scan_requests().iter().enumerate() {
        add(messages::SCAN, format!("built-request-{i}"), r.encode());
        let page = messages::answer_scan(&scan::Request::Result { start_index: 0, count: i as u32 });
        add(messages::SCAN, format!("built-response-{i}"), page.encode());
    }
    for (i, r) in [ctrl::Request::Reset, ctrl::Request::Reprov].iter().enumerate() {
        add(messages::CTRL, format!("built-request-{i}"), r.encode());
        add(messages::CTRL, format!("built-response-{i}"), messages::answer_ctrl(r).encode());
    }
    let (requests, responses) = sample_networks_messages();
    for (i, r) in requests.iter().enumerate() {
        add(messages::NETWORKS, format!("built-request-{i}"), r.encode());
    }
    for (i, r) in responses.iter().enumerate() {
        add(messages::NETWORKS, format!("built-response-{i}"), r.encode());
    }
    let failed = config::Response::GetStatus(config::StatusReport {
        status: wifiprov_proto::messages::Status::Success,
        state: Some(config::StationState::Failed(config::FailReason::Other(7))),
    });
    add(messages::CONFIG, "built-response-failed".to_owned(), failed.encode());
}

fn versions(c: &mut Corpus) {
    let g = golden();
    for t in &g.transcripts {
        if let Some(v) = &t.proto_ver {
            c.add("proto_ver", format!("reply-{}", slug(&t.name)), [&[0u8][..], v.as_bytes()].concat());
        }
    }
    let sec2 = &g.sec2[0];
    let devices = [
        ("sec0", danger::sec0()),
        ("sec1", DeviceSecurity::sec1(ProofOfPossession::new(b"abcd1234".to_vec()))),
        ("sec1-no-pop", danger::sec1_without_pop()),
        ("sec2", DeviceSecurity::sec2(sec2.device(), sec2.patch)),
    ];
    for (name, security) in devices {
        let info = VersionInfo {
            app_info: vec![AppInfo {
                label: networks::APP_LABEL.to_owned(),
                ver: networks::APP_VERSION.to_owned(),
                cap: vec!["list".to_owned()],
            }],
            prov: Some(ProvInfo::for_device(&security)),
        };
        c.add("proto_ver", format!("cjson-{name}"), [&[0u8][..], info.to_cjson().as_bytes()].concat());
    }
    for (name, text) in [
        ("old-firmware", "v1.0"),
        ("wrong-type", r#"{"prov":{"ver":1,"cap":"wifi_scan"}}"#),
        (
            "escapes",
            "{\"a\\u0000b\":{\"ver\":\"\\t\\\"\",\"cap\":[\"\\ud83d\\udd12\"]},\"prov\":{\"sec_ver\":18446744073709551615}}",
        ),
    ] {
        c.add("proto_ver", format!("reply-{name}"), [&[0u8][..], text.as_bytes()].concat());
    }
    c.add(
        "proto_ver",
        "print-document",
        vec![
            1, 2, 3, b'a', b'p', b'p', 2, b'v', b'1', 1, 4, b'l', b'i', b's', b't', 7, 4, b'v', b'1', b'.', b'1', 2, 0,
            0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
}

/// The client: each transcript's calls with the device's recorded answers.
fn client_seeds(c: &mut Corpus) {
    let g = golden();
    for t in &g.transcripts {
        let mut b = Builder::default();
        let mut in_scan = false;
        let mut handshake_done = false;
        for e in &t.exchanges {
            let answer = |b: Builder| match &e.response {
                Some(r) => b.record(client::ANSWER, r),
                None => b.record(client::CLOSE, &[]),
            };
            if e.endpoint != names::PROV_SCAN {
                in_scan = false;
            }
            match e.endpoint.as_str() {
                names::PROTO_VER => b = answer(b.record(client::VERSION, &[])),
                names::PROV_SESSION => {
                    if !handshake_done {
                        let profile = if t.scheme == 2 { t.profile as u8 } else { 0 };
                        b = b.record(client::ESTABLISH, &[t.scheme, profile]);
                        handshake_done = true;
                    }
                    b = answer(b);
                }
                names::PROV_CONFIG => {
                    let request = plain_request(e, t.scheme).and_then(|p| config::Request::decode(&p).ok());
                    b = match request {
                        Some(config::Request::SetConfig(set)) => {
                            let mut body = vec![set.ssid.len() as u8];
                            body.extend_from_slice(&set.ssid);
                            body.extend_from_slice(set.passphrase.as_bytes());
                            b.record(client::SET_CONFIG, &body)
                        }
                        Some(config::Request::ApplyConfig) => b.record(client::APPLY_CONFIG, &[]),
                        _ => b.record(client::STATUS, &[]),
                    };
                    b = answer(b);
                }
                names::PROV_SCAN => {
                    if !in_scan {
                        b = b.record(client::SCAN, &[100]);
                        in_scan = true;
                    }
                    b = answer(b);
                }
                names::PROV_CTRL => {
                    let request = plain_request(e, t.scheme).and_then(|p| ctrl::Request::decode(&p).ok());
                    let op = if request == Some(ctrl::Request::Reprov) { client::REPROV } else { client::RESET };
                    b = answer(b.record(op, &[]));
                }
                _ => b = answer(b.record(client::CUSTOM, &plain_request(e, t.scheme).unwrap_or_default())),
            }
        }
        c.add("client", format!("transcript-{}", slug(&t.name)), b.finish());
    }
    // Security 0 answers built from the proto types, including prov-networks and a wait that polls.
    let mut b = Builder::default()
        .record(client::ESTABLISH, &[0])
        .record(client::ANSWER, g.sec0.response.as_deref().unwrap_or_default());
    let (requests, responses) = sample_networks_messages();
    for (request, response) in requests.iter().zip(&responses) {
        b = b.record(client::NETWORKS, &request.encode()).record(client::ANSWER, &response.encode());
    }
    let connecting = config::Response::GetStatus(config::StatusReport {
        status: wifiprov_proto::messages::Status::Success,
        state: Some(config::StationState::Connecting { attempts_remaining: Some(2) }),
    });
    let connected = config::Response::GetStatus(config::StatusReport {
        status: wifiprov_proto::messages::Status::Success,
        state: Some(config::StationState::Connected(config::ConnectedInfo {
            ip4_addr: "192.168.4.2".to_owned(),
            auth_mode: AuthMode::Wpa2Psk,
            ssid: b"home".to_vec(),
            bssid: vec![2, 0, 0, 0, 0, 1],
            channel: 6,
        })),
    });
    b = b
        .record(client::WAIT, &[30])
        .record(client::ANSWER, &connecting.encode())
        .record(client::ANSWER, &connecting.encode())
        .record(client::ANSWER, &connected.encode())
        .record(client::SCAN, &[1])
        .record(client::ANSWER, &scan::Response::Start { status: wifiprov_proto::messages::Status::Success }.encode())
        .record(
            client::ANSWER,
            &scan::Response::Status {
                status: wifiprov_proto::messages::Status::Success,
                finished: false,
                result_count: 0,
            }
            .encode(),
        )
        .record(client::ANSWER, &messages::answer_scan(&scan::Request::Status).encode())
        .record(client::ANSWER, &messages::answer_scan(&scan::Request::Result { start_index: 0, count: 1 }).encode())
        .record(client::CLOSE, &[]);
    c.add("client", "built-sec0-networks-wait-scan", b.finish());
    // A device stuck in one state: the client must give up by itself.
    let stuck = config::Response::GetStatus(config::StatusReport {
        status: wifiprov_proto::messages::Status::Success,
        state: Some(config::StationState::Connecting { attempts_remaining: None }),
    });
    let b = Builder::default()
        .record(client::ESTABLISH, &[0])
        .record(client::ANSWER, g.sec0.response.as_deref().unwrap_or_default())
        .record(client::WAIT, &[10])
        .record(client::FOREVER, &stuck.encode());
    c.add("client", "built-sec0-device-stuck-connecting", b.finish());
}

fn store_seeds(c: &mut Corpus) {
    let network = |ssid: &[u8], security, passphrase: Option<&str>| {
        SavedNetwork::new(
            Ssid::new(ssid.to_vec()).expect("valid SSID"),
            security,
            passphrase.map(|p| Passphrase::new(p.to_owned()).expect("valid passphrase")),
        )
        .expect("valid network")
    };
    let lists = vec![
        ("empty", NetworkList::new()),
        (
            "three",
            NetworkList::from_networks(
                4,
                vec![
                    network(b"home", NetworkSecurity::WpaPsk, Some("correct horse ~1"))
                        .with_last_result(Some(LastResult::new(ConnectOutcome::Connected, 1_700_000_000))),
                    network(&[0xff, 0, b'"'], NetworkSecurity::Wpa3Sae, Some("quote\" \\ ~ backslash"))
                        .with_visibility(Visibility::Hidden)
                        .with_bssid(Some(Bssid::new([2, 0, 0, 0, 0, 0x2a])))
                        .with_last_result(Some(LastResult::new(
                            ConnectOutcome::OtherFailure(DisconnectReason::ASSOC_FAIL),
                            7,
                        ))),
                    network(b"cafe", NetworkSecurity::Open, None)
                        .with_last_result(Some(LastResult::new(ConnectOutcome::NotFound, 8))),
                ],
            )
            .expect("valid list"),
        ),
        (
            "transition-full",
            NetworkList::from_networks(
                1,
                vec![
                    network(
                        b"office \xf0\x9f\x94\x92",
                        NetworkSecurity::Transition,
                        Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                    )
                    .with_last_result(Some(LastResult::new(ConnectOutcome::AuthFailed, u64::MAX))),
                ],
            )
            .expect("valid list"),
        ),
    ];
    let dir = std::env::temp_dir().join(format!("wifiprov-gen-corpus-{}", std::process::id()));
    let store = NetworkStore::open(&dir);
    for (name, list) in lists {
        store.save(&list).expect("the store saves into a temporary directory");
        let bytes = std::fs::read(store.path()).expect("the saved file reads back");
        let text = String::from_utf8(bytes.clone()).expect("the file is JSON");
        c.add("store_load", format!("saved-{name}"), bytes.clone());
        if name == "three" {
            // Damaged copies: each stops at a different check.
            let edits = [
                ("checksum", text.replacen("correct horse", "correct house", 1)),
                ("version", text.replacen("\"version\": 1", "\"version\": 2", 1)),
                ("unknown-field", text.replacen("\"capacity\"", "\"extra\": \"🔒\", \"capacity\"", 1)),
                ("passphrase-type", text.replacen("\"correct horse ~1\"", "[\"🔒\"]", 1)),
                ("passphrase-invalid", text.replacen("correct horse ~1", "correct horse 🔒", 1)),
                ("bad-security", text.replacen("\"wpa-psk\"", "\"🔒 wep\"", 1)),
                ("truncated", text[..text.len() / 2].to_owned()),
            ];
            for (edit, damaged) in edits {
                c.add("store_load", format!("damaged-{edit}"), damaged.into_bytes());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn custom_seeds(c: &mut Corpus) {
    let mut validate = vec![0u8, 11];
    validate.extend_from_slice(b"custom-data");
    validate.extend_from_slice(&[2, 7]);
    validate.extend_from_slice(b"/bin/sh");
    validate.extend_from_slice(&[2, b'-', b'c']);
    validate.extend_from_slice(&5_000_000_000u64.to_le_bytes());
    validate.extend_from_slice(&[0, 0x00, 0x10]);
    c.add("custom_endpoint", "validate-good", validate);
    c.add(
        "custom_endpoint",
        "validate-reserved",
        [&[0u8, 9][..], b"prov-scan", &[1, 1, b'x'], &[0; 8], &[1, 0]].concat(),
    );
    // stdout: a limit, then events (data of several kinds, interruptions, not-ready polls, a failure).
    c.add("custom_endpoint", "stdout-fits", vec![1, 0x10, 0, 3, 10, b'a', 0, 1, 7, 5, 0, b'h', b'e', b'l', b'l', b'o']);
    c.add("custom_endpoint", "stdout-too-long", vec![1, 4, 0, 6, 200, b'z', 3, 255, b'y']);
    c.add("custom_endpoint", "stdout-fails", vec![1, 0, 1, 4, 3, b'q', 2, 5, 9, b'r']);
    c.add("custom_endpoint", "stderr-long", vec![2, 6, 255, b'e', 6, 255, b'f', 6, 255, b'g', 0, 6, 255, b'h', 2]);
    c.add("custom_endpoint", "last-line", b"\x03first\nerror: token expired\r\n \n".to_vec());
    c.add("custom_endpoint", "last-line-long-invalid", [&[3u8][..], &[b'e'; 210], b"\xff\xfe\xe2\x82"].concat());
}

fn http(which: u8, head: &str) -> Vec<u8> {
    [&[which][..], head.as_bytes()].concat()
}

fn http_seeds(c: &mut Corpus) {
    use wifiprov_fuzz::http::{REQUEST, RESPONSE};
    let g = golden();
    for t in &g.transcripts {
        for (i, e) in t.exchanges.iter().enumerate().take(3) {
            if let Some(head) = &e.http_request {
                c.add("http_head", format!("request-esp_prov-{}-{i}", slug(&t.name)), http(REQUEST, head));
            }
            if let Some(cookie) = &e.set_cookie {
                let len = e.response.as_ref().map_or(0, Vec::len);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len}\r\nSet-Cookie: {cookie}\r\n\r\n"
                );
                c.add("http_head", format!("response-ok-cookie-{}", slug(&t.name)), http(RESPONSE, &head));
            }
        }
    }
    for (name, head) in [
        ("ok", "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 7\r\n\r\n"),
        (
            "not-found",
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 29\r\nConnection: close\r\n\r\n",
        ),
        ("http10", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n"),
        ("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ] {
        c.add("http_head", format!("response-built-{name}"), http(RESPONSE, head));
    }
    for (name, head) in [
        (
            "cookie",
            "POST /prov-config HTTP/1.1\r\nHost: 192.168.4.1\r\nContent-Length: 12\r\nCookie: session=4294967295\r\n\r\n",
        ),
        (
            "two-cookies",
            "POST /prov-session HTTP/1.1\r\nCookie: session=1\r\nCookie: session=2\r\nContent-Length: 1\r\n\r\n",
        ),
        ("get", "GET /proto-ver?x=1 HTTP/1.0\r\n\r\n"),
    ] {
        c.add("http_head", format!("request-built-{name}"), http(REQUEST, head));
    }
}

fn write(corpus: &Corpus, root: &Path, check: bool) -> Result<(), String> {
    for (target, seeds) in &corpus.0 {
        let dir = root.join(target);
        if check {
            let mut on_disk = BTreeMap::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
                let path = entry.map_err(|e| e.to_string())?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                on_disk.insert(name, std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
            }
            if on_disk != *seeds {
                return Err(format!("{} differs from what gen-corpus writes", dir.display()));
            }
            continue;
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"))?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let mut corpus = Corpus::default();
    sessions(&mut corpus);
    protocomm_seeds(&mut corpus);
    payloads(&mut corpus);
    versions(&mut corpus);
    client_seeds(&mut corpus);
    store_seeds(&mut corpus);
    custom_seeds(&mut corpus);
    http_seeds(&mut corpus);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    match write(&corpus, &root, check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-corpus: {e}");
            ExitCode::FAILURE
        }
    }
}
