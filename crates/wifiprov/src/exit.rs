//! Exit codes, and how an error maps onto one.
//!
//! Every failure of a run ends in exactly one [`Code`]. Results the device reports (a failed connection) are
//! reports with a code; everything else is an `anyhow::Error` that [`classify`] sorts by the typed errors in
//! its chain.

use serde::Serialize;
use wifiprov_client::{BleError, ClientError, TransportError};
use wifiprov_proto::endpoint::names;
use wifiprov_proto::security::SecurityError;

/// The process exit status. The numbers are part of the CLI's interface: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Code {
    /// Everything succeeded.
    Success,
    /// The device reported a failure: a request answered with a non-success status, a connection attempt that
    /// ended without a known reason, or no final state before the deadline.
    DeviceFailure,
    /// Bad usage or a local problem: flags, files, missing secrets, the terminal.
    Usage,
    /// The device could not be reached, closed the connection, stopped answering or answered garbage.
    Transport,
    /// The device refused the security handshake: wrong PoP, wrong username or password, or another scheme.
    Security,
    /// The device could not find the Wi-Fi network.
    NetworkNotFound,
    /// The access point refused the passphrase.
    AuthError,
}

impl Code {
    /// The exit status.
    pub(crate) fn number(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::DeviceFailure => 1,
            Self::Usage => 2,
            Self::Transport => 3,
            Self::Security => 4,
            Self::NetworkNotFound => 5,
            Self::AuthError => 6,
        }
    }

    /// The name used in JSON (`error.kind`).
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::DeviceFailure => "device_failure",
            Self::Usage => "usage",
            Self::Transport => "transport",
            Self::Security => "security",
            Self::NetworkNotFound => "network_not_found",
            Self::AuthError => "auth_error",
        }
    }
}

/// The security handshake failed in a way that means the credentials or the scheme are wrong. It carries the
/// advice for the person; the client's error stays in the chain.
#[derive(Debug, thiserror::Error)]
#[error("the device refused the security {scheme} handshake: {hint}")]
pub(crate) struct HandshakeRefused {
    /// The scheme that was tried.
    pub(crate) scheme: u8,
    /// What to check.
    pub(crate) hint: String,
    /// What the client saw.
    #[source]
    pub(crate) source: ClientError,
}

/// An error that already knows its exit code (for failures found by the binary itself).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Classified {
    /// The code.
    pub(crate) code: Code,
    /// What happened.
    pub(crate) message: String,
}

/// Shorthand for a [`Classified`] error.
pub(crate) fn classified(code: Code, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Classified { code, message: message.into() })
}

/// The exit code of an error: the first typed error in the chain decides; an error with none is local (2).
pub(crate) fn classify(err: &anyhow::Error) -> Code {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<Classified>() {
            return c.code;
        }
        if cause.downcast_ref::<HandshakeRefused>().is_some() {
            return Code::Security;
        }
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return client_error(e);
        }
        if let Some(e) = cause.downcast_ref::<TransportError>() {
            return transport_error(e);
        }
        // Not finding, reaching or keeping the device over BLE (connecting fails with this; request failures
        // arrive as `TransportError`).
        if cause.downcast_ref::<BleError>().is_some() {
            return Code::Transport;
        }
        if cause.downcast_ref::<SecurityError>().is_some() {
            return Code::Security;
        }
    }
    Code::Usage
}

fn client_error(e: &ClientError) -> Code {
    match e {
        ClientError::Transport(t) => transport_error(t),
        ClientError::Security(_) => Code::Security,
        ClientError::Status { .. } | ClientError::Timeout(_) | ClientError::ScanTimeout(_) => Code::DeviceFailure,
        ClientError::Decode { .. } | ClientError::Mismatch { .. } | ClientError::Version(_) => Code::Transport,
        ClientError::NoSession => Code::Usage,
        // A variant added to the client library later: report it as a device-side failure until it is sorted.
        _ => Code::DeviceFailure,
    }
}

fn transport_error(e: &TransportError) -> Code {
    match e {
        // A protocomm device answers a refused handshake message by closing the connection.
        TransportError::ConnectionClosed { endpoint } if endpoint == names::PROV_SESSION => Code::Security,
        // Locked out after repeated wrong proofs (wifiprovd's 429): a credentials problem, and the message says
        // for how long.
        TransportError::Status { status: 429, .. } => Code::Security,
        TransportError::InvalidTarget { .. } | TransportError::InvalidEndpoint { .. } => Code::Usage,
        _ => Code::Transport,
    }
}

/// Whether the error is a closed stdout (`wifiprov … | head`), which is not a failure.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let all = [
            Code::Success,
            Code::DeviceFailure,
            Code::Usage,
            Code::Transport,
            Code::Security,
            Code::NetworkNotFound,
            Code::AuthError,
        ];
        let numbers: Vec<u8> = all.iter().map(|c| c.number()).collect();
        assert_eq!(numbers, [0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn errors_are_classified_through_context() {
        let closed = |endpoint: &str| {
            anyhow::Error::new(ClientError::Transport(TransportError::ConnectionClosed { endpoint: endpoint.into() }))
                .context("outer")
        };
        assert_eq!(classify(&closed("prov-session")), Code::Security);
        assert_eq!(classify(&closed("prov-config")), Code::Transport);
        let status = anyhow::Error::new(ClientError::Status {
            request: "CtrlReset",
            status: wifiprov_proto::messages::Status::InternalError,
        });
        assert_eq!(classify(&status), Code::DeviceFailure);
        assert_eq!(classify(&anyhow::anyhow!("no such file")), Code::Usage);
        assert_eq!(classify(&classified(Code::NetworkNotFound, "x").context("y")), Code::NetworkNotFound);
        let ble = BleError::NotFound { name: "PROV_1".into(), after: std::time::Duration::from_secs(10) };
        assert_eq!(classify(&anyhow::Error::new(ble).context("cannot reach PROV_1")), Code::Transport);
        let locked = anyhow::Error::new(ClientError::Transport(TransportError::Status {
            endpoint: "prov-session".into(),
            status: 429,
            reason: "Too Many Requests".into(),
            body: b"locked for 30 s after repeated wrong proofs of possession or passwords".to_vec(),
        }));
        assert_eq!(classify(&locked), Code::Security);
        assert!(format!("{:#}", locked).contains("429 Too Many Requests: locked for 30 s"), "{locked:#}");
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&pipe));
    }
}
