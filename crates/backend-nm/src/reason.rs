//! NetworkManager's device states and state reasons, and what they mean for a join or a link.
//!
//! Numbers from `NMDeviceState` and `NMDeviceStateReason` (`nm-dbus-interface.h`). Only the device's
//! `StateChanged` signal carries the Wi-Fi reason: the active connection reports "device disconnected" for
//! every failure.

use wifiprov_backend::{ConnectError, DisconnectReason};

/// `NMDeviceState` values used here.
pub(crate) mod state {
    pub(crate) const UNAVAILABLE: u32 = 20;
    pub(crate) const DISCONNECTED: u32 = 30;
    pub(crate) const PREPARE: u32 = 40;
    pub(crate) const ACTIVATED: u32 = 100;
    pub(crate) const DEACTIVATING: u32 = 110;
    pub(crate) const FAILED: u32 = 120;
}

const NO_SECRETS: u32 = 7;
const SUPPLICANT_DISCONNECT: u32 = 8;
const SUPPLICANT_CONFIG_FAILED: u32 = 9;
const SUPPLICANT_FAILED: u32 = 10;
const SUPPLICANT_TIMEOUT: u32 = 11;
const IP_CONFIG_UNAVAILABLE: u32 = 5;
const IP_CONFIG_EXPIRED: u32 = 6;
const DHCP_START_FAILED: u32 = 15;
const DHCP_ERROR: u32 = 16;
const DHCP_FAILED: u32 = 17;
const REMOVED: u32 = 36;
const CONNECTION_REMOVED: u32 = 38;
const USER_REQUESTED: u32 = 39;
const SSID_NOT_FOUND: u32 = 53;
const NEW_ACTIVATION: u32 = 60;

/// NetworkManager's name for a reason, for logs.
pub(crate) fn name(reason: u32) -> &'static str {
    match reason {
        0 => "none",
        1 => "unknown",
        IP_CONFIG_UNAVAILABLE => "ip-config-unavailable",
        IP_CONFIG_EXPIRED => "ip-config-expired",
        NO_SECRETS => "no-secrets",
        SUPPLICANT_DISCONNECT => "supplicant-disconnect",
        SUPPLICANT_CONFIG_FAILED => "supplicant-config-failed",
        SUPPLICANT_FAILED => "supplicant-failed",
        SUPPLICANT_TIMEOUT => "supplicant-timeout",
        DHCP_START_FAILED => "dhcp-start-failed",
        DHCP_ERROR => "dhcp-error",
        DHCP_FAILED => "dhcp-failed",
        REMOVED => "removed",
        CONNECTION_REMOVED => "connection-removed",
        USER_REQUESTED => "user-requested",
        SSID_NOT_FOUND => "ssid-not-found",
        NEW_ACTIVATION => "new-activation",
        _ => "other",
    }
}

/// Why a join that reached FAILED did not work.
///
/// A wrong passphrase ends in `no-secrets`: the supplicant drops out of the 4-way handshake (or, for SAE, times
/// out), NetworkManager asks for a new secret, and with no secret agent for our profile the request fails.
pub(crate) fn join_failure(reason: u32) -> ConnectError {
    match reason {
        NO_SECRETS => ConnectError::AuthFailed,
        SSID_NOT_FOUND => ConnectError::NetworkNotFound,
        SUPPLICANT_TIMEOUT | IP_CONFIG_UNAVAILABLE | DHCP_START_FAILED | DHCP_ERROR | DHCP_FAILED => {
            ConnectError::Timeout
        }
        NEW_ACTIVATION | USER_REQUESTED | REMOVED | CONNECTION_REMOVED => ConnectError::Cancelled,
        _ => ConnectError::AssociationFailed,
    }
}

/// The ESP reason reported when an established link goes down without being asked to.
pub(crate) fn link_lost(reason: u32) -> DisconnectReason {
    match reason {
        NO_SECRETS => DisconnectReason::AUTH_FAIL,
        SSID_NOT_FOUND | SUPPLICANT_TIMEOUT | SUPPLICANT_DISCONNECT => DisconnectReason::BEACON_TIMEOUT,
        IP_CONFIG_EXPIRED | DHCP_ERROR | DHCP_FAILED => DisconnectReason::CONNECTION_FAIL,
        _ => DisconnectReason::UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_failures_that_clients_tell_apart() {
        assert!(matches!(join_failure(NO_SECRETS), ConnectError::AuthFailed));
        assert!(matches!(join_failure(SSID_NOT_FOUND), ConnectError::NetworkNotFound));
        assert!(matches!(join_failure(SUPPLICANT_TIMEOUT), ConnectError::Timeout));
        assert!(matches!(join_failure(DHCP_FAILED), ConnectError::Timeout));
        assert!(matches!(join_failure(NEW_ACTIVATION), ConnectError::Cancelled));
        assert!(matches!(join_failure(SUPPLICANT_FAILED), ConnectError::AssociationFailed));
        assert!(matches!(join_failure(4242), ConnectError::AssociationFailed));
        assert_eq!(join_failure(NO_SECRETS).reason(), DisconnectReason::AUTH_FAIL);
    }

    #[test]
    fn lost_links() {
        assert_eq!(link_lost(SSID_NOT_FOUND), DisconnectReason::BEACON_TIMEOUT);
        assert_eq!(link_lost(SUPPLICANT_TIMEOUT), DisconnectReason::BEACON_TIMEOUT);
        assert_eq!(link_lost(DHCP_FAILED), DisconnectReason::CONNECTION_FAIL);
        assert_eq!(link_lost(0), DisconnectReason::UNSPECIFIED);
        assert_eq!(name(SSID_NOT_FOUND), "ssid-not-found");
    }
}
