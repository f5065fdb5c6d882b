//! [`Transport`] over BLE: `wifiprov-transport-ble`'s BlueZ client.

use std::io;

use wifiprov_transport_ble::{BleClient, BleError};
use wifiprov_transport_http::TransportError;

use crate::transport::Transport;

impl Transport for BleClient {
    async fn request(&mut self, endpoint: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        BleClient::request(self, endpoint, body).await.map_err(|e| transport_error(endpoint, e))
    }
}

/// The client reports every transport's failures as [`TransportError`]. A BLE failure maps onto the kind that
/// means the same to a caller; anything else keeps the whole BLE error as the source of an I/O failure.
fn transport_error(endpoint: &str, error: BleError) -> TransportError {
    match error {
        // How a protocomm device refuses a request over BLE: an ATT error on the write (then, on Bluedroid, the
        // link drops). It is what a closed connection is over HTTP, and callers treat it the same way (a refused
        // handshake message means wrong credentials).
        BleError::Refused { endpoint, source, .. } => {
            tracing::debug!(%endpoint, error = %source, "the device refused the request");
            TransportError::ConnectionClosed { endpoint }
        }
        // What HTTP says with 429: the device refuses handshakes for a while after repeated wrong proofs. BLE cannot
        // carry the wait, so the text says "for now".
        BleError::Locked { endpoint, .. } => TransportError::Status {
            endpoint,
            status: 429,
            reason: "Too Many Requests".to_owned(),
            body: b"refuses handshakes for now after repeated wrong proofs; try again later".to_vec(),
        },
        BleError::Disconnected { endpoint, .. } => TransportError::ConnectionClosed { endpoint },
        BleError::Timeout { endpoint, after, .. } => TransportError::Timeout { endpoint, after },
        other => TransportError::Io { endpoint: endpoint.to_owned(), source: io::Error::other(other) },
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::time::Duration;

    use wifiprov_transport_ble::bluer;

    use super::*;

    fn att_error() -> bluer::Error {
        bluer::Error { kind: bluer::ErrorKind::Failed, message: "Operation failed with ATT error: 0x80".into() }
    }

    #[test]
    fn ble_failures_map_onto_what_they_mean_to_the_client() {
        let name = || "PROV_1".to_owned();
        let refused = BleError::Refused { name: name(), endpoint: "prov-session".into(), source: att_error() };
        assert!(matches!(
            transport_error("prov-session", refused),
            TransportError::ConnectionClosed { endpoint } if endpoint == "prov-session"
        ));
        let gone = BleError::Disconnected { name: name(), endpoint: "prov-config".into() };
        assert!(matches!(transport_error("prov-config", gone), TransportError::ConnectionClosed { .. }));
        let slow = BleError::Timeout { name: name(), endpoint: "prov-scan".into(), after: Duration::from_secs(3) };
        assert!(matches!(
            transport_error("prov-scan", slow),
            TransportError::Timeout { endpoint, after } if endpoint == "prov-scan" && after == Duration::from_secs(3)
        ));
        // Anything else stays readable through the error chain.
        let read = BleError::Read { name: name(), endpoint: "proto-ver".into(), source: att_error() };
        let mapped = transport_error("proto-ver", read);
        assert!(matches!(&mapped, TransportError::Io { endpoint, .. } if endpoint == "proto-ver"));
        let chain: Vec<String> =
            std::iter::successors(mapped.source(), |e| (*e).source()).map(|e| e.to_string()).collect();
        assert_eq!(chain, ["proto-ver: cannot read the response from PROV_1", &att_error().to_string()]);
    }
}
