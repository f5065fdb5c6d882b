//! The lists the crash writer saves. Generation `g` is a pure function of `g`, so whoever finds a list on disk
//! can tell which generation it is and check that it is that generation exactly, not a mix of two.
//!
//! Shared with `tests/crash.rs` through `#[path]`.

use std::fmt::Write as _;

use wifiprov_backend::{Bssid, DisconnectReason, Passphrase, Ssid};
use wifiprov_manager::networks::{ConnectOutcome, LastResult, NetworkList, NetworkSecurity, SavedNetwork, Visibility};

/// The list saved as generation `generation`: 1 to 8 networks named `gen-<generation>-<i>`, with every
/// security, visibility and outcome in turn. Generation 0 is the empty list (nothing saved yet).
pub(crate) fn list_for(generation: u64) -> NetworkList {
    let mut list = NetworkList::new();
    if generation == 0 {
        return list;
    }
    let count = generation % 8 + 1;
    for i in 0..count {
        let ssid = Ssid::try_from(format!("gen-{generation}-{i}")).expect("short enough for an SSID");
        let variant = (generation + i) % 4;
        let passphrase = || Some(Passphrase::new(format!("pass-{generation:012}-{i}")).expect("valid passphrase"));
        let network = match variant {
            0 => SavedNetwork::open(ssid),
            1 => SavedNetwork::new(ssid, NetworkSecurity::WpaPsk, passphrase()).expect("valid"),
            2 => SavedNetwork::new(ssid, NetworkSecurity::Wpa3Sae, passphrase()).expect("valid"),
            _ => SavedNetwork::new(ssid, NetworkSecurity::Transition, passphrase())
                .expect("valid")
                .with_visibility(Visibility::Hidden),
        };
        let outcome = match variant {
            0 => ConnectOutcome::Connected,
            1 => ConnectOutcome::AuthFailed,
            2 => ConnectOutcome::NotFound,
            _ => ConnectOutcome::OtherFailure(DisconnectReason::new(u16::try_from(i).unwrap_or(0) + 2)),
        };
        let octet = u8::try_from(i).unwrap_or(0);
        let network = network
            .with_bssid((i % 2 == 1).then(|| Bssid::new([0x02, 0, 0, 0, 0, octet])))
            .with_last_result(Some(LastResult::new(outcome, generation)));
        list.add_or_update(network, None).expect("at most 8 networks");
    }
    list
}

/// The generation a list was made for, from its first network's name; 0 for the empty list.
pub(crate) fn generation_of(list: &NetworkList) -> Result<u64, String> {
    let Some(first) = list.iter().next() else { return Ok(0) };
    first
        .ssid()
        .as_str()
        .and_then(|name| name.strip_prefix("gen-"))
        .and_then(|rest| rest.strip_suffix("-0"))
        .and_then(|number| number.parse().ok())
        .ok_or_else(|| format!("{} is not a generation's first network", first.ssid()))
}

/// Everything about a list, secrets included: equal fingerprints mean equal lists.
pub(crate) fn fingerprint(list: &NetworkList) -> String {
    let mut text = format!("{list:?}");
    for network in list {
        let _ = write!(text, "|{}", network.passphrase().map_or("-", Passphrase::expose_secret));
    }
    text
}
