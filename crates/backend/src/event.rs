//! Changes of link state and their reasons.

use core::fmt;

use crate::LinkInfo;

/// Why a link ended or a join failed, as an ESP-IDF `wifi_err_reason_t` number.
///
/// The number is open-ended (802.11 reason codes below 200, ESP's own from 200 up), so this is a newtype with
/// constants for the codes wifiprov produces rather than a closed enum.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct DisconnectReason(u16);

impl DisconnectReason {
    /// No better reason known.
    pub const UNSPECIFIED: Self = Self(1);
    /// The station left on request (a disconnect, or a new connect replacing the link).
    pub const ASSOC_LEAVE: Self = Self(8);
    /// The access point stopped answering.
    pub const BEACON_TIMEOUT: Self = Self(200);
    /// No access point with the requested SSID (and BSSID, if given) was found.
    pub const NO_AP_FOUND: Self = Self(201);
    /// Authentication failed, normally a wrong passphrase.
    pub const AUTH_FAIL: Self = Self(202);
    /// The access point rejected the association.
    pub const ASSOC_FAIL: Self = Self(203);
    /// The key handshake timed out.
    pub const HANDSHAKE_TIMEOUT: Self = Self(204);
    /// The connection failed for another reason, including not getting an address in time.
    pub const CONNECTION_FAIL: Self = Self(205);
    /// An access point was found, but its security is not one the station can use.
    pub const NO_AP_FOUND_W_COMPATIBLE_SECURITY: Self = Self(210);

    /// Wraps any reason number, including ones without a constant here.
    pub const fn new(code: u16) -> Self {
        Self(code)
    }

    /// The ESP reason number.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// ESP's name for the reasons that have a constant here, without the `WIFI_REASON_` prefix.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "UNSPECIFIED",
            8 => "ASSOC_LEAVE",
            200 => "BEACON_TIMEOUT",
            201 => "NO_AP_FOUND",
            202 => "AUTH_FAIL",
            203 => "ASSOC_FAIL",
            204 => "HANDSHAKE_TIMEOUT",
            205 => "CONNECTION_FAIL",
            210 => "NO_AP_FOUND_W_COMPATIBLE_SECURITY",
            _ => return None,
        })
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisconnectReason({self})")
    }
}

/// A change of link state, delivered to every [`subscribe`](crate::WifiBackend::subscribe)r.
///
/// Failed joins are not events: the [`connect`](crate::WifiBackend::connect) future reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "event", rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum LinkEvent {
    /// A connect succeeded; the link is up with this address.
    Connected(LinkInfo),
    /// The link was taken down on our request (a disconnect, or a new connect replacing it).
    Disconnected {
        /// Normally [`DisconnectReason::ASSOC_LEAVE`].
        reason: DisconnectReason,
    },
    /// The link went down without being asked to: the access point vanished, kicked us, or stopped answering.
    LinkLost {
        /// What the radio reported, for example [`DisconnectReason::BEACON_TIMEOUT`].
        reason: DisconnectReason,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_known_reasons() {
        assert_eq!(DisconnectReason::AUTH_FAIL.to_string(), "202 (AUTH_FAIL)");
        assert_eq!(DisconnectReason::new(15).to_string(), "15");
    }

    #[test]
    fn serde_tags_events() {
        let event = LinkEvent::LinkLost { reason: DisconnectReason::BEACON_TIMEOUT };
        let json = serde_json::to_string(&event).expect("serializes");
        assert_eq!(json, r#"{"event":"link-lost","reason":200}"#);
        assert_eq!(serde_json::from_str::<LinkEvent>(&json).expect("deserializes"), event);
    }
}
