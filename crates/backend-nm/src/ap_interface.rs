//! A second virtual interface on the station's radio for the provisioning access point, made through nl80211
//! (what `iw dev wlan0 interface add uap0 type __ap` does), so the station can scan and join while the access
//! point stays up. Radios that allow it (a Raspberry Pi's, `mac80211_hwsim`) list a combination of one managed
//! and one AP interface on one channel; the access point then has to use the station's channel.

use std::path::Path;

use futures_util::TryStreamExt as _;
use wl_nl80211::{Nl80211Interface, Nl80211InterfaceType, Nl80211NewInterface};

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

/// Makes `name` an access point interface on `station`'s radio, unless an interface of that name exists already
/// (made by an earlier run, or by the system). Returns whether it made one.
pub async fn ensure_ap_interface(station: &str, name: &str) -> Result<bool, ApInterfaceError> {
    if Path::new("/sys/class/net").join(name).exists() {
        return Ok(false);
    }
    let wiphy = wiphy_of(station).ok_or_else(|| ApInterfaceError::NoRadio { interface: station.to_owned() })?;
    let (connection, handle, _) = wl_nl80211::new_connection().map_err(ApInterfaceError::Socket)?;
    let driver = tokio::spawn(connection);
    let request = Nl80211NewInterface::new(wiphy, Nl80211InterfaceType::Ap, name.to_owned()).build();
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
        tracing::info!(%station, interface = %name, wiphy, "made the access point interface");
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
