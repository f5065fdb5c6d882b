//! Target `messages`: the payload decoders of the four provisioning endpoints (`wifiprov_proto::messages`), in
//! both directions, on the same bytes: the device's request decoder (what `wifiprovd/src/esp/` calls on every
//! decrypted request) and the client's response decoder. Input byte 0 % 4 picks the endpoint: `prov-config`,
//! `prov-scan`, `prov-ctrl`, `prov-networks`; the rest is the payload.
//!
//! Asserted for every message that decodes: it re-encodes to bytes that decode to an equal message, encoding
//! that again gives the same bytes (decoding canonicalises), the encoding is at most `2 * input + 16` bytes,
//! and a response answers exactly one kind of request.
//!
//! The handlers of [`crate::protocomm`] use [`answer_config`] and friends: decode with the same checks, then
//! answer as a device would.

use std::fmt::Debug;
use std::net::Ipv4Addr;

use wifiprov_proto::messages::config::{self, StationState, StatusReport};
use wifiprov_proto::messages::networks::{self, Connected, NetStatus};
use wifiprov_proto::messages::scan::{self, ScanEntry};
use wifiprov_proto::messages::{AuthMode, DecodeError, Status, ctrl};

/// A message with the two codec functions every endpoint type has.
pub trait Message: Sized + PartialEq + Debug {
    /// The type's decoder.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;
    /// The type's encoder.
    fn encode(&self) -> Vec<u8>;
}

macro_rules! message {
    ($($t:ty),*) => {$(
        impl Message for $t {
            fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                <$t>::decode(bytes)
            }
            fn encode(&self) -> Vec<u8> {
                <$t>::encode(self)
            }
        }
    )*};
}

message!(
    config::Request,
    config::Response,
    scan::Request,
    scan::Response,
    ctrl::Request,
    ctrl::Response,
    networks::Request,
    networks::Response
);

/// Decodes `data` as an `M`; when it decodes, checks the round trip and the size bound.
pub fn round_trip<M: Message>(data: &[u8]) -> Option<M> {
    let message = M::decode(data).ok()?;
    let encoded = message.encode();
    let again = M::decode(&encoded).unwrap_or_else(|e| panic!("re-encoded {message:?} does not decode: {e}"));
    assert_eq!(again, message, "decode(encode(m)) differs from m");
    assert_eq!(again.encode(), encoded, "encoding a decoded message again gives other bytes");
    assert!(encoded.len() <= 2 * data.len() + 16, "{} input bytes re-encoded to {} bytes", data.len(), encoded.len());
    Some(message)
}

/// Every kind of `prov-config` request.
pub fn config_requests() -> [config::Request; 3] {
    [config::Request::GetStatus, config::Request::SetConfig(config::SetConfig::default()), config::Request::ApplyConfig]
}

/// Every kind of `prov-scan` request.
pub fn scan_requests() -> [scan::Request; 3] {
    [
        scan::Request::Start { blocking: false, passive: false, group_channels: 0, period_ms: 0 },
        scan::Request::Status,
        scan::Request::Result { start_index: 0, count: 0 },
    ]
}

/// Every kind of `prov-networks` request.
pub fn networks_requests() -> [networks::Request; 5] {
    [
        networks::Request::List { scan: false },
        networks::Request::Add(networks::AddRequest::new(b"x".to_vec(), "")),
        networks::Request::Remove { ssid: Vec::new() },
        networks::Request::Move { ssid: Vec::new(), to: 0 },
        networks::Request::Connect { ssid: Vec::new() },
    ]
}

/// Target `messages`.
pub fn run(data: &[u8]) {
    let Some((endpoint, payload)) = data.split_first() else { return };
    match endpoint % 4 {
        CONFIG => run_config(payload),
        SCAN => run_scan(payload),
        CTRL => run_ctrl(payload),
        _ => run_networks(payload),
    }
}

/// The endpoint selectors of a `messages` input.
pub const CONFIG: u8 = 0;
/// See [`CONFIG`].
pub const SCAN: u8 = 1;
/// See [`CONFIG`].
pub const CTRL: u8 = 2;
/// See [`CONFIG`].
pub const NETWORKS: u8 = 3;

/// `prov-config` payloads.
pub fn run_config(data: &[u8]) {
    round_trip::<config::Request>(data);
    if let Some(response) = round_trip::<config::Response>(data) {
        let answered = config_requests().iter().filter(|r| response.answers(r)).count();
        assert_eq!(answered, 1, "{response:?} answers {answered} kinds of request");
        let _ = response.status();
    }
}

/// `prov-scan` payloads.
pub fn run_scan(data: &[u8]) {
    round_trip::<scan::Request>(data);
    if let Some(response) = round_trip::<scan::Response>(data) {
        let answered = scan_requests().iter().filter(|r| response.answers(r)).count();
        assert_eq!(answered, 1, "{response:?} answers {answered} kinds of request");
        let _ = response.status();
    }
}

/// `prov-ctrl` payloads.
pub fn run_ctrl(data: &[u8]) {
    round_trip::<ctrl::Request>(data);
    if let Some(response) = round_trip::<ctrl::Response>(data) {
        let answered = [ctrl::Request::Reset, ctrl::Request::Reprov].iter().filter(|r| response.answers(r)).count();
        assert_eq!(answered, 1, "{response:?} answers {answered} kinds of request");
    }
}

/// `prov-networks` payloads.
pub fn run_networks(data: &[u8]) {
    round_trip::<networks::Request>(data);
    if let Some(response) = round_trip::<networks::Response>(data) {
        let answered = networks_requests().iter().filter(|r| response.answers(r)).count();
        assert_eq!(answered, 1, "{response:?} answers {answered} kinds of request");
        let _ = response.status().is_success();
    }
}

/// A device's `prov-config` answer (for the protocomm target's handler).
pub fn answer_config(request: &config::Request) -> config::Response {
    match request {
        config::Request::GetStatus => config::Response::GetStatus(StatusReport {
            status: Status::Success,
            state: Some(StationState::Disconnected),
        }),
        config::Request::SetConfig(_) => config::Response::SetConfig(Status::Success),
        config::Request::ApplyConfig => config::Response::ApplyConfig(Status::Success),
    }
}

/// A device's `prov-scan` answer.
pub fn answer_scan(request: &scan::Request) -> scan::Response {
    match *request {
        scan::Request::Start { .. } => scan::Response::Start { status: Status::Success },
        scan::Request::Status => scan::Response::Status { status: Status::Success, finished: true, result_count: 1 },
        scan::Request::Result { count, .. } => scan::Response::Result {
            status: Status::Success,
            entries: (0..count.min(2))
                .map(|i| ScanEntry {
                    ssid: format!("ap{i}").into_bytes(),
                    channel: 6,
                    rssi: -40,
                    bssid: vec![2, 0, 0, 0, 0, i as u8],
                    auth: AuthMode::Wpa2Psk,
                })
                .collect(),
        },
    }
}

/// A device's `prov-ctrl` answer.
pub fn answer_ctrl(request: &ctrl::Request) -> ctrl::Response {
    match request {
        ctrl::Request::Reset => ctrl::Response::Reset { status: Status::Success },
        ctrl::Request::Reprov => ctrl::Response::Reprov { status: Status::InternalError },
    }
}

/// A device's `prov-networks` answer.
pub fn answer_networks(request: &networks::Request) -> networks::Response {
    let link = |ssid: &[u8]| Connected {
        ssid: ssid.to_vec(),
        bssid: vec![2, 0, 0, 0, 0, 1],
        channel: 11,
        ip4: Ipv4Addr::new(192, 168, 4, 2),
        rssi: -50,
    };
    match request {
        networks::Request::List { .. } => {
            networks::Response::List { status: NetStatus::Success, networks: Vec::new(), capacity: 8 }
        }
        networks::Request::Add(add) => networks::Response::Add {
            status: NetStatus::Success,
            priority: add.priority.unwrap_or(0),
            updated: false,
            failure: None,
            connected: add.connect.then(|| link(&add.ssid)),
        },
        networks::Request::Remove { .. } => networks::Response::Remove { status: NetStatus::NotFound },
        networks::Request::Move { to, .. } => networks::Response::Move { status: NetStatus::Success, from: to / 2 },
        networks::Request::Connect { ssid } => {
            networks::Response::Connect { status: NetStatus::Success, failure: None, connected: Some(link(ssid)) }
        }
    }
}
