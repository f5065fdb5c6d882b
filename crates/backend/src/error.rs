//! Failures of backend operations.

use crate::{AuthMode, DisconnectReason};

/// A backend operation failed for a reason that is not about the network being joined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The radio cannot take this request now (for example, the platform refuses a scan during another).
    #[error("radio is busy")]
    Busy,
    /// The radio is switched off (rfkill, airplane mode).
    #[error("radio is disabled")]
    RadioDisabled,
    /// The wireless interface is missing or not managed by the backend.
    #[error("wireless interface {interface} is unavailable")]
    InterfaceUnavailable {
        /// The interface name, for example `wlan0`.
        interface: String,
    },
    /// The backend has shut down and takes no more requests.
    #[error("radio backend has shut down")]
    Closed,
    /// The platform's Wi-Fi service (NetworkManager, wpa_supplicant, …) failed. The concrete error is kept
    /// as the source so it is logged in full, while callers match on this variant.
    #[error("{operation} failed in the platform Wi-Fi service")]
    Platform {
        /// What was being done, for example `"scan"`.
        operation: &'static str,
        /// The platform's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Why a [`connect`](crate::WifiBackend::connect) did not bring a link up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The network rejected the credentials, normally a wrong passphrase (or none given for a secured
    /// network).
    #[error("authentication failed")]
    AuthFailed,
    /// No access point with the requested SSID (and BSSID, if given) could be found.
    #[error("network not found")]
    NetworkNotFound,
    /// The access point rejected the association.
    #[error("association was rejected")]
    AssociationFailed,
    /// The link did not come up (associated and addressed) in time.
    #[error("timed out waiting for the link")]
    Timeout,
    /// The network uses security the backend cannot join with a passphrase, such as WEP or enterprise.
    #[error("auth mode {auth} is not supported")]
    UnsupportedAuth {
        /// The network's security.
        auth: AuthMode,
    },
    /// A later connect or a disconnect superseded this attempt.
    #[error("connect was superseded")]
    Cancelled,
    /// The backend itself failed.
    #[error("radio backend failed")]
    Backend(#[from] BackendError),
}

impl ConnectError {
    /// The ESP disconnect reason an ESP device would report for this failure, so the provisioning layer
    /// can answer `prov-config` status requests the way ESP devices do.
    pub fn reason(&self) -> DisconnectReason {
        match self {
            Self::AuthFailed => DisconnectReason::AUTH_FAIL,
            Self::NetworkNotFound => DisconnectReason::NO_AP_FOUND,
            Self::AssociationFailed => DisconnectReason::ASSOC_FAIL,
            Self::Timeout => DisconnectReason::CONNECTION_FAIL,
            Self::UnsupportedAuth { .. } => DisconnectReason::NO_AP_FOUND_W_COMPATIBLE_SECURITY,
            Self::Cancelled => DisconnectReason::ASSOC_LEAVE,
            Self::Backend(_) => DisconnectReason::UNSPECIFIED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_reasons() {
        assert_eq!(ConnectError::AuthFailed.reason().code(), 202);
        assert_eq!(ConnectError::NetworkNotFound.reason().code(), 201);
        assert_eq!(ConnectError::AssociationFailed.reason().code(), 203);
        assert_eq!(ConnectError::from(BackendError::Busy).reason().code(), 1);
    }

    #[test]
    fn backend_error_keeps_source() {
        let err =
            ConnectError::from(BackendError::Platform { operation: "connect", source: "no secrets agent".into() });
        let chain: Vec<String> = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect();
        assert_eq!(chain, ["radio backend failed", "connect failed in the platform Wi-Fi service", "no secrets agent"]);
    }
}
