//! Version 1 of the file format: the list as JSON with a SHA-256 of its canonical form. Pure functions, no I/O.
//!
//! Decoding goes through [`serde_json::Value`] and checks every field by hand, so that error messages are ours
//! and never quote file content (a corrupt file could put a passphrase anywhere), and so that every string of
//! the parsed document, passphrases included, is zeroized when the document is dropped.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use wifiprov_backend::{Bssid, DisconnectReason, Passphrase, Ssid};
use wifiprov_manager::networks::{ConnectOutcome, LastResult, NetworkList, NetworkSecurity, SavedNetwork, Visibility};
use zeroize::{Zeroize, Zeroizing};

use crate::error::CorruptReason;

/// The format version this build reads and writes.
pub(crate) const VERSION: u64 = 1;

/// The largest file `load` reads. A list this build writes takes well under 1 KiB per network.
pub(crate) const MAX_FILE_LEN: u64 = 1 << 20;

/// Room to reserve per network in output buffers, so they never reallocate (a reallocation would leave an
/// unzeroized copy of the passphrases behind). A pretty-printed network takes at most about 400 bytes.
const BYTES_PER_NETWORK: usize = 640;

#[derive(Serialize)]
struct DocumentOut<'a> {
    version: u64,
    capacity: usize,
    networks: Vec<NetworkOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

#[derive(Serialize)]
struct NetworkOut<'a> {
    ssid: String,
    security: &'static str,
    passphrase: Option<&'a str>,
    visibility: &'static str,
    bssid: Option<String>,
    last_result: Option<LastResultOut>,
}

#[derive(Serialize)]
struct LastResultOut {
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<u16>,
    at_unix_secs: u64,
}

impl<'a> NetworkOut<'a> {
    fn new(network: &'a SavedNetwork) -> Self {
        Self {
            ssid: hex::encode(network.ssid().as_bytes()),
            security: network.security().name(),
            // The store is one of the two places allowed to read the secret: it has to reach the disk as is,
            // for NetworkManager or wpa_supplicant to use later.
            passphrase: network.passphrase().map(Passphrase::expose_secret),
            visibility: network.visibility().name(),
            bssid: network.bssid().map(|bssid| bssid.to_string()),
            last_result: network.last_result().map(|result| LastResultOut {
                outcome: result.outcome.name(),
                reason: match result.outcome {
                    ConnectOutcome::OtherFailure(reason) => Some(reason.code()),
                    _ => None,
                },
                at_unix_secs: result.at_unix_secs,
            }),
        }
    }
}

fn document(list: &NetworkList) -> DocumentOut<'_> {
    DocumentOut {
        version: VERSION,
        capacity: list.capacity(),
        networks: list.iter().map(NetworkOut::new).collect(),
        sha256: None,
    }
}

fn buffer_for(list: &NetworkList) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(Vec::with_capacity(256 + BYTES_PER_NETWORK * list.len()))
}

/// The hex SHA-256 of the canonical form: compact JSON of the document without its `sha256` field.
fn checksum(list: &NetworkList) -> Result<String, serde_json::Error> {
    let mut canonical = buffer_for(list);
    serde_json::to_writer(&mut *canonical, &document(list))?;
    Ok(hex::encode(Sha256::digest(canonical.as_slice())))
}

/// The file's bytes: pretty-printed JSON ending in a newline.
pub(crate) fn encode(list: &NetworkList) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
    let mut doc = document(list);
    doc.sha256 = Some(checksum(list)?);
    let mut out = buffer_for(list);
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.push(b'\n');
    Ok(out)
}

/// A parsed document whose strings are all zeroized when it is dropped.
struct Scrubbed(Value);

impl Drop for Scrubbed {
    fn drop(&mut self) {
        scrub(&mut self.0);
    }
}

fn scrub(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(fields) => fields.values_mut().for_each(scrub),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> CorruptReason {
    CorruptReason::Invalid { field: field.into(), problem: problem.into() }
}

/// The fields of an object, after checking that it has no others. Key names are not quoted in errors.
fn object<'v>(value: &'v mut Value, path: &str, known: &[&str]) -> Result<&'v mut Map<String, Value>, CorruptReason> {
    let fields = value.as_object_mut().ok_or_else(|| invalid(path, "is not an object"))?;
    if fields.keys().any(|key| !known.contains(&key.as_str())) {
        return Err(invalid(path, "has an unknown field"));
    }
    Ok(fields)
}

/// A required field.
fn field<'v>(fields: &'v mut Map<String, Value>, path: &str, name: &str) -> Result<&'v mut Value, CorruptReason> {
    fields.get_mut(name).ok_or_else(|| invalid(format!("{path}{name}"), "is missing"))
}

/// A required field that may be `null`.
fn optional<'v>(
    fields: &'v mut Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<Option<&'v mut Value>, CorruptReason> {
    let value = field(fields, path, name)?;
    Ok(if value.is_null() { None } else { Some(value) })
}

fn text(value: &Value, path: impl FnOnce() -> String) -> Result<&str, CorruptReason> {
    value.as_str().ok_or_else(|| invalid(path(), "is not a string"))
}

fn number(value: &Value, path: impl FnOnce() -> String) -> Result<u64, CorruptReason> {
    value.as_u64().ok_or_else(|| invalid(path(), "is not an unsigned integer"))
}

/// Parses and checks a file's bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<NetworkList, CorruptReason> {
    let mut doc = Scrubbed(serde_json::from_slice(bytes).map_err(CorruptReason::Syntax)?);
    let top = object(&mut doc.0, "document", &["version", "capacity", "networks", "sha256"])?;

    // The version comes first: a newer file may differ in every other field.
    let version = number(field(top, "", "version")?, || "version".to_owned())?;
    if version != VERSION {
        return Err(CorruptReason::UnsupportedVersion { version, supported: VERSION });
    }
    let capacity = number(field(top, "", "capacity")?, || "capacity".to_owned())?;
    let capacity = usize::try_from(capacity).map_err(|_| invalid("capacity", "is too large"))?;
    let sha256 = text(field(top, "", "sha256")?, || "sha256".to_owned())?.to_owned();
    let entries = field(top, "", "networks")?.as_array_mut().ok_or_else(|| invalid("networks", "is not an array"))?;
    let networks =
        entries.iter_mut().enumerate().map(|(index, entry)| network(index, entry)).collect::<Result<Vec<_>, _>>()?;
    let list = NetworkList::from_networks(capacity, networks)
        .map_err(|source| CorruptReason::Inconsistent { field: "networks".to_owned(), source })?;

    // The checksum covers the canonical form of what was decoded, so it also catches a change that happens to
    // leave valid values behind.
    let expected = checksum(&list).map_err(CorruptReason::Syntax)?;
    if !sha256.eq_ignore_ascii_case(&expected) {
        return Err(CorruptReason::ChecksumMismatch);
    }
    Ok(list)
}

fn network(index: usize, value: &mut Value) -> Result<SavedNetwork, CorruptReason> {
    let path = format!("networks[{index}]");
    let at = |name: &str| format!("{path}.{name}");
    let fields = object(value, &path, &["ssid", "security", "passphrase", "visibility", "bssid", "last_result"])?;
    let prefix = format!("{path}.");

    let ssid_hex = text(field(fields, &prefix, "ssid")?, || at("ssid"))?;
    let ssid_bytes = hex::decode(ssid_hex).map_err(|_| invalid(at("ssid"), "is not hex"))?;
    let ssid = Ssid::new(ssid_bytes).map_err(|err| invalid(at("ssid"), format!("is not an SSID: {err}")))?;

    let security = text(field(fields, &prefix, "security")?, || at("security"))?
        .parse::<NetworkSecurity>()
        .map_err(|_| invalid(at("security"), "is not a known security"))?;

    let visibility = text(field(fields, &prefix, "visibility")?, || at("visibility"))?
        .parse::<Visibility>()
        .map_err(|_| invalid(at("visibility"), "is not a known visibility"))?;

    let bssid = match optional(fields, &prefix, "bssid")? {
        None => None,
        Some(value) => {
            Some(text(value, || at("bssid"))?.parse::<Bssid>().map_err(|_| invalid(at("bssid"), "is not a BSSID"))?)
        }
    };

    let last_result = match optional(fields, &prefix, "last_result")? {
        None => None,
        Some(value) => Some(last_result(&at("last_result"), value)?),
    };

    let passphrase = match optional(fields, &prefix, "passphrase")? {
        None => None,
        Some(Value::String(secret)) => {
            // Moved, not copied, into the zeroizing newtype; the error does not quote the value.
            let secret = core::mem::take(secret);
            Some(
                Passphrase::new(secret)
                    .map_err(|err| invalid(at("passphrase"), format!("is not a valid passphrase: {err}")))?,
            )
        }
        Some(_) => return Err(invalid(at("passphrase"), "is not a string")),
    };

    let network = SavedNetwork::new(ssid, security, passphrase)
        .map_err(|source| CorruptReason::Inconsistent { field: path.clone(), source })?;
    Ok(network.with_visibility(visibility).with_bssid(bssid).with_last_result(last_result))
}

fn last_result(path: &str, value: &mut Value) -> Result<LastResult, CorruptReason> {
    let at = |name: &str| format!("{path}.{name}");
    let prefix = format!("{path}.");
    let fields = object(value, path, &["outcome", "reason", "at_unix_secs"])?;
    let at_unix_secs = number(field(fields, &prefix, "at_unix_secs")?, || at("at_unix_secs"))?;
    let reason = match fields.get("reason") {
        None => None,
        Some(value) => {
            let code = number(value, || at("reason"))?;
            Some(u16::try_from(code).map_err(|_| invalid(at("reason"), "is out of range"))?)
        }
    };
    let outcome = match (text(field(fields, &prefix, "outcome")?, || at("outcome"))?, reason) {
        ("connected", None) => ConnectOutcome::Connected,
        ("auth-failed", None) => ConnectOutcome::AuthFailed,
        ("not-found", None) => ConnectOutcome::NotFound,
        ("other-failure", Some(code)) => ConnectOutcome::OtherFailure(DisconnectReason::new(code)),
        ("other-failure", None) => return Err(invalid(at("reason"), "is missing")),
        ("connected" | "auth-failed" | "not-found", Some(_)) => {
            return Err(invalid(at("reason"), "is only allowed with other-failure"));
        }
        _ => return Err(invalid(at("outcome"), "is not a known outcome")),
    };
    Ok(LastResult::new(outcome, at_unix_secs))
}

#[cfg(test)]
mod tests {
    use wifiprov_backend::Ssid;

    use super::*;

    const SECRET: &str = "correct horse battery";

    fn sample() -> NetworkList {
        let mut list = NetworkList::with_capacity(4).expect("valid capacity");
        let home = SavedNetwork::new(
            Ssid::try_from("home").expect("valid"),
            NetworkSecurity::WpaPsk,
            Some(Passphrase::try_from(SECRET).expect("valid")),
        )
        .expect("valid")
        .with_last_result(Some(LastResult::new(ConnectOutcome::Connected, 1_700_000_000)));
        let raw = SavedNetwork::new(
            Ssid::new(vec![0xff, 0x00, b'"']).expect("valid"),
            NetworkSecurity::Wpa3Sae,
            Some(Passphrase::try_from("quote\" and \\ backslash").expect("valid")),
        )
        .expect("valid")
        .with_visibility(Visibility::Hidden)
        .with_bssid(Some(Bssid::new([0x02, 0, 0, 0, 0, 0x2a])))
        .with_last_result(Some(LastResult::new(ConnectOutcome::OtherFailure(DisconnectReason::ASSOC_FAIL), 7)));
        let cafe = SavedNetwork::open(Ssid::try_from("cafe").expect("valid"))
            .with_last_result(Some(LastResult::new(ConnectOutcome::NotFound, 8)));
        for network in [home, raw, cafe] {
            list.add_or_update(network, None).expect("room");
        }
        list
    }

    fn text_of(list: &NetworkList) -> String {
        String::from_utf8(encode(list).expect("encodes").to_vec()).expect("JSON is UTF-8")
    }

    #[test]
    fn format_is_pinned() {
        let mut list = NetworkList::new();
        let home = SavedNetwork::new(
            Ssid::try_from("home").expect("valid"),
            NetworkSecurity::WpaPsk,
            Some(Passphrase::try_from(SECRET).expect("valid")),
        )
        .expect("valid")
        .with_last_result(Some(LastResult::new(ConnectOutcome::OtherFailure(DisconnectReason::new(15)), 42)));
        list.add_or_update(home, None).expect("room");
        let expected = r#"{
  "version": 1,
  "capacity": 8,
  "networks": [
    {
      "ssid": "686f6d65",
      "security": "wpa-psk",
      "passphrase": "correct horse battery",
      "visibility": "broadcast",
      "bssid": null,
      "last_result": {
        "outcome": "other-failure",
        "reason": 15,
        "at_unix_secs": 42
      }
    }
  ],
  "sha256": "CHECKSUM"
}
"#;
        let canonical = r#"{"version":1,"capacity":8,"networks":[{"ssid":"686f6d65","security":"wpa-psk","passphrase":"correct horse battery","visibility":"broadcast","bssid":null,"last_result":{"outcome":"other-failure","reason":15,"at_unix_secs":42}}]}"#;
        let sum = hex::encode(Sha256::digest(canonical.as_bytes()));
        assert_eq!(text_of(&list), expected.replace("CHECKSUM", &sum));
    }

    #[test]
    fn round_trip_keeps_everything() {
        let list = sample();
        let decoded = decode(&encode(&list).expect("encodes")).expect("decodes");
        assert_eq!(text_of(&decoded), text_of(&list));
        assert_eq!(decoded.capacity(), 4);
        let raw = decoded.get_at(1).expect("second network");
        assert_eq!(raw.ssid().as_bytes(), [0xff, 0x00, b'"']);
        assert_eq!(raw.passphrase().map(Passphrase::expose_secret), Some("quote\" and \\ backslash"));
        assert_eq!(raw.visibility(), Visibility::Hidden);
        let empty = NetworkList::new();
        assert_eq!(decode(&encode(&empty).expect("encodes")).expect("decodes").len(), 0);
    }

    /// Replaces `from` with `to` in the encoded sample and decodes, keeping the checksum of the original.
    fn decode_edited(from: &str, to: &str) -> Result<NetworkList, CorruptReason> {
        let text = text_of(&sample());
        assert!(text.contains(from), "{from} not in {text}");
        decode(text.replacen(from, to, 1).as_bytes())
    }

    #[test]
    fn an_edit_that_stays_valid_fails_the_checksum() {
        for (from, to) in [
            ("\"capacity\": 4", "\"capacity\": 5"),
            ("battery", "batterx"),
            ("1700000000", "1700000001"),
            ("\"visibility\": \"hidden\"", "\"visibility\": \"broadcast\""),
        ] {
            assert!(matches!(decode_edited(from, to), Err(CorruptReason::ChecksumMismatch)), "{from} -> {to}");
        }
    }

    #[test]
    fn malformed_fields_are_named_without_quoting_values() {
        let cases = [
            ("\"version\": 1", "\"version\": 2", "format version 2 is not supported"),
            ("\"version\": 1", "\"version\": \"1\"", "version is not an unsigned integer"),
            ("\"capacity\": 4", "\"capacity\": 0", "networks is inconsistent"),
            ("\"capacity\": 4", "\"capacity\": 2", "networks is inconsistent"),
            ("\"ssid\": \"686f6d65\"", "\"ssid\": \"686f6d6\"", "networks[0].ssid is not hex"),
            ("\"ssid\": \"686f6d65\"", "\"ssid\": \"\"", "networks[0].ssid is not an SSID"),
            ("\"security\": \"wpa-psk\"", "\"security\": \"wep\"", "networks[0].security is not a known security"),
            ("\"security\": \"wpa-psk\"", "\"security\": \"open\"", "networks[0] is inconsistent"),
            (SECRET, "short", "networks[0].passphrase is not a valid passphrase"),
            ("\"bssid\": null", "\"bssid\": \"02:00\"", "networks[0].bssid is not a BSSID"),
            ("\"sha256\"", "\"sha512\"", "document has an unknown field"),
            ("\"bssid\": null,", "", "networks[0].bssid is missing"),
            ("\"outcome\": \"connected\"", "\"outcome\": \"maybe\"", "networks[0].last_result.outcome is not a"),
            ("\"reason\": 203", "\"reason\": 70000", "networks[1].last_result.reason is out of range"),
        ];
        for (from, to, message) in cases {
            let err = decode_edited(from, to).expect_err(to);
            let text = format!("{err} {err:?}");
            assert!(text.contains(message), "{from} -> {to}: {text}");
            assert!(!text.contains(SECRET) && !text.contains("battery"), "{text}");
        }
        // A duplicate SSID (c3 -> the same name as the first network).
        let err = decode_edited("\"ssid\": \"63616665\"", "\"ssid\": \"686f6d65\"").expect_err("duplicate");
        assert!(matches!(err, CorruptReason::Inconsistent { .. }), "{err:?}");
    }

    #[test]
    fn a_passphrase_in_the_wrong_place_is_not_quoted() {
        let err = decode_edited("\"visibility\": \"broadcast\"", &format!("\"visibility\": \"{SECRET}\""))
            .expect_err("not a visibility");
        assert!(!format!("{err} {err:?}").contains(SECRET));
        let err = decode_edited("\"passphrase\": \"correct", "\"passphrase\": \"\\tcorrect").expect_err("tab");
        assert!(!format!("{err} {err:?}").contains("horse"));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = encode(&sample()).expect("encodes");
        // Dropping only the final newline leaves the same document; any shorter prefix is not JSON.
        let whole = bytes.len() - 1;
        for len in 0..whole {
            let prefix = bytes.get(..len).expect("in bounds");
            assert!(matches!(decode(prefix), Err(CorruptReason::Syntax(_))), "prefix of {len} bytes accepted");
        }
        assert!(decode(bytes.get(..whole).expect("in bounds")).is_ok());
    }
}
