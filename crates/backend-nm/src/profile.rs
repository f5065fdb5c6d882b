//! The connection profiles this backend makes, and how it recognises them.
//!
//! wifiprov's own store is the one list of saved networks; NetworkManager only ever holds the profile of the
//! network being joined right now. That profile is:
//! - marked as ours with the `user` setting `org.wifiprov.owner` (and an id starting `wifiprov:` for
//!   people reading `nmcli connection`), so that a profile somebody else made is never changed or deleted;
//! - `autoconnect` off, so NetworkManager's policy never races wifiprov's (which tries the saved networks in
//!   their priority order and reopens provisioning when none works);
//! - volatile and in memory: NetworkManager deletes it when it goes down and never writes it (nor its
//!   passphrase) to disk, so the secret lives in one place, wifiprov's store;
//! - `ipv4.may-fail` false, so that "activated" means the device holds an IPv4 address.

use std::collections::HashMap;

use wifiprov_backend::{Bssid, Passphrase, Ssid};
use zbus::Variant;

use crate::proxies::{OwnedSettings, Settings};

/// The `user` setting key marking our profiles. NetworkManager requires a dotted namespace.
pub(crate) const OWNER_KEY: &str = "org.wifiprov.owner";
/// Its value.
const OWNER_VALUE: &str = "wifiprovd";
/// The start of our profiles' ids.
const ID_PREFIX: &str = "wifiprov:";

/// The key management a profile asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyMgmt {
    /// An open network: no security setting at all.
    Open,
    /// Opportunistic Wireless Encryption: encrypted, but no secret.
    Owe,
    /// WPA/WPA2 personal. NetworkManager also offers SAE with it when the supplicant and driver can, so it
    /// joins WPA2/WPA3 transition networks, and hidden WPA3 networks whose security cannot be seen first.
    WpaPsk,
    /// WPA3 personal only. Needed for a visible SAE-only network: NetworkManager refuses `wpa-psk` for one
    /// ("Access point does not support PSK but setting requires it").
    Sae,
}

impl KeyMgmt {
    fn setting(self) -> Option<&'static str> {
        match self {
            Self::Open => None,
            Self::Owe => Some("owe"),
            Self::WpaPsk => Some("wpa-psk"),
            Self::Sae => Some("sae"),
        }
    }

    fn takes_passphrase(self) -> bool {
        matches!(self, Self::WpaPsk | Self::Sae)
    }
}

/// A station profile for one join.
pub(crate) struct StationProfile<'a> {
    pub(crate) interface: &'a str,
    pub(crate) ssid: &'a Ssid,
    pub(crate) key_mgmt: KeyMgmt,
    pub(crate) passphrase: Option<&'a Passphrase>,
    pub(crate) hidden: bool,
    pub(crate) bssid: Option<Bssid>,
}

impl StationProfile<'_> {
    /// The settings for `AddAndActivateConnection2`. They hold the passphrase: build them right before the call
    /// and drop them after.
    pub(crate) fn settings(&self) -> Settings<'_> {
        let connection = connection_setting(format!("{ID_PREFIX}{}", self.ssid), self.interface);

        let mut wireless = HashMap::new();
        wireless.insert("ssid", Variant::from(self.ssid.as_bytes()));
        wireless.insert("mode", Variant::from("infrastructure"));
        if self.hidden {
            wireless.insert("hidden", Variant::from(true));
        }
        if let Some(bssid) = self.bssid {
            wireless.insert("bssid", Variant::from(bssid.octets().to_vec()));
        }

        let mut ipv4 = HashMap::new();
        ipv4.insert("method", Variant::from("auto"));
        ipv4.insert("may-fail", Variant::from(false));

        let user = owner_setting();

        let mut settings =
            HashMap::from([("connection", connection), ("802-11-wireless", wireless), ("ipv4", ipv4), ("user", user)]);
        if let Some(key_mgmt) = self.key_mgmt.setting() {
            let mut security = HashMap::new();
            security.insert("key-mgmt", Variant::from(key_mgmt));
            if let Some(passphrase) = self.passphrase.filter(|_| self.key_mgmt.takes_passphrase()) {
                security.insert("psk", Variant::from(passphrase.expose_secret()));
            }
            settings.insert("802-11-wireless-security", security);
        }
        settings
    }
}

/// An access point profile: the provisioning SoftAP. WPA2-PSK only (with PMF off, since NetworkManager's
/// `wpa-psk` may otherwise offer SAE, which phones' provisioning apps do not all expect), or open without a
/// passphrase, as ESP's SoftAP; `ipv4.method shared` on the given address, so NetworkManager runs DHCP (its own
/// dnsmasq) for the phones that join.
pub(crate) struct HotspotProfile<'a> {
    pub(crate) interface: &'a str,
    pub(crate) ssid: &'a Ssid,
    pub(crate) passphrase: Option<&'a Passphrase>,
    pub(crate) channel: Option<u8>,
    pub(crate) address: std::net::Ipv4Addr,
    pub(crate) prefix: u8,
}

impl HotspotProfile<'_> {
    pub(crate) fn settings(&self) -> Settings<'_> {
        let connection = connection_setting(format!("wifiprov-ap:{}", self.ssid), self.interface);

        let mut wireless = HashMap::new();
        wireless.insert("ssid", Variant::from(self.ssid.as_bytes()));
        wireless.insert("mode", Variant::from("ap"));
        if let Some(channel) = self.channel {
            wireless.insert("band", Variant::from(if channel <= 14 { "bg" } else { "a" }));
            wireless.insert("channel", Variant::from(u32::from(channel)));
        }

        let mut ipv4 = HashMap::new();
        ipv4.insert("method", Variant::from("shared"));
        let address = HashMap::from([
            ("address", Variant::from(self.address.to_string())),
            ("prefix", Variant::from(u32::from(self.prefix))),
        ]);
        ipv4.insert("address-data", Variant::from(vec![address]));
        let mut ipv6 = HashMap::new();
        ipv6.insert("method", Variant::from("ignore"));

        let user = owner_setting();

        let mut settings = HashMap::from([
            ("connection", connection),
            ("802-11-wireless", wireless),
            ("ipv4", ipv4),
            ("ipv6", ipv6),
            ("user", user),
        ]);
        if let Some(passphrase) = self.passphrase {
            let mut security = HashMap::new();
            security.insert("key-mgmt", Variant::from("wpa-psk"));
            security.insert("psk", Variant::from(passphrase.expose_secret()));
            security.insert("proto", Variant::from(vec!["rsn"]));
            security.insert("pairwise", Variant::from(vec!["ccmp"]));
            security.insert("group", Variant::from(vec!["ccmp"]));
            // NM_SETTING_WIRELESS_SECURITY_PMF_DISABLE: plain WPA2.
            security.insert("pmf", Variant::from(1i32));
            settings.insert("802-11-wireless-security", security);
        }
        settings
    }
}

/// The `connection` setting of our profiles: a Wi-Fi profile bound to `interface`, autoconnect off (wifiprov's
/// policy decides what to join).
fn connection_setting(id: String, interface: &str) -> HashMap<&'static str, Variant<'_>> {
    HashMap::from([
        ("id", Variant::from(id)),
        ("type", Variant::from("802-11-wireless")),
        ("interface-name", Variant::from(interface)),
        ("autoconnect", Variant::from(false)),
    ])
}

/// The `user` setting that marks a profile as ours.
fn owner_setting() -> HashMap<&'static str, Variant<'static>> {
    HashMap::from([("data", Variant::from(HashMap::from([(OWNER_KEY, OWNER_VALUE)])))])
}

/// Whether a profile (as `GetSettings` returns it) is one of ours.
pub(crate) fn is_ours(settings: &OwnedSettings) -> bool {
    let Some(data) = settings.get("user").and_then(|user| user.get("data")) else { return false };
    // `try_clone` fails only for file descriptors, which a `user.data` never holds.
    let Ok(data) = data.try_clone() else { return false };
    HashMap::<String, String>::try_from(data).is_ok_and(|map| map.get(OWNER_KEY).is_some_and(|v| v == OWNER_VALUE))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use super::*;

    fn ssid(name: &str) -> Ssid {
        Ssid::new(name.as_bytes().to_vec()).expect("valid SSID")
    }

    fn owned(settings: Settings<'_>) -> OwnedSettings {
        settings
            .into_iter()
            .map(|(name, props)| {
                let props = props.into_iter().map(|(k, v)| (k.to_owned(), v.try_to_owned().expect("owned"))).collect();
                (name.to_owned(), props)
            })
            .collect()
    }

    fn text(settings: &Settings<'_>, setting: &str, key: &str) -> Option<String> {
        settings.get(setting)?.get(key)?.downcast_ref::<&str>().ok().map(str::to_owned)
    }

    #[test]
    fn a_wpa2_profile_is_ours_volatile_and_needs_an_address() {
        let name = ssid("HomeNet");
        let passphrase = Passphrase::new("homenet-pass".into()).expect("valid");
        let profile = StationProfile {
            interface: "wlan0",
            ssid: &name,
            key_mgmt: KeyMgmt::WpaPsk,
            passphrase: Some(&passphrase),
            hidden: false,
            bssid: None,
        };
        let settings = profile.settings();
        assert_eq!(text(&settings, "connection", "id").as_deref(), Some("wifiprov:HomeNet"));
        assert_eq!(text(&settings, "connection", "interface-name").as_deref(), Some("wlan0"));
        assert_eq!(settings["connection"]["autoconnect"], Variant::from(false));
        assert_eq!(settings["802-11-wireless"]["ssid"], Variant::from(b"HomeNet".as_slice()));
        assert!(!settings["802-11-wireless"].contains_key("hidden"));
        assert!(!settings["802-11-wireless"].contains_key("bssid"));
        assert_eq!(text(&settings, "802-11-wireless-security", "key-mgmt").as_deref(), Some("wpa-psk"));
        assert_eq!(text(&settings, "802-11-wireless-security", "psk").as_deref(), Some("homenet-pass"));
        assert_eq!(settings["ipv4"]["may-fail"], Variant::from(false));
        assert!(is_ours(&owned(settings)));
    }

    #[test]
    fn hidden_sae_with_bssid() {
        let name = ssid("Wpa3Net");
        let passphrase = Passphrase::new("wpa3net-pass".into()).expect("valid");
        let profile = StationProfile {
            interface: "wlan0",
            ssid: &name,
            key_mgmt: KeyMgmt::Sae,
            passphrase: Some(&passphrase),
            hidden: true,
            bssid: Some(Bssid::new([2, 0, 0, 0, 1, 0])),
        };
        let settings = profile.settings();
        assert_eq!(settings["802-11-wireless"]["hidden"], Variant::from(true));
        assert_eq!(settings["802-11-wireless"]["bssid"], Variant::from(vec![2u8, 0, 0, 0, 1, 0]));
        assert_eq!(text(&settings, "802-11-wireless-security", "key-mgmt").as_deref(), Some("sae"));
    }

    #[test]
    fn open_and_owe_carry_no_secret() {
        let name = ssid("OpenNet");
        let passphrase = Passphrase::new("ignored-pass".into()).expect("valid");
        for (key_mgmt, expected) in [(KeyMgmt::Open, None), (KeyMgmt::Owe, Some("owe"))] {
            let profile = StationProfile {
                interface: "wlan0",
                ssid: &name,
                key_mgmt,
                passphrase: Some(&passphrase),
                hidden: false,
                bssid: None,
            };
            let settings = profile.settings();
            assert_eq!(text(&settings, "802-11-wireless-security", "key-mgmt").as_deref(), expected);
            assert_eq!(text(&settings, "802-11-wireless-security", "psk"), None);
        }
    }

    #[test]
    fn profiles_of_others_are_not_ours() {
        let mut theirs = OwnedSettings::new();
        assert!(!is_ours(&theirs));
        let user = HashMap::from([(
            "data".to_owned(),
            Variant::from(HashMap::from([("com.example.owner", "wifiprovd")])).try_to_owned().expect("owned"),
        )]);
        theirs.insert("user".into(), user);
        assert!(!is_ours(&theirs));
        let wrong_value = HashMap::from([(
            "data".to_owned(),
            Variant::from(HashMap::from([(OWNER_KEY, "someone-else")])).try_to_owned().expect("owned"),
        )]);
        theirs.insert("user".into(), wrong_value);
        assert!(!is_ours(&theirs));
    }
}
