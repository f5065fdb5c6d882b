//! Scan requests and results.

use core::time::Duration;

use crate::{AuthMode, Bssid, Channel, Rssi, Ssid};

/// How the radio looks for access points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ScanMode {
    /// Send probe requests on each channel: faster, and finds more networks.
    #[default]
    Active,
    /// Only listen for beacons: slower, but the device transmits nothing while scanning.
    Passive,
}

/// What to scan for. `ScanParams::default()` is an active scan of every channel with the backend's own
/// timing, which is what an ESP `prov-scan` request with zeroed fields asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ScanParams {
    /// Active or passive.
    pub mode: ScanMode,
    /// How long to stay on each channel; `None` leaves it to the backend. Backends that cannot set it ignore
    /// it.
    pub per_channel: Option<Duration>,
    /// Which channels to visit; `None` means all that the regulatory domain allows. `Some` of an empty list
    /// visits none and yields no results.
    pub channels: Option<Vec<Channel>>,
}

/// One access point seen by a scan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AccessPoint {
    /// The network name, or `None` when the access point hides it (its beacons carry an empty or zeroed SSID).
    pub ssid: Option<Ssid>,
    /// The access point's MAC address.
    pub bssid: Bssid,
    /// The channel it was heard on.
    pub channel: Channel,
    /// How strongly it was heard.
    pub rssi: Rssi,
    /// The security it advertises.
    pub auth: AuthMode,
}

impl AccessPoint {
    /// Whether the access point withholds its name.
    pub fn is_hidden(&self) -> bool {
        self.ssid.is_none()
    }
}
