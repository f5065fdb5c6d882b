//! Byte-exact, transcript, property and negative tests of the typed messages.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;

use super::config::{ConnectedInfo, FailReason, Passphrase, SetConfig, StationState, StatusReport};
use super::scan::ScanEntry;
use super::{AuthMode, DecodeError, Status, config, ctrl, scan};

/// Root of the golden vectors, `tests/vectors` in the repository. The transcripts live in `esp_prov-sessions/`
/// below it. The same place testkit reads (unit tests cannot use testkit, whose copy of this crate would be a
/// different one).
const VECTOR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors");

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("test hex is valid")
}

/// Asserts that `value` encodes to `hex` and that `hex` decodes to `value`.
fn assert_exact<T: PartialEq + Debug>(
    value: &T,
    hex: &str,
    encode: fn(&T) -> Vec<u8>,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
) {
    assert_eq!(hex::encode(encode(value)), hex, "encoding of {value:?}");
    assert_eq!(decode(&unhex(hex)).as_ref(), Ok(value), "decoding of {hex}");
}

fn set_config(ssid: &str, passphrase: &str) -> config::Request {
    config::Request::SetConfig(SetConfig {
        ssid: ssid.as_bytes().to_vec(),
        passphrase: Passphrase::from(passphrase),
        bssid: Vec::new(),
        channel: 0,
    })
}

fn report(status: Status, state: Option<StationState>) -> config::Response {
    config::Response::GetStatus(StatusReport { status, state })
}

// ---------------------------------------------------------------------------------------------------------
// 1. The fact sheet's bytes, both ways.

#[test]
fn config_requests_match_esp_prov() {
    let cases = [
        (config::Request::GetStatus, "5200"),
        (set_config("net0", "mypassword"), "080262120a046e657430120a6d7970617373776f7264"),
        (set_config("myssid", "mypass"), "080262100a066d797373696412066d7970617373"),
        (config::Request::ApplyConfig, "0804"),
    ];
    for (value, hex) in &cases {
        assert_exact(value, hex, config::Request::encode, config::Request::decode);
    }
}

#[test]
fn config_responses_match_device() {
    let connected = ConnectedInfo {
        ip4_addr: "192.168.1.42".to_owned(),
        auth_mode: AuthMode::Wpa2Psk,
        ssid: b"myssid".to_vec(),
        bssid: unhex("112233445566"),
        channel: 6,
    };
    let cases = [
        (report(Status::Success, Some(StationState::Connecting { attempts_remaining: None })), "08015a021001"),
        (report(Status::Success, Some(StationState::Failed(FailReason::AuthError))), "08015a0410035000"),
        (report(Status::Success, Some(StationState::Failed(FailReason::NetworkNotFound))), "08015a0410035001"),
        (
            report(Status::Success, Some(StationState::Connecting { attempts_remaining: Some(2) })),
            "08015a06100162020802",
        ),
        (
            report(Status::Success, Some(StationState::Connected(connected))),
            "08015a245a220a0c3139322e3136382e312e343210031a066d797373696422061122334455662806",
        ),
        (config::Response::SetConfig(Status::Success), "08036a00"),
        (config::Response::SetConfig(Status::InvalidArgument), "08036a020804"),
        (config::Response::ApplyConfig(Status::Success), "08057a00"),
        (config::Response::ApplyConfig(Status::InternalError), "08057a020805"),
        // Not from the fact sheet: derived from the schema. Disconnected carries no detail, and an ESP-IDF
        // device whose status query fails sends InternalError with the state left at its zero default.
        (report(Status::Success, Some(StationState::Disconnected)), "08015a021002"),
        (report(Status::InternalError, None), "08015a020805"),
    ];
    for (value, hex) in &cases {
        assert_exact(value, hex, config::Response::encode, config::Response::decode);
    }
}

#[test]
fn scan_requests_match_esp_prov() {
    let cases = [
        (
            scan::Request::Start { blocking: true, passive: false, group_channels: 5, period_ms: 120 },
            "5206080118052078",
        ),
        (scan::Request::Start { blocking: true, passive: false, group_channels: 0, period_ms: 120 }, "520408012078"),
        (scan::Request::Status, "0802"),
        (scan::Request::Result { start_index: 0, count: 6 }, "080472021006"),
    ];
    for (value, hex) in &cases {
        assert_exact(value, hex, scan::Request::encode, scan::Request::decode);
    }
}

#[test]
fn scan_responses_match_device() {
    let entry = ScanEntry { ssid: b"net0".to_vec(), channel: 1, rssi: -40, bssid: vec![0; 6], auth: AuthMode::Wpa2Psk };
    let cases = [
        (scan::Response::Start { status: Status::Success }, "08015a00"),
        (scan::Response::Status { status: Status::Success, finished: true, result_count: 6 }, "08036a0408011006"),
        (
            scan::Response::Result { status: Status::Success, entries: vec![entry] },
            "08057a1f0a1d0a046e657430100118d8ffffffffffffffff0122060000000000002803",
        ),
        // Derived from the schema: a failed start keeps its empty body.
        (scan::Response::Start { status: Status::InternalError }, "080110055a00"),
    ];
    for (value, hex) in &cases {
        assert_exact(value, hex, scan::Response::encode, scan::Response::decode);
    }
}

#[test]
fn ctrl_messages_match_both_sides() {
    assert_exact(&ctrl::Request::Reset, "0801", ctrl::Request::encode, ctrl::Request::decode);
    assert_exact(&ctrl::Request::Reprov, "0803", ctrl::Request::encode, ctrl::Request::decode);
    assert_exact(
        &ctrl::Response::Reset { status: Status::Success },
        "08026200",
        ctrl::Response::encode,
        ctrl::Response::decode,
    );
    assert_exact(
        &ctrl::Response::Reprov { status: Status::InternalError },
        "080410057200",
        ctrl::Response::encode,
        ctrl::Response::decode,
    );
    assert_exact(
        &ctrl::Response::Reprov { status: Status::Success },
        "08047200",
        ctrl::Response::encode,
        ctrl::Response::decode,
    );
}

/// The scan page of the transcripts, decoded field by field: an open network's `auth` is left out on the wire.
#[test]
fn transcript_scan_page_decodes_to_expected_entries() {
    let bytes = unhex(
        "08057a6d0a1f0a066d7973736964100618d6ffffffffffffffff012206a0b1c2d3e40128030a270a10436f6666656553686f70\
         2d4775657374100118bdffffffffffffffff012206a0b1c2d3e4020a210a084c61622d57504133100b18b9ffffffffffffffff\
         012206a0b1c2d3e4032806",
    );
    let bssid = |last: u8| vec![0xa0, 0xb1, 0xc2, 0xd3, 0xe4, last];
    let expected = scan::Response::Result {
        status: Status::Success,
        entries: vec![
            ScanEntry { ssid: b"myssid".to_vec(), channel: 6, rssi: -42, bssid: bssid(1), auth: AuthMode::Wpa2Psk },
            ScanEntry {
                ssid: b"CoffeeShop-Guest".to_vec(),
                channel: 1,
                rssi: -67,
                bssid: bssid(2),
                auth: AuthMode::Open,
            },
            ScanEntry { ssid: b"Lab-WPA3".to_vec(), channel: 11, rssi: -71, bssid: bssid(3), auth: AuthMode::Wpa3Psk },
        ],
    };
    assert_eq!(scan::Response::decode(&bytes), Ok(expected));
}

// ---------------------------------------------------------------------------------------------------------
// 2. Every data-endpoint plaintext in the golden transcripts.

type Roundtrip = fn(&[u8]) -> Result<Vec<u8>, DecodeError>;

fn roundtrips(endpoint: &str) -> Option<(Roundtrip, Roundtrip)> {
    match endpoint {
        "prov-config" => Some((
            |b| config::Request::decode(b).map(|m| m.encode()),
            |b| config::Response::decode(b).map(|m| m.encode()),
        )),
        "prov-scan" => {
            Some((|b| scan::Request::decode(b).map(|m| m.encode()), |b| scan::Response::decode(b).map(|m| m.encode())))
        }
        "prov-ctrl" => {
            Some((|b| ctrl::Request::decode(b).map(|m| m.encode()), |b| ctrl::Response::decode(b).map(|m| m.encode())))
        }
        _ => None,
    }
}

/// The runs of a transcript file: top-level `runs`, and the `runs` of each `variants.*` or `cases.*` entry.
fn runs_of(doc: &serde_json::Value) -> Vec<(String, &serde_json::Value)> {
    let mut lists = vec![(String::new(), doc.get("runs"))];
    for group in ["variants", "cases"] {
        for (key, entry) in doc.get(group).and_then(serde_json::Value::as_object).into_iter().flatten() {
            lists.push((format!("{group}.{key}/"), entry.get("runs")));
        }
    }
    let mut runs = Vec::new();
    for (prefix, list) in lists {
        for run in list.and_then(serde_json::Value::as_array).into_iter().flatten() {
            let name = run["name"].as_str().unwrap_or("?");
            runs.push((format!("{prefix}{name}"), run));
        }
    }
    runs
}

/// The plaintext of one side of an exchange. Security 0 carries it unencrypted in `request_hex` /
/// `response_hex`; the encrypted schemes record it in `*_plaintext_hex`. `Ok(None)` is a JSON null.
fn plaintext(exchange: &serde_json::Value, side: &str, plain_scheme: bool) -> Result<Option<Vec<u8>>, String> {
    let mut keys = vec![format!("{side}_plaintext_hex")];
    if plain_scheme {
        keys.push(format!("{side}_hex"));
    }
    for key in &keys {
        match exchange.get(key) {
            Some(serde_json::Value::String(text)) => {
                return hex::decode(text).map(Some).map_err(|e| format!("{key}: {e}"));
            }
            Some(serde_json::Value::Null) if side == "response" => return Ok(None),
            _ => {}
        }
    }
    Err(format!("no {side} plaintext under {keys:?}"))
}

#[test]
fn golden_transcripts_roundtrip_byte_exact() {
    let dir = Path::new(VECTOR_DIR).join("esp_prov-sessions");
    let mut per_endpoint: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for file in ["sec0", "sec1", "sec2", "sec2_edge_cases"] {
        let path = dir.join(format!("{file}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let doc: serde_json::Value = serde_json::from_str(&text).expect("transcript is JSON");
        let runs = runs_of(&doc);
        assert!(!runs.is_empty(), "{file}: no runs found");
        let mut checked_in_file = 0;
        for (run, body) in runs {
            let exchanges = body["exchanges"].as_array().expect("run has exchanges");
            for (i, exchange) in exchanges.iter().enumerate() {
                let endpoint = exchange["endpoint"].as_str().expect("exchange has an endpoint");
                let Some((request_roundtrip, response_roundtrip)) = roundtrips(endpoint) else {
                    continue;
                };
                let place = format!("{file} {run} #{i} {endpoint}");
                for (side, roundtrip) in [("request", request_roundtrip), ("response", response_roundtrip)] {
                    match plaintext(exchange, side, file == "sec0") {
                        Err(why) => failures.push(format!("{place}: {why}")),
                        Ok(None) => {}
                        Ok(Some(bytes)) => match roundtrip(&bytes) {
                            Ok(again) if again == bytes => {
                                *per_endpoint.entry(endpoint.to_owned()).or_default() += 1;
                                checked_in_file += 1;
                            }
                            Ok(again) => failures.push(format!(
                                "{place} {side}: {} re-encoded as {}",
                                hex::encode(&bytes),
                                hex::encode(&again)
                            )),
                            Err(e) => failures.push(format!("{place} {side}: {} failed: {e}", hex::encode(&bytes))),
                        },
                    }
                }
            }
        }
        assert!(checked_in_file > 0, "{file}: no data-endpoint plaintexts found");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    for endpoint in ["prov-config", "prov-scan", "prov-ctrl"] {
        assert!(per_endpoint.get(endpoint).copied().unwrap_or(0) > 0, "no {endpoint} messages in the transcripts");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 3. Properties.

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![3 => (0..=7i32).prop_map(Status::from), 1 => any::<i32>().prop_map(Status::from)]
}

fn auth_mode() -> impl Strategy<Value = AuthMode> {
    prop_oneof![3 => (0..=7i32).prop_map(AuthMode::from), 1 => any::<i32>().prop_map(AuthMode::from)]
}

fn fail_reason() -> impl Strategy<Value = FailReason> {
    prop_oneof![3 => (0..=1i32).prop_map(FailReason::from), 1 => any::<i32>().prop_map(FailReason::from)]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn config_request() -> impl Strategy<Value = config::Request> {
    prop_oneof![
        Just(config::Request::GetStatus),
        Just(config::Request::ApplyConfig),
        (bytes(40), bytes(70), bytes(8), any::<i32>()).prop_map(|(ssid, passphrase, bssid, channel)| {
            config::Request::SetConfig(SetConfig { ssid, passphrase: Passphrase::new(passphrase), bssid, channel })
        }),
    ]
}

fn station_state() -> impl Strategy<Value = StationState> {
    prop_oneof![
        ("\\PC{0,16}", auth_mode(), bytes(33), bytes(8), any::<i32>()).prop_map(
            |(ip4_addr, auth_mode, ssid, bssid, channel)| {
                StationState::Connected(ConnectedInfo { ip4_addr, auth_mode, ssid, bssid, channel })
            }
        ),
        proptest::option::of(any::<u32>())
            .prop_map(|attempts_remaining| StationState::Connecting { attempts_remaining }),
        Just(StationState::Disconnected),
        fail_reason().prop_map(StationState::Failed),
    ]
}

fn config_response() -> impl Strategy<Value = config::Response> {
    prop_oneof![
        (status(), proptest::option::of(station_state()))
            .prop_map(|(status, state)| { config::Response::GetStatus(StatusReport { status, state }) }),
        status().prop_map(config::Response::SetConfig),
        status().prop_map(config::Response::ApplyConfig),
    ]
}

fn scan_request() -> impl Strategy<Value = scan::Request> {
    prop_oneof![
        (any::<bool>(), any::<bool>(), any::<u32>(), any::<u32>()).prop_map(
            |(blocking, passive, group_channels, period_ms)| scan::Request::Start {
                blocking,
                passive,
                group_channels,
                period_ms
            }
        ),
        Just(scan::Request::Status),
        (any::<u32>(), any::<u32>()).prop_map(|(start_index, count)| scan::Request::Result { start_index, count }),
    ]
}

fn scan_entry() -> impl Strategy<Value = ScanEntry> {
    (bytes(33), any::<u32>(), any::<i32>(), bytes(8), auth_mode())
        .prop_map(|(ssid, channel, rssi, bssid, auth)| ScanEntry { ssid, channel, rssi, bssid, auth })
}

fn scan_response() -> impl Strategy<Value = scan::Response> {
    prop_oneof![
        status().prop_map(|status| scan::Response::Start { status }),
        (status(), any::<bool>(), any::<u32>())
            .prop_map(|(status, finished, result_count)| { scan::Response::Status { status, finished, result_count } }),
        (status(), vec(scan_entry(), 0..5)).prop_map(|(status, entries)| scan::Response::Result { status, entries }),
    ]
}

fn ctrl_request() -> impl Strategy<Value = ctrl::Request> {
    prop_oneof![Just(ctrl::Request::Reset), Just(ctrl::Request::Reprov)]
}

fn ctrl_response() -> impl Strategy<Value = ctrl::Response> {
    prop_oneof![
        status().prop_map(|status| ctrl::Response::Reset { status }),
        status().prop_map(|status| ctrl::Response::Reprov { status }),
    ]
}

/// Protobuf-shaped bytes: fields numbered where the envelopes and bodies have theirs (plus a few others),
/// with varint or length-delimited values nested a few levels deep. Reaches far more decode paths than
/// uniformly random bytes.
fn protobuf_like() -> impl Strategy<Value = Vec<u8>> {
    fn varint(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
    let field_number = prop_oneof![1u64..=5, 10u64..=15, 1u64..=20];
    let small_value = prop_oneof![0u64..=16, any::<u64>()];
    let leaf = (field_number.clone(), small_value).prop_map(|(number, value)| {
        let mut out = Vec::new();
        varint(number << 3, &mut out);
        varint(value, &mut out);
        out
    });
    let leaf = prop_oneof![leaf, bytes(12)];
    leaf.prop_recursive(3, 48, 6, move |inner| {
        (field_number.clone(), vec(inner, 0..6)).prop_map(|(number, children)| {
            let body = children.concat();
            let mut out = Vec::new();
            varint((number << 3) | 2, &mut out);
            varint(body.len() as u64, &mut out);
            out.extend_from_slice(&body);
            out
        })
    })
}

/// Encodings of arbitrary typed messages of every endpoint and direction.
fn valid_encoding() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        config_request().prop_map(|m| m.encode()),
        config_response().prop_map(|m| m.encode()),
        scan_request().prop_map(|m| m.encode()),
        scan_response().prop_map(|m| m.encode()),
        ctrl_request().prop_map(|m| m.encode()),
        ctrl_response().prop_map(|m| m.encode()),
    ]
}

/// Valid encodings with a few bytes overwritten, cut or inserted, and maybe extra fields appended (a later
/// field wins in protobuf, so this also swaps message types and oneof members).
fn mutated_encoding() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<proptest::sample::Index>(), any::<u8>(), 0..3u8);
    (valid_encoding(), vec(edit, 0..3), vec(protobuf_like(), 0..2)).prop_map(|(mut bytes, edits, extra)| {
        for (at, byte, kind) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        for field in extra {
            bytes.extend(field);
        }
        bytes
    })
}

/// Inputs for the decoders: random bytes, protobuf-shaped bytes, and valid or damaged real encodings.
fn envelope_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(64),
        vec(protobuf_like(), 0..4).prop_map(|fields| fields.concat()),
        valid_encoding(),
        mutated_encoding(),
    ]
}

/// Decodes with every decoder; whatever decodes must re-encode to bytes that decode to the same value.
fn check_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    macro_rules! canonical {
        ($ty:ty) => {
            if let Ok(value) = <$ty>::decode(bytes) {
                prop_assert_eq!(<$ty>::decode(&value.encode()), Ok(value));
            }
        };
    }
    canonical!(config::Request);
    canonical!(config::Response);
    canonical!(scan::Request);
    canonical!(scan::Response);
    canonical!(ctrl::Request);
    canonical!(ctrl::Response);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_decode_without_panic_and_canonically(bytes in envelope_like()) {
        check_canonical(&bytes)?;
    }

    #[test]
    fn config_request_roundtrips(value in config_request()) {
        prop_assert_eq!(config::Request::decode(&value.encode()), Ok(value));
    }

    #[test]
    fn config_response_roundtrips(value in config_response()) {
        prop_assert_eq!(config::Response::decode(&value.encode()), Ok(value));
    }

    #[test]
    fn scan_request_roundtrips(value in scan_request()) {
        prop_assert_eq!(scan::Request::decode(&value.encode()), Ok(value));
    }

    #[test]
    fn scan_response_roundtrips(value in scan_response()) {
        prop_assert_eq!(scan::Response::decode(&value.encode()), Ok(value));
    }

    #[test]
    fn ctrl_request_roundtrips(value in ctrl_request()) {
        prop_assert_eq!(ctrl::Request::decode(&value.encode()), Ok(value));
    }

    #[test]
    fn ctrl_response_roundtrips(value in ctrl_response()) {
        prop_assert_eq!(ctrl::Response::decode(&value.encode()), Ok(value));
    }

    #[test]
    fn responses_answer_their_own_requests_only(
        config_req in config_request(), config_resp in config_response(),
        scan_req in scan_request(), scan_resp in scan_response(),
        ctrl_req in ctrl_request(), ctrl_resp in ctrl_response(),
    ) {
        // The response type number is the request's plus one, so `answers` must agree with the raw types.
        // Every message type here fits one varint byte, and a missing field 1 means type 0.
        let msg = |bytes: &[u8]| -> u8 {
            if bytes.first() == Some(&0x08) { bytes.get(1).copied().unwrap_or(0) } else { 0 }
        };
        prop_assert_eq!(config_resp.answers(&config_req), msg(&config_resp.encode()) == msg(&config_req.encode()) + 1);
        prop_assert_eq!(scan_resp.answers(&scan_req), msg(&scan_resp.encode()) == msg(&scan_req.encode()) + 1);
        prop_assert_eq!(ctrl_resp.answers(&ctrl_req), msg(&ctrl_resp.encode()) == msg(&ctrl_req.encode()) + 1);
    }
}

// ---------------------------------------------------------------------------------------------------------
// 4. What must be rejected.

#[test]
fn data_commands_without_body_are_rejected() {
    assert_eq!(config::Request::decode(&unhex("0802")), Err(DecodeError::MissingPayload { msg: 2 }));
    assert_eq!(scan::Request::decode(&unhex("0804")), Err(DecodeError::MissingPayload { msg: 4 }));
    // ScanStart's message type is 0, so no bytes at all is a ScanStart without its body.
    assert_eq!(scan::Request::decode(&[]), Err(DecodeError::MissingPayload { msg: 0 }));
}

#[test]
fn data_commands_with_a_foreign_body_are_rejected() {
    // SetConfig carrying cmd_get_status (field 10).
    assert_eq!(config::Request::decode(&unhex("08025200")), Err(DecodeError::PayloadMismatch { msg: 2, payload: 10 }));
    // SetConfig carrying resp_set_config (field 13).
    assert_eq!(config::Request::decode(&unhex("08026a00")), Err(DecodeError::PayloadMismatch { msg: 2, payload: 13 }));
    // ScanStart (msg 0) carrying cmd_scan_result (field 14).
    assert_eq!(scan::Request::decode(&unhex("7200")), Err(DecodeError::PayloadMismatch { msg: 0, payload: 14 }));
    // ScanResult carrying cmd_scan_start (field 10).
    assert_eq!(scan::Request::decode(&unhex("08045200")), Err(DecodeError::PayloadMismatch { msg: 4, payload: 10 }));
}

#[test]
fn unknown_message_types_are_rejected() {
    assert_eq!(config::Request::decode(&unhex("0806")), Err(DecodeError::UnknownMsgType(6)));
    assert_eq!(config::Response::decode(&unhex("0809")), Err(DecodeError::UnknownMsgType(9)));
    assert_eq!(scan::Request::decode(&unhex("0806")), Err(DecodeError::UnknownMsgType(6)));
    assert_eq!(scan::Response::decode(&unhex("087f")), Err(DecodeError::UnknownMsgType(127)));
    assert_eq!(ctrl::Request::decode(&unhex("0805")), Err(DecodeError::UnknownMsgType(5)));
    assert_eq!(ctrl::Response::decode(&unhex("0805")), Err(DecodeError::UnknownMsgType(5)));
    // The reserved ctrl type 0, sent explicitly or by omission.
    assert_eq!(ctrl::Request::decode(&[]), Err(DecodeError::UnknownMsgType(0)));
    assert_eq!(ctrl::Response::decode(&unhex("0800")), Err(DecodeError::UnknownMsgType(0)));
    // -1, as a ten-byte varint.
    assert_eq!(config::Request::decode(&unhex("08ffffffffffffffffff01")), Err(DecodeError::UnknownMsgType(-1)));
}

#[test]
fn messages_of_the_other_direction_are_rejected() {
    assert_eq!(config::Request::decode(&unhex("08036a00")), Err(DecodeError::UnexpectedMsgType(3)));
    assert_eq!(config::Response::decode(&unhex("5200")), Err(DecodeError::UnexpectedMsgType(0)));
    assert_eq!(scan::Request::decode(&unhex("08015a00")), Err(DecodeError::UnexpectedMsgType(1)));
    assert_eq!(scan::Response::decode(&unhex("0802")), Err(DecodeError::UnexpectedMsgType(2)));
    assert_eq!(ctrl::Request::decode(&unhex("08026200")), Err(DecodeError::UnexpectedMsgType(2)));
    assert_eq!(ctrl::Response::decode(&unhex("0801")), Err(DecodeError::UnexpectedMsgType(1)));
}

#[test]
fn garbage_is_rejected() {
    let garbage = ["ff", "08", "0a05", "5205", "08ffffffffffffffffffff01", "0f", "620a0a", "deadbeef"];
    for hex in garbage {
        let bytes = unhex(hex);
        assert!(matches!(config::Request::decode(&bytes), Err(DecodeError::Protobuf(_))), "config request {hex}");
        assert!(matches!(config::Response::decode(&bytes), Err(DecodeError::Protobuf(_))), "config response {hex}");
        assert!(matches!(scan::Request::decode(&bytes), Err(DecodeError::Protobuf(_))), "scan request {hex}");
        assert!(matches!(scan::Response::decode(&bytes), Err(DecodeError::Protobuf(_))), "scan response {hex}");
        assert!(matches!(ctrl::Request::decode(&bytes), Err(DecodeError::Protobuf(_))), "ctrl request {hex}");
        assert!(matches!(ctrl::Response::decode(&bytes), Err(DecodeError::Protobuf(_))), "ctrl response {hex}");
    }
    // An IP address that is not UTF-8 breaks the proto3 `string` rule.
    assert!(matches!(config::Response::decode(&unhex("08015a045a020a01ff")), Err(DecodeError::Protobuf(_))));
}

#[test]
fn responses_need_the_bodies_that_carry_data() {
    for (hex, msg) in [("0801", 1), ("0803", 3), ("0805", 5)] {
        assert_eq!(config::Response::decode(&unhex(hex)), Err(DecodeError::MissingPayload { msg }));
    }
    assert_eq!(scan::Response::decode(&unhex("0803")), Err(DecodeError::MissingPayload { msg: 3 }));
    assert_eq!(scan::Response::decode(&unhex("08051005")), Err(DecodeError::MissingPayload { msg: 5 }));
    // A foreign body is never accepted in a response, even where the body is empty.
    assert_eq!(config::Response::decode(&unhex("08037a00")), Err(DecodeError::PayloadMismatch { msg: 3, payload: 15 }));
    assert_eq!(scan::Response::decode(&unhex("08016a00")), Err(DecodeError::PayloadMismatch { msg: 1, payload: 13 }));
    assert_eq!(ctrl::Response::decode(&unhex("08027200")), Err(DecodeError::PayloadMismatch { msg: 2, payload: 14 }));
}

#[test]
fn inconsistent_station_states_are_rejected() {
    let cases = [
        ("08015a021003", 3, None),         // ConnectionFailed without a reason
        ("08015a0410015000", 1, Some(10)), // Connecting with a failure reason
        ("08015a0410025a00", 2, Some(11)), // Disconnected with connection details
        ("08015a0462020800", 0, Some(12)), // Connected with attempt_failed
        ("08015a021004", 4, None),         // a state number the protocol does not have
        ("08015a0b10ffffffffffffffffff01", -1, None),
    ];
    for (hex, sta_state, detail) in cases {
        assert_eq!(
            config::Response::decode(&unhex(hex)),
            Err(DecodeError::InvalidStationState { sta_state, detail }),
            "{hex}"
        );
    }
}

#[test]
fn error_messages_are_lowercase_without_period() {
    let protobuf = match config::Request::decode(&unhex("ff")) {
        Err(e) => e,
        Ok(v) => panic!("decoded garbage as {v:?}"),
    };
    assert!(std::error::Error::source(&protobuf).is_some(), "prost error is kept as the source");
    let errors = [
        protobuf,
        DecodeError::UnknownMsgType(9),
        DecodeError::UnexpectedMsgType(1),
        DecodeError::MissingPayload { msg: 2 },
        DecodeError::PayloadMismatch { msg: 2, payload: 10 },
        DecodeError::InvalidStationState { sta_state: 3, detail: None },
        DecodeError::InvalidStationState { sta_state: 1, detail: Some(10) },
    ];
    for error in errors {
        let text = error.to_string();
        assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
        assert!(!text.ends_with('.'), "{text}");
    }
    assert_eq!(
        DecodeError::InvalidStationState { sta_state: 1, detail: Some(10) }.to_string(),
        "station state 1 does not fit its detail (fail_reason)"
    );
}

// ---------------------------------------------------------------------------------------------------------
// What is accepted on purpose, and other behaviour worth pinning.

#[test]
fn bodiless_commands_are_accepted_with_any_body_or_none() {
    let get_status = ["", "0800", "5200", "5a00", "08007200"];
    for hex in get_status {
        assert_eq!(config::Request::decode(&unhex(hex)), Ok(config::Request::GetStatus), "{hex}");
    }
    // ApplyConfig with its own empty body, with a SetConfig body (ignored, as on the device), and bare.
    for hex in ["0804", "08047200", "080462100a066d797373696412066d7970617373"] {
        assert_eq!(config::Request::decode(&unhex(hex)), Ok(config::Request::ApplyConfig), "{hex}");
    }
    // ScanStatus with its body, with a stray status, and with another body.
    for hex in ["0802", "08026200", "080210056200", "08025206080118052078"] {
        assert_eq!(scan::Request::decode(&unhex(hex)), Ok(scan::Request::Status), "{hex}");
    }
    // Ctrl commands with their own body (fields 11 and 13), with the other's, and with a stray status.
    for (hex, expected) in [
        ("08015a00", ctrl::Request::Reset),
        ("08016a00", ctrl::Request::Reset),
        ("080310056a00", ctrl::Request::Reprov),
    ] {
        assert_eq!(ctrl::Request::decode(&unhex(hex)), Ok(expected), "{hex}");
    }
    // Unknown fields are skipped.
    assert_eq!(config::Request::decode(&unhex("0804a00601")), Ok(config::Request::ApplyConfig));
    // Empty bodies of responses may be left out.
    assert_eq!(scan::Response::decode(&unhex("08011005")), Ok(scan::Response::Start { status: Status::InternalError }));
    assert_eq!(ctrl::Response::decode(&unhex("0804")), Ok(ctrl::Response::Reprov { status: Status::Success }));
}

#[test]
fn unnamed_enum_numbers_are_kept() {
    // An ESP-IDF device copies its driver's authentication mode, which may exceed 7.
    let entry = ScanEntry { ssid: b"owe".to_vec(), channel: 6, rssi: -1, bssid: vec![1; 6], auth: AuthMode::Other(9) };
    let response = scan::Response::Result { status: Status::Success, entries: vec![entry] };
    assert_eq!(scan::Response::decode(&response.encode()), Ok(response));
    assert_eq!(AuthMode::from(9), AuthMode::Other(9));
    assert_eq!(i32::from(AuthMode::Wpa2Wpa3Psk), 7);

    let reprov = ctrl::Response::Reprov { status: Status::Other(42) };
    assert_eq!(hex::encode(reprov.encode()), "0804102a7200");
    assert_eq!(ctrl::Response::decode(&unhex("0804102a7200")), Ok(reprov));
    assert_eq!(Status::from(7), Status::InvalidSession);
    assert!(!Status::Other(0).is_success() && Status::from(0).is_success());

    let failed = report(Status::Success, Some(StationState::Failed(FailReason::Other(5))));
    assert_eq!(hex::encode(failed.encode()), "08015a0410035005");
    assert_eq!(config::Response::decode(&unhex("08015a0410035005")), Ok(failed));
}

#[test]
fn passphrase_is_redacted_in_debug_output() {
    let request = set_config("net0", "mypassword");
    let text = format!("{request:?} {request:#?}");
    assert!(!text.contains("mypassword"), "{text}");
    assert!(!text.contains("109, 121"), "passphrase bytes leaked: {text}"); // b"my"
    assert!(text.contains("<redacted>"), "{text}");
    assert_eq!(format!("{:?}", Passphrase::from("secret")), "<redacted>");

    let passphrase = Passphrase::new(b"secret".to_vec());
    assert_eq!(passphrase.as_bytes(), b"secret");
    assert_eq!(passphrase.len(), 6);
    assert!(!passphrase.is_empty() && Passphrase::default().is_empty());
}

#[test]
fn passphrase_survives_decode_intact() {
    let decoded = config::Request::decode(&unhex("080262120a046e657430120a6d7970617373776f7264"));
    match decoded {
        Ok(config::Request::SetConfig(config)) => {
            assert_eq!(config.ssid, b"net0");
            assert_eq!(config.passphrase.as_bytes(), b"mypassword");
            assert!(config.bssid.is_empty());
            assert_eq!(config.channel, 0);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn status_accessors_and_answers() {
    assert_eq!(config::Response::SetConfig(Status::InvalidArgument).status(), Status::InvalidArgument);
    assert_eq!(report(Status::InternalError, None).status(), Status::InternalError);
    assert_eq!(
        scan::Response::Status { status: Status::InvalidSession, finished: false, result_count: 0 }.status(),
        Status::InvalidSession
    );
    assert_eq!(ctrl::Response::Reset { status: Status::CryptoError }.status(), Status::CryptoError);

    assert!(config::Response::ApplyConfig(Status::Success).answers(&config::Request::ApplyConfig));
    assert!(!config::Response::ApplyConfig(Status::Success).answers(&config::Request::GetStatus));
    assert!(scan::Response::Start { status: Status::Success }.answers(&scan::Request::Start {
        blocking: false,
        passive: false,
        group_channels: 0,
        period_ms: 0
    }));
    assert!(!ctrl::Response::Reset { status: Status::Success }.answers(&ctrl::Request::Reprov));
}
