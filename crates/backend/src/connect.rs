//! Joining a network and the resulting link.

use core::fmt;
use std::net::Ipv4Addr;

use crate::{AuthMode, Bssid, Channel, Passphrase, Rssi, Ssid};

/// Whether a network announces its name, as far as the caller knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SsidVisibility {
    /// The network is (or is assumed to be) in beacons; backends may look it up in their scan results.
    #[default]
    Broadcast,
    /// The network hides its name; backends must probe for it by name (`scan_ssid=1` in wpa_supplicant,
    /// `hidden=yes` in NetworkManager) before associating.
    Hidden,
}

/// A request to join a network.
///
/// `Debug` shows whether a passphrase is present but never its value.
#[derive(Clone)]
pub struct ConnectRequest {
    /// The network to join.
    pub ssid: Ssid,
    /// The secret for personal networks; `None` for open networks.
    pub passphrase: Option<Passphrase>,
    /// Join only this access point; `None` lets the backend pick (normally the strongest).
    pub bssid: Option<Bssid>,
    /// Whether the backend has to probe for the name.
    pub visibility: SsidVisibility,
}

impl ConnectRequest {
    /// A request for `ssid` with any access point and [`SsidVisibility::Broadcast`].
    pub fn new(ssid: Ssid, passphrase: Option<Passphrase>) -> Self {
        Self { ssid, passphrase, bssid: None, visibility: SsidVisibility::default() }
    }

    /// Pins the request to one access point.
    #[must_use]
    pub fn with_bssid(mut self, bssid: Bssid) -> Self {
        self.bssid = Some(bssid);
        self
    }

    /// Sets the visibility hint.
    #[must_use]
    pub fn with_visibility(mut self, visibility: SsidVisibility) -> Self {
        self.visibility = visibility;
        self
    }
}

impl fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("ssid", &self.ssid)
            .field("passphrase", &self.passphrase.as_ref().map(|_| Redacted))
            .field("bssid", &self.bssid)
            .field("visibility", &self.visibility)
            .finish()
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An established link: associated, authenticated, and holding an IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LinkInfo {
    /// The network joined.
    pub ssid: Ssid,
    /// The access point associated with.
    pub bssid: Bssid,
    /// Its channel.
    pub channel: Channel,
    /// The security in use.
    pub auth: AuthMode,
    /// The address the network gave us.
    pub ip4: Ipv4Addr,
    /// Signal strength when the link came up.
    pub rssi: Rssi,
}
