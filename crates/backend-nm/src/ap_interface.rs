//! A second virtual interface on the station's radio for the provisioning access point, made through nl80211
//! (what `iw dev wlan0 interface add uap0 type __ap` does), so the station can scan and join while the access
//! point stays up. Radios that allow it (a Raspberry Pi's, `mac80211_hwsim`) list a combination of one managed
//! and one AP interface on one channel; the access point then has to use the station's channel.
//!
//! The new interface gets an address of its own, derived from the radio's: left to the kernel, mac80211 hands
//! it the radio's permanent address whenever the station happens to carry another one (NetworkManager
//! randomizes it while scanning), and the station's next join, which restores the permanent address, then
//! fails with "Name not unique on network" (seen in the lab).

use std::path::Path;

use futures_util::TryStreamExt as _;
use wl_nl80211::{
    Nl80211Attr, Nl80211IfaceComb, Nl80211IfaceCombAttribute, Nl80211IfaceCombLimitAttribute, Nl80211Interface,
    Nl80211InterfaceType, Nl80211NewInterface,
};

/// Why the access point's interface could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApInterfaceError {
    /// The station interface has no 802.11 radio behind it (`/sys/class/net/IF/phy80211/index`).
    #[error("{interface} is not a Wi-Fi interface (no phy80211 in sysfs)")]
    NoRadio {
        /// The station interface.
        interface: String,
    },
    /// The netlink socket could not be opened.
    #[error("cannot open an nl80211 socket")]
    Socket(#[source] std::io::Error),
    /// The kernel did not describe the radio.
    #[error("cannot read the capabilities of the radio of {interface}")]
    Capabilities {
        /// The station interface.
        interface: String,
        /// The kernel's answer.
        #[source]
        source: wl_nl80211::Nl80211Error,
    },
    /// The kernel refused to remove the interface.
    #[error("cannot remove the access point interface {name}")]
    NotRemoved {
        /// The interface.
        name: String,
        /// The kernel's answer.
        #[source]
        source: wl_nl80211::Nl80211Error,
    },
    /// The kernel refused the new interface (the radio cannot run an access point beside its station, or the
    /// name is taken).
    #[error("the radio of {station} refused a second (access point) interface {name}")]
    Refused {
        /// The station interface.
        station: String,
        /// The requested name.
        name: String,
        /// The kernel's answer.
        #[source]
        source: wl_nl80211::Nl80211Error,
    },
}

/// The radio (wiphy index) behind a network interface.
fn wiphy_of(interface: &str) -> Option<u32> {
    let index = std::fs::read_to_string(Path::new("/sys/class/net").join(interface).join("phy80211/index")).ok()?;
    index.trim().parse().ok()
}

/// The permanent address of the radio behind a network interface.
fn radio_address(interface: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(Path::new("/sys/class/net").join(interface).join("phy80211/macaddress")).ok()?;
    parse_mac(text.trim())
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The access point's address on a radio whose permanent address is `radio`: unicast, locally administered, and
/// different from `radio` (bit 2 of the first octet flipped as well), so the two interfaces never clash and
/// the access point's address stays the same from one run to the next.
fn ap_address(radio: [u8; 6]) -> [u8; 6] {
    let mut mac = radio;
    mac[0] = ((radio[0] | 0x02) ^ 0x04) & !0x01;
    mac
}

/// Whether the radio behind `station` can run an access point beside its station: one of the interface
/// combinations it lists (`iw phy` "valid interface combinations") has room for a managed and an AP interface.
/// Such radios run both on one channel; those that cannot (many USB dongles) get the access point on the
/// station's own interface instead, taken down for each join.
pub async fn ap_beside_station_supported(station: &str) -> Result<bool, ApInterfaceError> {
    let wiphy = wiphy_of(station).ok_or_else(|| ApInterfaceError::NoRadio { interface: station.to_owned() })?;
    let (connection, handle, _) = wl_nl80211::new_connection().map_err(ApInterfaceError::Socket)?;
    let driver = tokio::spawn(connection);
    let mut replies = handle.wireless_physic().get().wiphy_index(wiphy).execute().await;
    let mut combinations = Vec::new();
    let outcome = loop {
        match replies.try_next().await {
            Ok(Some(message)) => {
                for attribute in message.payload.attributes {
                    if let Nl80211Attr::InterfaceCombination(found) = attribute {
                        combinations.extend(found.iter().map(Combination::from));
                    }
                }
            }
            Ok(None) => break Ok(()),
            Err(source) => break Err(ApInterfaceError::Capabilities { interface: station.to_owned(), source }),
        }
    };
    driver.abort();
    outcome?;
    let supported = combinations.iter().any(Combination::allows_ap_beside_station);
    tracing::debug!(%station, wiphy, ?combinations, supported, "interface combinations");
    Ok(supported)
}

/// One interface combination of a radio: at most `total` interfaces at once, each limit allowing `max` of the
/// listed types.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Combination {
    total: u32,
    limits: Vec<(u32, Vec<Nl80211InterfaceType>)>,
}

impl From<&Nl80211IfaceComb> for Combination {
    fn from(combination: &Nl80211IfaceComb) -> Self {
        let mut total = 0;
        let mut limits = Vec::new();
        for attribute in &combination.attributes {
            match attribute {
                Nl80211IfaceCombAttribute::Maxnum(n) => total = *n,
                Nl80211IfaceCombAttribute::Limits(found) => {
                    for limit in found {
                        let (mut max, mut types) = (0, Vec::new());
                        for attribute in &limit.attributes {
                            match attribute {
                                Nl80211IfaceCombLimitAttribute::Max(n) => max = *n,
                                Nl80211IfaceCombLimitAttribute::Iftypes(t) => types.clone_from(t),
                                _ => {}
                            }
                        }
                        limits.push((max, types));
                    }
                }
                _ => {}
            }
        }
        Self { total, limits }
    }
}

impl Combination {
    /// Room for one station and one access point at once.
    fn allows_ap_beside_station(&self) -> bool {
        let limits_of = |kind: Nl80211InterfaceType| -> Vec<usize> {
            let holds =
                |(_, (max, types)): &(usize, &(u32, Vec<Nl80211InterfaceType>))| *max > 0 && types.contains(&kind);
            self.limits.iter().enumerate().filter(holds).map(|(i, _)| i).collect()
        };
        let (stations, aps) = (limits_of(Nl80211InterfaceType::Station), limits_of(Nl80211InterfaceType::Ap));
        // Both in one limit need room for two.
        let together = stations.iter().any(|station| {
            aps.iter().any(|ap| station != ap || self.limits.get(*ap).is_some_and(|(max, _)| *max >= 2))
        });
        self.total >= 2 && together
    }
}

/// Makes `name` an access point interface on `station`'s radio, unless an interface of that name exists already
/// (made by an earlier run, or by the system). Returns whether it made one.
pub async fn ensure_ap_interface(station: &str, name: &str) -> Result<bool, ApInterfaceError> {
    if Path::new("/sys/class/net").join(name).exists() {
        return Ok(false);
    }
    let no_radio = || ApInterfaceError::NoRadio { interface: station.to_owned() };
    let wiphy = wiphy_of(station).ok_or_else(no_radio)?;
    let address = ap_address(radio_address(station).ok_or_else(no_radio)?);
    let (connection, handle, _) = wl_nl80211::new_connection().map_err(ApInterfaceError::Socket)?;
    let driver = tokio::spawn(connection);
    let request = Nl80211NewInterface::new(wiphy, Nl80211InterfaceType::Ap, name.to_owned())
        .replace(Nl80211Attr::Mac(address))
        .build();
    let mut replies = handle.interface().add(request).execute().await;
    let outcome = loop {
        match replies.try_next().await {
            Ok(Some(_)) => {}
            Ok(None) => break Ok(true),
            Err(source) => {
                break Err(ApInterfaceError::Refused { station: station.to_owned(), name: name.to_owned(), source });
            }
        }
    };
    driver.abort();
    if outcome.is_ok() {
        let address = address.map(|b| format!("{b:02x}")).join(":");
        tracing::info!(%station, interface = %name, wiphy, %address, "made the access point interface");
    }
    outcome
}

/// Removes the access point interface `name` (made by [`ensure_ap_interface`]), so that nothing runs beside the
/// station once provisioning is over: NetworkManager manages every Wi-Fi interface it sees, and an idle second
/// interface on the same radio scans and slows the station's joins. Succeeds, doing nothing, when it is gone.
pub async fn remove_ap_interface(name: &str) -> Result<(), ApInterfaceError> {
    let index = std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("ifindex"));
    let Some(index) = index.ok().and_then(|text| text.trim().parse::<u32>().ok()) else { return Ok(()) };
    let (connection, handle, _) = wl_nl80211::new_connection().map_err(ApInterfaceError::Socket)?;
    let driver = tokio::spawn(connection);
    let mut replies = handle.interface().delete(Nl80211Interface::new(index).build()).execute().await;
    let outcome = loop {
        match replies.try_next().await {
            Ok(Some(_)) => {}
            Ok(None) => break Ok(()),
            Err(source) => break Err(ApInterfaceError::NotRemoved { name: name.to_owned(), source }),
        }
    };
    driver.abort();
    if outcome.is_ok() {
        tracing::info!(interface = %name, "removed the access point interface");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_point_address_differs_from_the_radio_s() {
        // mac80211_hwsim's radios: already locally administered.
        assert_eq!(ap_address([0x02, 0, 0, 0, 0x01, 0]), [0x06, 0, 0, 0, 0x01, 0]);
        // A Raspberry Pi's (globally unique, Raspberry Pi Trading's OUI).
        assert_eq!(ap_address([0xb8, 0x27, 0xeb, 1, 2, 3]), [0xbe, 0x27, 0xeb, 1, 2, 3]);
        for first in 0..=255u8 {
            let radio = [first & !0x01, 9, 8, 7, 6, 5];
            let ap = ap_address(radio);
            assert_ne!(ap, radio);
            assert_eq!(ap[0] & 0x03, 0x02, "unicast and locally administered: {ap:02x?}");
        }
    }

    #[test]
    fn combinations_with_room_for_a_station_and_an_access_point() {
        use Nl80211InterfaceType::{Ap, P2pClient, P2pGo, Station};
        let combination = |total, limits: &[(u32, &[Nl80211InterfaceType])]| Combination {
            total,
            limits: limits.iter().map(|(max, types)| (*max, types.to_vec())).collect(),
        };
        // A Raspberry Pi 3/4 (brcmfmac): #{ managed } <= 1, #{ P2P-device } <= 1, #{ P2P-client, P2P-GO } <= 1, total <= 3;
        // and #{ managed } <= 1, #{ AP } <= 1, total <= 2.
        assert!(combination(2, &[(1, &[Station]), (1, &[Ap])]).allows_ap_beside_station());
        assert!(!combination(3, &[(1, &[Station]), (1, &[P2pClient, P2pGo])]).allows_ap_beside_station());
        // mac80211_hwsim: #{ managed, AP, … } <= 2048, total <= 2048.
        assert!(combination(2048, &[(2048, &[Station, Ap])]).allows_ap_beside_station());
        // One interface of either kind at a time.
        assert!(!combination(1, &[(1, &[Station]), (1, &[Ap])]).allows_ap_beside_station());
        assert!(!combination(2, &[(1, &[Station, Ap])]).allows_ap_beside_station());
        assert!(!combination(2, &[(1, &[Station]), (0, &[Ap])]).allows_ap_beside_station());
    }

    #[test]
    fn addresses_parse_from_sysfs() {
        assert_eq!(parse_mac("02:00:00:00:01:00"), Some([2, 0, 0, 0, 1, 0]));
        assert_eq!(parse_mac("b8:27:EB:01:02:03"), Some([0xb8, 0x27, 0xeb, 1, 2, 3]));
        assert_eq!(parse_mac("02:00:00:00:01"), None);
        assert_eq!(parse_mac("02:00:00:00:01:00:00"), None);
        assert_eq!(parse_mac("zz:00:00:00:01:00"), None);
    }
}
