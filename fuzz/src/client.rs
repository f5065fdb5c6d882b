//! Target `client`: `wifiprov_client::Client` against a device that answers with the fuzzer's bytes. Every
//! answer the client decodes goes through here: `proto-ver`, the handshake answers of security 0, 1 and 2,
//! and the `prov-config`, `prov-scan`, `prov-ctrl` and `prov-networks` responses, decrypted first when a
//! session is encrypted.
//!
//! Input: records. A record with bit 7 of `op` set is an answer of the device (bit 0 set: it closes the
//! connection instead; bit 1 set: it gives that answer to every request from then on, a device stuck in one
//! state); any other record is a client call, `op % 12`:
//!
//! | op | call | body |
//! |---|---|---|
//! | 0 | `version` | - |
//! | 1 | `establish` | byte 0 % 3: security 0, 1 (the esp_prov profile's PoP and client key), 2 (byte 1: the profile whose client secret `a` is drawn) |
//! | 2 | `set_config` | byte 0: SSID length, SSID, passphrase |
//! | 3 | `apply_config` | - |
//! | 4 | `status` | - |
//! | 5 | `wait_for_connection` | byte 0: deadline in seconds |
//! | 6 | `provision` | as `set_config` |
//! | 7 | `scan` | byte 0: page size |
//! | 8 | `reset` | - |
//! | 9 | `reprov` | - |
//! | 10 | `networks` | a `prov-networks` request (anything else: List) |
//! | 11 | `call("custom-data")` | the request |
//!
//! A call takes the answer records that follow it, one per request it sends; when the next record is a call
//! (or there is none) the device closes the connection. Time is tokio's paused clock, so polling loops run
//! instantly, and a loop that never ends (a device stuck in one state) is caught by libFuzzer's timeout.
//!
//! Asserted: a version reply that parses prints and parses back equal; a status report, a scan page or a
//! networks answer the client returns re-encodes and decodes to itself, and the networks answer answers the
//! request; every request the client sends in clear (security 0) decodes with the device's decoder of its
//! endpoint, and a `proto-ver` request is `---`; error chains display.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use wifiprov_client::{Client, PollPolicy, Transport, TransportError};
use wifiprov_proto::ErrorChain;
use wifiprov_proto::endpoint::names;
use wifiprov_proto::messages::{config, ctrl, networks, scan};
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{ClientSecurity, SecurityVersion};
use wifiprov_proto::version::VersionInfo;

use crate::exec::with_paused_runtime;
use crate::golden::golden;
use crate::input::Input;
use crate::messages::round_trip;
use crate::rng::FuzzRng;

/// An answer record.
pub const ANSWER: u8 = 0x80;
/// A record that makes the device close the connection.
pub const CLOSE: u8 = 0x81;
/// An answer the device then gives to every request, for good: a device stuck in one state.
pub const FOREVER: u8 = 0x82;
/// Call ops.
pub const VERSION: u8 = 0;
/// See the module table.
pub const ESTABLISH: u8 = 1;
/// See the module table.
pub const SET_CONFIG: u8 = 2;
/// See the module table.
pub const APPLY_CONFIG: u8 = 3;
/// See the module table.
pub const STATUS: u8 = 4;
/// See the module table.
pub const WAIT: u8 = 5;
/// See the module table.
pub const PROVISION: u8 = 6;
/// See the module table.
pub const SCAN: u8 = 7;
/// See the module table.
pub const RESET: u8 = 8;
/// See the module table.
pub const REPROV: u8 = 9;
/// See the module table.
pub const NETWORKS: u8 = 10;
/// See the module table.
pub const CUSTOM: u8 = 11;
const CALLS: u8 = 12;

const MAX_CALLS: usize = 32;
/// Security 2 handshakes per input (the client's SRP half costs milliseconds).
const MAX_SEC2: usize = 1;

/// The fake device: the input's records, and what the client sent.
struct Device {
    records: VecDeque<(u8, Vec<u8>)>,
    /// Set by a [`FOREVER`] record.
    stuck: Option<Vec<u8>>,
    /// Whether the session is encrypted, so requests cannot be checked in clear.
    encrypted: bool,
}

impl Transport for Device {
    fn request(&mut self, endpoint: &str, body: &[u8]) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send {
        if !self.encrypted {
            check_request(endpoint, body);
        }
        let closed = || TransportError::ConnectionClosed { endpoint: endpoint.to_owned() };
        let answer = match (&self.stuck, self.records.front()) {
            (Some(stuck), _) => Ok(stuck.clone()),
            (None, Some((op, _))) if op & ANSWER != 0 => {
                let (op, body) = self.records.pop_front().expect("a record is there");
                match op & 3 {
                    0 => Ok(body),
                    2 => {
                        self.stuck = Some(body.clone());
                        Ok(body)
                    }
                    _ => Err(closed()),
                }
            }
            _ => Err(closed()),
        };
        std::future::ready(answer)
    }
}

/// A request the client sends in clear decodes as one of its endpoint's requests.
fn check_request(endpoint: &str, body: &[u8]) {
    let ok = match endpoint {
        names::PROTO_VER => body == b"---",
        names::PROV_CONFIG => config::Request::decode(body).is_ok(),
        names::PROV_SCAN => scan::Request::decode(body).is_ok(),
        names::PROV_CTRL => ctrl::Request::decode(body).is_ok(),
        names::PROV_NETWORKS => networks::Request::decode(body).is_ok(),
        _ => true,
    };
    assert!(ok, "the client sent {endpoint} a request its device cannot decode: {}", hex::encode(body));
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut records = VecDeque::new();
    while let Some((op, body)) = input.record() {
        records.push_back((op, body.to_vec()));
    }
    let device = Device { records, stuck: None, encrypted: false };
    with_paused_runtime(|rt| rt.block_on(drive(Client::new(device))));
}

fn credentials(body: &[u8]) -> (&[u8], &[u8]) {
    let mut input = Input::new(body);
    let len = usize::from(input.u8());
    let ssid = input.bytes(len);
    (ssid, input.rest())
}

async fn drive(mut client: Client<Device>) {
    let mut sec2 = 0;
    for _ in 0..MAX_CALLS {
        let Some((op, body)) = client.transport_mut().records.pop_front() else { return };
        if op & ANSWER != 0 {
            // An answer nobody asked for.
            continue;
        }
        let result = match op % CALLS {
            VERSION => client.version().await.map(|info| {
                let again = VersionInfo::parse(info.to_cjson().as_bytes()).expect("a printed version parses");
                assert_eq!(again, info, "the version reply does not survive printing");
            }),
            ESTABLISH => {
                let g = golden();
                let mut rng = FuzzRng::new(0, None);
                let security = match body.first().map_or(0, |b| b % 3) {
                    0 => ClientSecurity::sec0(),
                    1 => {
                        let p = &g.sec1[1];
                        rng.queue(&p.client_draws);
                        ClientSecurity::sec1(ProofOfPossession::new(p.pop.clone()))
                    }
                    _ => {
                        sec2 += 1;
                        if sec2 > MAX_SEC2 {
                            continue;
                        }
                        let p = &g.sec2[usize::from(body.get(1).copied().unwrap_or(0)) % g.sec2.len()];
                        rng.queue(&p.client_draws);
                        ClientSecurity::sec2("wifiprov", Password::new(b"abcd1234".to_vec()), p.patch)
                    }
                };
                let encrypted = security.version() != SecurityVersion::Sec0;
                let result = client.establish(security, &mut rng).await;
                if result.is_ok() {
                    client.transport_mut().encrypted = encrypted;
                }
                result
            }
            SET_CONFIG => {
                let (ssid, passphrase) = credentials(&body);
                client.set_config(ssid, passphrase).await
            }
            APPLY_CONFIG => client.apply_config().await,
            STATUS => client.status().await.map(|report| {
                let response = config::Response::GetStatus(report);
                let again = round_trip::<config::Response>(&response.encode()).expect("a status report re-encodes");
                assert_eq!(again, response);
            }),
            WAIT => {
                let policy = policy(&body);
                client.wait_for_connection(policy, |_| {}).await.map(drop)
            }
            PROVISION => {
                let (ssid, passphrase) = credentials(&body);
                client.provision(ssid, passphrase, policy(&[]), |_| {}).await.map(drop)
            }
            SCAN => client.scan(u32::from(body.first().copied().unwrap_or(0))).await.map(|entries| {
                let page = scan::Response::Result { status: wifiprov_proto::messages::Status::Success, entries };
                let again = round_trip::<scan::Response>(&page.encode()).expect("scan entries re-encode");
                assert_eq!(again, page);
            }),
            RESET => client.reset().await,
            REPROV => client.reprov().await,
            NETWORKS => {
                let request = networks::Request::decode(&body).unwrap_or(networks::Request::List { scan: false });
                client.networks(&request).await.map(|response| {
                    assert!(response.answers(&request), "{response:?} returned for {request:?}");
                    let again =
                        round_trip::<networks::Response>(&response.encode()).expect("a networks answer re-encodes");
                    assert_eq!(again, response);
                })
            }
            _ => client.call("custom-data", &body).await.map(drop),
        };
        if let Err(e) = result {
            let _ = ErrorChain(&e).to_string();
        }
    }
}

fn policy(body: &[u8]) -> PollPolicy {
    PollPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_secs(1),
        deadline: Duration::from_secs(u64::from(body.first().copied().unwrap_or(5) % 64)),
    }
}
