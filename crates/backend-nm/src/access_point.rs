//! NetworkManager's description of an access point, turned into the backend's [`AccessPoint`].
//!
//! Pure functions over the property values, so the mapping is tested without a bus.

use std::collections::HashMap;

use wifiprov_backend::{AccessPoint, AuthMode, Bssid, Channel, Rssi, Ssid};
use zbus::OwnedVariant;

/// `NM80211ApFlags::PRIVACY`: the network encrypts (WEP when nothing else is announced).
const AP_PRIVACY: u32 = 0x1;
/// `NM80211ApSecurityFlags` key management bits.
const KEY_MGMT_PSK: u32 = 0x100;
const KEY_MGMT_802_1X: u32 = 0x200;
const KEY_MGMT_SAE: u32 = 0x400;
const KEY_MGMT_OWE: u32 = 0x800;
const KEY_MGMT_OWE_TM: u32 = 0x1000;
const KEY_MGMT_EAP_SUITE_B_192: u32 = 0x2000;

/// What an access point asks of a station, as far as joining it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Security {
    /// The ESP auth mode shown to clients.
    pub(crate) auth: AuthMode,
    /// Opportunistic Wireless Encryption without an open half: shown as open (there is no secret), but the
    /// profile must ask for `owe`.
    pub(crate) owe_only: bool,
}

/// Reads the security from an access point's `Flags`, `WpaFlags` and `RsnFlags` (the rules nmcli uses to
/// label networks, folded onto ESP's auth modes).
pub(crate) fn security(flags: u32, wpa: u32, rsn: u32) -> Security {
    let both = wpa | rsn;
    let auth = if both & (KEY_MGMT_802_1X | KEY_MGMT_EAP_SUITE_B_192) != 0 {
        AuthMode::Wpa2Enterprise
    } else if rsn & KEY_MGMT_SAE != 0 {
        if both & KEY_MGMT_PSK != 0 { AuthMode::Wpa2Wpa3 } else { AuthMode::Wpa3Sae }
    } else if wpa & KEY_MGMT_PSK != 0 && rsn & KEY_MGMT_PSK != 0 {
        AuthMode::WpaWpa2Psk
    } else if rsn & KEY_MGMT_PSK != 0 {
        AuthMode::Wpa2Psk
    } else if wpa & KEY_MGMT_PSK != 0 {
        AuthMode::WpaPsk
    } else if both & (KEY_MGMT_OWE | KEY_MGMT_OWE_TM) != 0 || both == 0 && flags & AP_PRIVACY == 0 {
        AuthMode::Open
    } else if both == 0 {
        AuthMode::Wep
    } else {
        // Only cipher bits and no key management we know: treat as the common case rather than guess.
        AuthMode::Wpa2Psk
    };
    // OWE-TM marks the open half of a transition pair: that half is joined as an open network.
    let owe_only = auth == AuthMode::Open && both & KEY_MGMT_OWE != 0;
    Security { auth, owe_only }
}

/// The channel of a centre frequency in MHz (2.4, 5 and 6 GHz bands), or `None` when it is outside them or
/// beyond what [`Channel`] holds (6 GHz channels above 196).
pub(crate) fn channel(mhz: u32) -> Option<Channel> {
    let number = match mhz {
        2484 => 14,
        2412..=2472 => (mhz - 2407) / 5,
        5160..=5885 => (mhz - 5000) / 5,
        5955..=7115 => (mhz - 5950) / 5,
        _ => return None,
    };
    Channel::new(u8::try_from(number).ok()?).ok()
}

/// The signal in dBm behind NetworkManager's `Strength` percentage, which it derives linearly from -100 dBm
/// (0 %) to -40 dBm (100 %). Lossy at the ends: everything stronger than -40 dBm reads as -40.
pub(crate) fn rssi(strength: u8) -> Rssi {
    let quality = i32::from(strength.min(100));
    // -40 - 0.6 × (100 - q), rounded to the nearest dBm.
    let dbm = -40 - ((100 - quality) * 6 + 5) / 10;
    Rssi::new(i8::try_from(dbm).unwrap_or(i8::MIN))
}

/// Parses `AA:BB:CC:DD:EE:FF`.
pub(crate) fn parse_bssid(text: &str) -> Option<Bssid> {
    let mut octets = [0u8; 6];
    let mut parts = text.split(':');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *octet = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(Bssid::new(octets))
}

/// An access point as NetworkManager knows it.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    pub(crate) ap: AccessPoint,
    pub(crate) security: Security,
    /// When it was last heard, CLOCK_BOOTTIME seconds (`LastSeen`); `None` when NetworkManager does not say.
    pub(crate) last_seen: Option<i32>,
}

impl Known {
    /// Whether it was heard after `since` (CLOCK_BOOTTIME milliseconds), the moment a scan was asked for.
    /// NetworkManager keeps an access point for a while after it goes quiet (the supplicant drops it after two
    /// scans without it, or three minutes), so a scan's list also holds networks that are gone. `LastSeen` has
    /// whole seconds: an access point heard within the second before `since` still counts.
    pub(crate) fn heard_since(&self, since: i64) -> bool {
        self.last_seen.is_none_or(|seen| i64::from(seen) * 1000 + 1000 > since)
    }
}

/// An access point from its `org.freedesktop.NetworkManager.AccessPoint` properties. `None` when a property is
/// missing or out of range (logged by the caller).
pub(crate) fn from_properties(properties: &HashMap<String, OwnedVariant>) -> Option<Known> {
    let get = |name: &str| properties.get(name);
    let ssid_bytes: Vec<u8> = get("Ssid")?.try_clone().ok()?.try_into().ok()?;
    // Hidden networks beacon an empty or zeroed name.
    let ssid = if ssid_bytes.iter().all(|&b| b == 0) { None } else { Some(Ssid::new(ssid_bytes).ok()?) };
    let hw_address: &str = get("HwAddress")?.downcast_ref().ok()?;
    let frequency: u32 = get("Frequency")?.downcast_ref().ok()?;
    let strength: u8 = get("Strength")?.downcast_ref().ok()?;
    let flags: u32 = get("Flags")?.downcast_ref().ok()?;
    let wpa: u32 = get("WpaFlags")?.downcast_ref().ok()?;
    let rsn: u32 = get("RsnFlags")?.downcast_ref().ok()?;
    let last_seen = get("LastSeen").and_then(|v| v.downcast_ref::<i32>().ok());
    let security = security(flags, wpa, rsn);
    let ap = AccessPoint {
        ssid,
        bssid: parse_bssid(hw_address)?,
        channel: channel(frequency)?,
        rssi: rssi(strength),
        auth: security.auth,
    };
    Some(Known { ap, security, last_seen })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::Variant;

    #[test]
    fn security_follows_the_announced_key_management() {
        let ccmp = 0x8 | 0x80;
        assert_eq!(security(0, 0, 0).auth, AuthMode::Open);
        assert_eq!(security(AP_PRIVACY, 0, 0).auth, AuthMode::Wep);
        assert_eq!(security(AP_PRIVACY, 0, ccmp | KEY_MGMT_PSK).auth, AuthMode::Wpa2Psk);
        assert_eq!(security(AP_PRIVACY, 0x4 | 0x40 | KEY_MGMT_PSK, 0).auth, AuthMode::WpaPsk);
        assert_eq!(security(AP_PRIVACY, KEY_MGMT_PSK, KEY_MGMT_PSK).auth, AuthMode::WpaWpa2Psk);
        assert_eq!(security(AP_PRIVACY, 0, ccmp | KEY_MGMT_SAE).auth, AuthMode::Wpa3Sae);
        assert_eq!(security(AP_PRIVACY, 0, ccmp | KEY_MGMT_SAE | KEY_MGMT_PSK).auth, AuthMode::Wpa2Wpa3);
        assert_eq!(security(AP_PRIVACY, 0, ccmp | KEY_MGMT_802_1X).auth, AuthMode::Wpa2Enterprise);
        assert_eq!(security(AP_PRIVACY, 0, KEY_MGMT_EAP_SUITE_B_192).auth, AuthMode::Wpa2Enterprise);
        let owe = security(AP_PRIVACY, 0, ccmp | KEY_MGMT_OWE);
        assert_eq!((owe.auth, owe.owe_only), (AuthMode::Open, true));
        let transition_open_half = security(0, 0, KEY_MGMT_OWE_TM);
        assert_eq!((transition_open_half.auth, transition_open_half.owe_only), (AuthMode::Open, false));
    }

    #[test]
    fn channels_of_each_band() {
        let ch = |mhz| channel(mhz).map(Channel::get);
        assert_eq!(ch(2412), Some(1));
        assert_eq!(ch(2437), Some(6));
        assert_eq!(ch(2472), Some(13));
        assert_eq!(ch(2484), Some(14));
        assert_eq!(ch(5180), Some(36));
        assert_eq!(ch(5825), Some(165));
        assert_eq!(ch(5955), Some(1));
        assert_eq!(ch(6935), None, "6 GHz channel 197 does not fit Channel");
        assert_eq!(ch(2400), None);
        assert_eq!(ch(0), None);
    }

    #[test]
    fn strength_back_to_dbm() {
        assert_eq!(rssi(100).dbm(), -40);
        assert_eq!(rssi(0).dbm(), -100);
        assert_eq!(rssi(50).dbm(), -70);
        assert_eq!(rssi(255).dbm(), -40, "a percentage over 100 is clamped");
        // NetworkManager's forward mapping of -67 dBm is 55 %.
        assert_eq!(rssi(55).dbm(), -67);
    }

    #[test]
    fn bssid_text() {
        assert_eq!(parse_bssid("02:00:00:00:01:0a"), Some(Bssid::new([2, 0, 0, 0, 1, 10])));
        for bad in
            ["", "02:00:00:00:01", "02:00:00:00:01:0a:0b", "02-00-00-00-01-0a", "2:00:00:00:01:0a", "zz:00:00:00:01:0a"]
        {
            assert_eq!(parse_bssid(bad), None, "{bad:?}");
        }
    }

    fn props(ssid: &[u8]) -> HashMap<String, OwnedVariant> {
        let mut map = HashMap::new();
        let mut put = |k: &str, v: Variant<'_>| {
            map.insert(k.to_owned(), v.try_to_owned().expect("owned"));
        };
        put("Ssid", Variant::from(ssid.to_vec()));
        put("HwAddress", Variant::from("02:00:00:00:01:00"));
        put("Frequency", Variant::from(2437u32));
        put("Strength", Variant::from(70u8));
        put("Flags", Variant::from(AP_PRIVACY));
        put("WpaFlags", Variant::from(0u32));
        put("RsnFlags", Variant::from(0x188u32));
        put("LastSeen", Variant::from(1200i32));
        map
    }

    #[test]
    fn access_point_from_its_properties() {
        let Known { ap, security, last_seen } = from_properties(&props(b"HomeNet")).expect("parses");
        assert_eq!(last_seen, Some(1200));
        assert_eq!(ap.ssid.as_ref().and_then(Ssid::as_str), Some("HomeNet"));
        assert_eq!(ap.bssid, Bssid::new([2, 0, 0, 0, 1, 0]));
        assert_eq!(ap.channel.get(), 6);
        assert_eq!(ap.rssi.dbm(), -58);
        assert_eq!(ap.auth, AuthMode::Wpa2Psk);
        assert!(!security.owe_only);

        let hidden = from_properties(&props(&[0, 0, 0])).expect("parses");
        assert!(hidden.ap.is_hidden());
        let hidden = from_properties(&props(b"")).expect("parses");
        assert!(hidden.ap.is_hidden());
    }

    #[test]
    fn heard_since_a_scan() {
        let mut known = from_properties(&props(b"HomeNet")).expect("parses");
        // Heard at 1200 s: fresh for a scan that ended before, or within the same second.
        assert!(known.heard_since(1_199_000));
        assert!(known.heard_since(1_200_900));
        // Not heard since a scan that ended at 1201.5 s: it was gone by the next one.
        assert!(!known.heard_since(1_201_500));
        known.last_seen = None;
        assert!(known.heard_since(i64::MAX), "without LastSeen every access point counts");
    }

    #[test]
    fn incomplete_or_wrong_properties_are_refused() {
        let mut missing = props(b"HomeNet");
        missing.remove("RsnFlags");
        assert!(from_properties(&missing).is_none());
        let mut wrong_type = props(b"HomeNet");
        wrong_type.insert("Frequency".into(), Variant::from("2437").try_to_owned().expect("owned"));
        assert!(from_properties(&wrong_type).is_none());
        assert!(from_properties(&props(&[b'x'; 33])).is_none(), "an SSID over 32 bytes");
    }
}
