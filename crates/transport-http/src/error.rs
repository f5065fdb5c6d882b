//! Errors of the client half.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Why an HTTP exchange with a device failed.
///
/// After any error of [`HttpClient::request`](crate::HttpClient::request) except
/// [`TransportError::Status`] on a kept-alive connection, the connection is dropped and the client must
/// [`reconnect`](crate::HttpClient::reconnect) before the next request. That is deliberate: a silent reconnect
/// would, on an ESP device, look like a new client and end the session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The device address could not be resolved.
    #[error("cannot resolve {target}")]
    Resolve {
        /// The address as given.
        target: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The address is not usable as an HTTP host (empty, or holds control characters).
    #[error("invalid device address {target:?}")]
    InvalidTarget {
        /// The address as given.
        target: String,
    },
    /// No address of the device accepted a TCP connection.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// The error of the last attempt.
        #[source]
        source: io::Error,
    },
    /// Connecting took longer than the configured timeout.
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// The address tried.
        addr: SocketAddr,
        /// The configured connect timeout.
        after: Duration,
    },
    /// The previous request broke the connection, or the device closed it; call `reconnect` first.
    #[error("not connected to {addr}")]
    NotConnected {
        /// The device address.
        addr: SocketAddr,
    },
    /// The endpoint name cannot be sent as an HTTP path.
    #[error("invalid endpoint name {endpoint:?}")]
    InvalidEndpoint {
        /// The name as given.
        endpoint: String,
    },
    /// The cookie cannot be sent as an HTTP header value.
    #[error("invalid cookie {cookie:?}")]
    InvalidCookie {
        /// The cookie as given.
        cookie: String,
    },
    /// The device closed the connection without answering: how protocomm devices refuse a request (bad
    /// handshake message, wrong proof of possession, decryption failure, handler error, session table full).
    #[error("{endpoint}: device closed the connection without a response")]
    ConnectionClosed {
        /// The endpoint the request was for.
        endpoint: String,
    },
    /// No complete response arrived within the request timeout.
    #[error("{endpoint}: no response within {after:?}")]
    Timeout {
        /// The endpoint the request was for.
        endpoint: String,
        /// The configured request timeout.
        after: Duration,
    },
    /// The device answered with a status other than `200 OK` (ESP: 404 for an unknown endpoint, 405 for a wrong
    /// method).
    #[error("{endpoint}: device answered {status} {reason}{}", device_says(body))]
    Status {
        /// The endpoint the request was for.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The response body (ESP: a short text).
        body: Vec<u8>,
    },
    /// The response is not valid HTTP/1.x, or was cut short.
    #[error("{endpoint}: malformed response ({what})")]
    MalformedResponse {
        /// The endpoint the request was for.
        endpoint: String,
        /// What was wrong.
        what: &'static str,
    },
    /// The response body exceeds the configured limit.
    #[error("{endpoint}: response larger than {limit} bytes")]
    ResponseTooLarge {
        /// The endpoint the request was for.
        endpoint: String,
        /// The configured limit.
        limit: usize,
    },
    /// Reading or writing the connection failed.
    #[error("{endpoint}: connection failed")]
    Io {
        /// The endpoint the request was for.
        endpoint: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
}

/// The body of an error response, when it is a short line of text worth showing (": locked for 30 s after …").
fn device_says(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(text) if !text.is_empty() && text.len() <= 200 && !text.contains(|c: char| c.is_control()) => {
            format!(": {text}")
        }
        _ => String::new(),
    }
}
