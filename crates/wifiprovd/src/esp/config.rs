//! `prov-config`: SetConfig, ApplyConfig, GetStatus (fact sheet §8.4).

use wifiprov_backend::{Passphrase, Ssid};
use wifiprov_manager::{Credentials, FailReason, ProvisioningStatus, RequestError};
use wifiprov_proto::endpoint::{EndpointHandler, HandlerFuture, Plaintext, SessionId};
use wifiprov_proto::messages::config::{self, ConnectedInfo, Request, Response, StationState, StatusReport};
use wifiprov_proto::messages::{AuthMode, Status};
use wifiprov_service::WeakProvisioner;

use super::{client, malformed, provisioner};

const BSSID_LEN: usize = 6;

/// The `fail_reason` of a GetStatus whose network was joined but could not be saved ([`FailReason::NotSaved`]).
/// ESP has only two reasons, and both would be false here ("wrong passphrase", "network not found"); a number
/// that is neither makes ESP's clients report a failure without naming a cause (esp_prov: "failed"; wifiprov:
/// "the connection failed (device reason 100)"), and the reply's `status` says that the device failed:
/// `InternalError`.
pub(super) const NOT_SAVED_REASON: i32 = 100;

pub(super) struct Config(pub(super) WeakProvisioner);

impl EndpointHandler for Config {
    fn handle(&self, session: Option<SessionId>, request: Plaintext) -> HandlerFuture {
        let weak = self.0.clone();
        Box::pin(async move {
            let request = Request::decode(&request).map_err(malformed)?;
            let provisioner = provisioner(&weak)?;
            let client = client(session);
            let response = match request {
                Request::SetConfig(set) => Response::SetConfig(match credentials(&set) {
                    Ok(credentials) => status(provisioner.set_credentials(client, credentials).await),
                    Err(status) => status,
                }),
                Request::ApplyConfig => Response::ApplyConfig(status(provisioner.apply(client).await)),
                Request::GetStatus => Response::GetStatus(report(provisioner.status(client).await)),
            };
            Ok(response.encode())
        })
    }
}

/// The credentials of a SetConfig, or the status refusing them. ESP checks the BSSID's length and then ignores
/// BSSID and channel; so do we.
fn credentials(set: &config::SetConfig) -> Result<Credentials, Status> {
    if !set.bssid.is_empty() && set.bssid.len() != BSSID_LEN {
        return Err(Status::InvalidArgument);
    }
    let ssid = Ssid::try_from(set.ssid.clone()).map_err(|_| Status::InvalidArgument)?;
    let passphrase = if set.passphrase.is_empty() {
        None
    } else {
        Some(Passphrase::from_bytes(set.passphrase.as_bytes().to_vec()).map_err(|_| Status::InvalidArgument)?)
    };
    Ok(Credentials { ssid, passphrase })
}

/// ESP has one failure status for every refusal (not serving, busy, already applied, nothing to apply).
fn status(result: Result<(), RequestError>) -> Status {
    match result {
        Ok(()) => Status::Success,
        Err(error) => {
            tracing::debug!(%error, "prov-config request refused");
            Status::InternalError
        }
    }
}

fn report(status: ProvisioningStatus) -> StatusReport {
    if status == ProvisioningStatus::Failed(FailReason::NotSaved) {
        let state = StationState::Failed(config::FailReason::Other(NOT_SAVED_REASON));
        return StatusReport { status: Status::InternalError, state: Some(state) };
    }
    let state = match status {
        // ESP answers a status query on a stopped manager with an empty report.
        ProvisioningStatus::NotServing => None,
        ProvisioningStatus::Disconnected => Some(StationState::Disconnected),
        ProvisioningStatus::Connecting { attempts_remaining } => Some(StationState::Connecting { attempts_remaining }),
        ProvisioningStatus::Connected(link) => Some(StationState::Connected(ConnectedInfo {
            ip4_addr: link.ip4.to_string(),
            auth_mode: AuthMode::from(i32::from(link.auth.esp_code())),
            ssid: link.ssid.as_bytes().to_vec(),
            bssid: link.bssid.octets().to_vec(),
            channel: i32::from(link.channel.get()),
        })),
        ProvisioningStatus::Failed(reason) => Some(StationState::Failed(match reason {
            FailReason::AuthError => config::FailReason::AuthError,
            FailReason::NetworkNotFound => config::FailReason::NetworkNotFound,
            // Answered above, with its own status.
            FailReason::NotSaved => config::FailReason::Other(NOT_SAVED_REASON),
        })),
    };
    StatusReport { status: Status::Success, state }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(ssid: &[u8], passphrase: &[u8], bssid: &[u8]) -> config::SetConfig {
        config::SetConfig {
            ssid: ssid.to_vec(),
            passphrase: config::Passphrase::new(passphrase),
            bssid: bssid.to_vec(),
            channel: 0,
        }
    }

    #[test]
    fn invalid_credentials_are_refused_with_invalid_argument() {
        for bad in [
            set(b"", b"long-enough", b""),
            set(&[b'x'; 33], b"long-enough", b""),
            set(b"home", b"short", b""),
            set(b"home", &[b'p'; 64], b""),
            set(b"home", b"long-enough", &[1, 2]),
        ] {
            assert_eq!(credentials(&bad).err(), Some(Status::InvalidArgument));
        }
        let open = credentials(&set(b"cafe", b"", &[1, 2, 3, 4, 5, 6])).unwrap();
        assert!(open.passphrase.is_none());
        assert_eq!(credentials(&set(b"home", b"correct-horse", b"")).unwrap().ssid.as_bytes(), b"home");
    }

    #[test]
    fn every_refusal_is_esps_internal_error_and_a_stopped_manager_reports_nothing() {
        for error in [RequestError::NotServing, RequestError::Busy, RequestError::NoCredentials] {
            assert_eq!(status(Err(error)), Status::InternalError);
        }
        assert_eq!(report(ProvisioningStatus::NotServing).state, None);
        assert_eq!(
            report(ProvisioningStatus::Failed(FailReason::NetworkNotFound)).state,
            Some(StationState::Failed(config::FailReason::NetworkNotFound))
        );
    }

    #[test]
    fn a_network_that_could_not_be_saved_is_a_device_failure_never_a_success() {
        let report = report(ProvisioningStatus::Failed(FailReason::NotSaved));
        assert_eq!(report.status, Status::InternalError);
        assert_eq!(report.state, Some(StationState::Failed(config::FailReason::Other(NOT_SAVED_REASON))));
        // On the wire: sta_state ConnectionFailed (3), fail_reason 100, status InternalError (5).
        let bytes = Response::GetStatus(report).encode();
        assert_eq!(hex::encode(&bytes), "08015a06080510035064");
    }
}
