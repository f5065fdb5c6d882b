//! Protocomm over HTTP/1.1, wire-compatible with ESP-IDF's `protocomm_httpd` (what `esp_prov.py --transport
//! httpd` and Espressif's SoftAP provisioning apps talk to).
//!
//! # Server
//! [`serve`] takes a listener (bound with [`listen`], which gives it a deep queue), the device's shared [`Dispatcher`](wifiprov_dispatch::Dispatcher) (the
//! protocomm endpoints and sessions, shared with every other transport), an [`HttpConfig`] and a shutdown
//! future. As on an ESP device:
//!
//! - Each endpoint is `POST /<name>`, the name being the raw request target after `/` (with a query string it
//!   does not match). Unknown target: `404 Not Found` with the body `Nothing matches the given URI`; known target
//!   with another method: `405 Method Not Allowed` with `Allow: POST`; the connection is closed after either. A
//!   `HEAD` request gets the same head as a `GET` (its `Content-Length` included) and no body.
//! - A request head must end its lines with CRLF and hold at most 32 header fields: one with a bare LF or CR gets
//!   `400 Bad Request` (as soon as its blank line arrives, whichever line ending that uses), one with more fields
//!   `431 Request Header Fields Too Large`, as does one longer than [`HttpConfig::max_head`].
//! - The body is the raw protocomm message. `Content-Length` must be 1..=4096; a missing, zero or larger length
//!   or a chunked body is refused by closing the connection without any response.
//! - Success is `200 OK` with `Content-Type: text/html` and the response body; the first response of a new
//!   session carries `Set-Cookie: session=<decimal u32>`. Connections are kept alive.
//! - Whenever protocomm refuses a request (bad handshake message, wrong proof, decryption failure, handler
//!   error, full session table), the connection is closed without sending a single byte.
//!
//! Sessions go beyond ESP, which keeps a single session and lets any newcomer replace it
//! (espressif/esp-idf#6316). Each request claims a session by these rules, in order:
//!
//! 1. A `Cookie` header whose whole value is `session=<id>`, exactly as issued: that session. The connection is
//!    attached to it from then on (if it is open).
//! 2. No `Cookie` header: the session the connection is attached to (ESP's rule for clients that ignore
//!    cookies).
//! 3. Otherwise (several `Cookie` headers, or a value in another form): none.
//!
//! Only a `prov-session` request opens a session, when it claims none that is open; its answer carries the new
//! cookie and the connection is attached to it. `proto-ver` is answered with or without a session and opens
//! none; other endpoints need an open session (security 0 excepted, as on ESP). Who gets a session when the
//! table is full is the dispatcher's rule (established sessions stay; the noisiest peer's abandoned handshakes
//! go first), so a client without the cookie never disturbs another client's session. A session outlives its
//! TCP connection: a client can continue it on a new connection with the cookie. esp_prov's pattern (a
//! cookie-less `proto-ver`, then `prov-session`, then the cookie on every request over one connection) works
//! unchanged; the cookie just arrives one response later than from an ESP device, with the handshake's first
//! answer.
//!
//! # Client
//! [`HttpClient`] sends protocomm requests the way esp_prov does, over exactly one TCP connection, and sends
//! back the cookie the device set. A refused request shows up as [`TransportError::ConnectionClosed`].
//!
//! # HTTP implementation
//! Both halves speak a deliberately small subset of HTTP/1.1 written for this purpose rather than a general
//! HTTP library: the device must be able to close a connection without emitting any byte, compare the cookie
//! header byte for byte, see the raw request target, and refuse chunked or unsized bodies before reading them,
//! and the client must never open a second connection and must tell "closed before any response" apart from
//! other failures. Only the syntax of message heads is left to a library, `httparse` (the parser under hyper),
//! with protocomm's rules applied to what it returns; framing, connections and answers are this crate's.
//! The hidden `fuzzing` module lets a fuzzer drive both head parsers.
#![forbid(unsafe_code)]

mod client;
mod error;
mod io;
mod server;
mod wire;

// Fuzzing entry points for the head parsers; not a supported interface.
#[doc(hidden)]
pub mod fuzzing;

// Public interface.
pub use client::{ClientConfig, HttpClient};
pub use error::TransportError;
pub use server::{HttpConfig, LISTEN_BACKLOG, listen, serve};
