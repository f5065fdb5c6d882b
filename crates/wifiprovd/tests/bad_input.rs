//! Bad input against the live daemon (issue #12, part 5): a table of what an attacker in radio range sends, each
//! with the reaction the daemon documents for it, run against one long-lived daemon per security scheme on a
//! real loopback socket. After every case the suite checks that (a) the reaction was exactly the documented
//! one, (b) a legitimate client still completes a handshake and an encrypted request promptly, and (c) the
//! saved-network file on disk is byte-identical to what it was before the case. One full provisioning per
//! daemon at the end shows the store is still writable.
//!
//! The reaction rules, as ESP devices behave and `crates/transport-http` documents them:
//!
//! - **HTTP head faults** get an HTTP error and then the connection closes: `400` for a head that breaks
//!   HTTP/1.1 syntax or protocomm's rules on top of it (bare LF or bare CR line endings, NUL or other control
//!   bytes, a non-ASCII target, an HTTP version other than 1.0 and 1.1); `431` for a head over 8 KiB or with
//!   more than 32 header fields; `404` for a target that names no endpoint (ESP takes the name from the raw
//!   target, so a query string, a trailing slash or another case is unknown); `405` with `Allow: POST` for
//!   any other method on a known endpoint. An answer to `HEAD` carries no body.
//! - **Body framing faults** close the connection without a response, as ESP does: a `Content-Length` missing,
//!   not a plain decimal, outside `1..=4096`, or given twice with different values; any `Transfer-Encoding`
//!   (chunked, or next to a `Content-Length`: the request-smuggling shape); a body that ends early.
//! - **Protocomm refusals** close the connection without a response (ESP's only failure signal): a message
//!   that is not protobuf, a message type the endpoint does not define or that belongs to the other direction,
//!   a handshake message out of order or for another `sec_ver`, a wrong proof, a ciphertext whose GCM tag
//!   fails (security 2) or that decrypts to garbage (security 1), a request naming no open session (a made-up,
//!   malformed, stale or repeated cookie), a scan page beyond the device's 16 entries.
//! - **Values out of range in a well-formed request** are answered: `prov-config` SetConfig with
//!   `InvalidArgument` (an SSID of 0 or more than 32 bytes, a passphrase of 1 to 7 or more than 64 bytes, not
//!   printable ASCII, or 64 bytes that are not hex; a BSSID that is not 6 bytes long), `prov-networks` with
//!   its own statuses (`InvalidArgument`, `OutOfRange` for a priority index beyond the list, also one that
//!   wrapped from a negative number, `NotFound`). Non-UTF-8 SSIDs are valid (802.11 puts no encoding on them).
//! - **Online guessing**: after 5 wrong proofs in a row, handshakes are refused with `429` and `Retry-After`
//!   until the doubling wait is over; a right proof then forgives the count. The long-lived daemons here allow
//!   many free failures so that the cases sending wrong proofs do not lock the suite out; one case checks the
//!   lockout on a fresh daemon with the default limit.
//!
//! Nothing sleeps for a fixed time except the timing cases (a head or body dripped past its timeout, the
//! lockout's wait); every other wait is for an event, with a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wifiprov_backend_sim::SimRadio;
use wifiprov_client::{Client, HttpClient, ProvisionOutcome, TransportError};
use wifiprov_proto::ErrorChain;
use wifiprov_proto::endpoint::names::{PROTO_VER, PROV_CONFIG, PROV_CTRL, PROV_NETWORKS, PROV_SCAN, PROV_SESSION};
use wifiprov_proto::endpoint::{GuessLimit, SessionLimits};
use wifiprov_proto::messages::config::{self, StationState};
use wifiprov_proto::messages::networks::{self, AddRequest, NetStatus};
use wifiprov_proto::messages::{Status, ctrl, scan};
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{ClientSecurity, ClientSession, DeviceSecurity, Sec2Patch};
use wifiprov_store::NetworkStore;
use wifiprov_testkit::SeededRandom;
use wifiprov_transport_http::HttpConfig;
use wifiprovd::frontend::{Frontend, HttpFrontend};
use wifiprovd::guessing::Guessing;
use wifiprovd::service::{ProvisioningService, ServiceConfig};

use crate::common::{SCENARIO, USER, client_security, fast_manager, poll, rand_seed, sec1, sec2};

/// The long-lived daemons' header and body timeouts, short so that the slow-request cases stay short.
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
const BODY_TIMEOUT: Duration = Duration::from_millis(1500);
/// What "promptly" means for the legitimate client after each case (a handshake takes milliseconds).
const PROMPT: Duration = Duration::from_secs(10);
/// Longest a case may take to show its reaction.
const CASE_DEADLINE: Duration = Duration::from_secs(20);
/// Networks saved before the daemons start, so that the store file exists: (SSID, passphrase).
const SAVED: [(&str, &str); 2] = [("attic", "attic-pass"), ("office", "office-secret")];
/// The RFC 5054 3072-bit SRP modulus N: a client public key A = N is ≡ 0 (mod N), the classic SRP bypass.
const SRP_N_HEX: &str = wifiprov_proto::security::srp::MODULUS_HEX;

// ---------------------------------------------------------------------------------------------------------
// Reactions and cases

/// What the daemon does with a request, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reaction {
    /// `200 OK`: served as an ESP device serves it.
    Ok,
    /// An HTTP error status, then the connection closes.
    Status(u16),
    /// `429 Too Many Requests` with `Retry-After` of this many seconds.
    Locked(u64),
    /// The connection closes without a byte of response: ESP's only way to refuse a protocomm request.
    CloseWithoutResponse,
    /// `200 OK` whose decrypted ESP protobuf answer carries this status.
    ProtocolStatus(Status),
    /// `200 OK` whose decrypted `prov-networks` answer carries this status.
    NetStatus(NetStatus),
    /// Several requests on one connection: the answer to each, in order (the connection then closes).
    Each(Vec<Reaction>),
    /// Something no case documents; the text says what.
    Unexpected(String),
}

use Reaction::{CloseWithoutResponse, Each, Locked, NetStatus as Net, Ok as Served, ProtocolStatus};

/// Which long-lived daemon a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    Sec2,
    Sec1,
}

type Script = for<'a> fn(&'a Env) -> Pin<Box<dyn Future<Output = Reaction> + 'a>>;

enum Action {
    /// These bytes on a new connection, then the end of input (the client half-closes).
    Raw(Vec<u8>),
    /// This plaintext, encrypted in a new session of the attacker's own, to an endpoint.
    Sealed(&'static str, Vec<u8>),
    /// Steps of their own.
    Script(Script),
}

struct Case {
    group: &'static str,
    name: &'static str,
    on: On,
    action: Action,
    expect: Reaction,
}

fn section(all: &mut Vec<Case>, group: &'static str, on: On, rows: Vec<(&'static str, Action, Reaction)>) {
    all.extend(rows.into_iter().map(|(name, action, expect)| Case { group, name, on, action, expect }));
}

fn raw(bytes: impl AsRef<[u8]>) -> Action {
    Action::Raw(bytes.as_ref().to_vec())
}

fn sealed(endpoint: &'static str, plaintext: impl AsRef<[u8]>) -> Action {
    Action::Sealed(endpoint, plaintext.as_ref().to_vec())
}

/// A POST as esp_prov frames it, with `headers` (each ending in CRLF) added.
fn post_with(endpoint: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let head = format!("POST /{endpoint} HTTP/1.1\r\nHost: device\r\n{headers}Content-Length: {}\r\n\r\n", body.len());
    [head.as_bytes(), body].concat()
}

fn post(endpoint: &str, body: &[u8]) -> Vec<u8> {
    post_with(endpoint, "", body)
}

/// A head with the given header lines (each ending in CRLF) and no body.
fn request(method: &str, target: &str, headers: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: device\r\n{headers}\r\n").into_bytes()
}

/// A `proto-ver` query (`---`, as esp_prov sends it) whose head starts with `head_start`: the request line and any
/// header lines, each ending in CRLF.
fn query(head_start: &str) -> Action {
    raw(format!("{head_start}Content-Length: 3\r\n\r\n---"))
}

/// `n` header fields, counting the `Content-Length` that [`query`] adds.
fn fields(n: usize) -> String {
    (1..n).map(|i| format!("X-{i}: 1\r\n")).collect()
}

/// A POST to `proto-ver` with exactly these header lines (no `Content-Length` added), then `body`.
fn framed(headers: &str, body: &[u8]) -> Action {
    raw([format!("POST /proto-ver HTTP/1.1\r\nHost: device\r\n{headers}\r\n").as_bytes(), body].concat())
}

/// The first bytes of a TLS 1.2 ClientHello record.
const TLS_CLIENT_HELLO: &[u8] = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x5b\x90\x9d\x9b\x72\x0b\xbc\x0c\xbc";

fn cases() -> Vec<Case> {
    let mut all = Vec::new();
    let version = post(PROTO_VER, b"---");
    let get_status = config::Request::GetStatus.encode();

    section(
        &mut all,
        "HTTP framing",
        On::Sec2,
        vec![
            ("bare LF line endings", raw(b"POST /proto-ver HTTP/1.1\nContent-Length: 3\n\n---"), Reaction::Status(400)),
            (
                "bare CR inside a header line",
                query("POST /proto-ver HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n"),
                Reaction::Status(400),
            ),
            ("request line without an HTTP version", query("POST /proto-ver\r\n"), Reaction::Status(400)),
            ("HTTP/2.0 in the request line", query("POST /proto-ver HTTP/2.0\r\n"), Reaction::Status(400)),
            ("HTTP/1.9 in the request line", query("POST /proto-ver HTTP/1.9\r\n"), Reaction::Status(400)),
            ("doubled space in the request line", query("POST  /proto-ver HTTP/1.1\r\n"), Reaction::Status(400)),
            ("NUL byte in the request target", query("POST /proto-ver\0 HTTP/1.1\r\n"), Reaction::Status(400)),
            (
                "UTF-8 bytes in the request target",
                query("POST /prov-\u{e9}t\u{e9} HTTP/1.1\r\n"),
                Reaction::Status(400),
            ),
            ("NUL byte in a header value", query("POST /proto-ver HTTP/1.1\r\nX-A: a\0b\r\n"), Reaction::Status(400)),
            ("space inside a header name", query("POST /proto-ver HTTP/1.1\r\nX Pad: 1\r\n"), Reaction::Status(400)),
            (
                "space before the colon of Transfer-Encoding (smuggling obfuscation)",
                query("POST /proto-ver HTTP/1.1\r\nTransfer-Encoding : chunked\r\n"),
                Reaction::Status(400),
            ),
            (
                "obsolete line folding of a header value",
                query("POST /proto-ver HTTP/1.1\r\nX-A: 1\r\n  folded\r\n"),
                Reaction::Status(400),
            ),
            (
                "header line without a colon",
                query("POST /proto-ver HTTP/1.1\r\nNoColonHere\r\n"),
                Reaction::Status(400),
            ),
            (
                "request head of 9 KiB (limit 8 KiB)",
                query(&format!("POST /proto-ver HTTP/1.1\r\nX-Pad: {}\r\n", "a".repeat(9216))),
                Reaction::Status(431),
            ),
            (
                "33 header fields (limit 32)",
                query(&format!("POST /proto-ver HTTP/1.1\r\n{}", fields(33))),
                Reaction::Status(431),
            ),
            (
                "32 header fields, the most allowed",
                query(&format!("POST /proto-ver HTTP/1.1\r\n{}", fields(32))),
                Served,
            ),
            ("blank lines before a valid request", raw([&b"\r\n\r\n\r\n"[..], &version].concat()), Served),
            ("only blank lines, then the end of input", raw(b"\r\n\r\n\r\n\r\n"), CloseWithoutResponse),
            ("a connection closed without sending anything", raw(b""), CloseWithoutResponse),
            ("the start of a TLS ClientHello on the plain HTTP port", raw(TLS_CLIENT_HELLO), CloseWithoutResponse),
            (
                "a head cut off mid-line, then the end of input",
                raw(b"POST /proto-ver HTTP/1.1\r\nContent-Le"),
                CloseWithoutResponse,
            ),
            ("an HTTP/1.0 request", query("POST /proto-ver HTTP/1.0\r\n"), Served),
            (
                "a good request, then garbage pipelined",
                raw([&version[..], b"GARBAGE\r\n\r\n"].concat()),
                Each(vec![Served, Reaction::Status(400)]),
            ),
            (
                "two good requests pipelined on one connection",
                raw([&version[..], &version].concat()),
                Each(vec![Served, Served]),
            ),
            ("100 requests pipelined in one write", raw(version.repeat(100)), Each(vec![Served; 100])),
            // The excess is read as a request of its own: a session-less prov-config request, refused.
            (
                "a body longer than its Content-Length",
                raw([&version[..], &post(PROV_CONFIG, &get_status)].concat()),
                Served,
            ),
        ],
    );

    section(
        &mut all,
        "slow requests",
        On::Sec2,
        vec![
            (
                "a connection opened and left silent past the header timeout",
                Action::Script(|env| Box::pin(silent(env))),
                CloseWithoutResponse,
            ),
            (
                "a request head dripped a byte every 100 ms past the header timeout",
                Action::Script(|env| Box::pin(drip_head(env))),
                CloseWithoutResponse,
            ),
            (
                "a request body dripped a byte every 100 ms past the body timeout",
                Action::Script(|env| Box::pin(drip_body(env))),
                CloseWithoutResponse,
            ),
        ],
    );

    section(
        &mut all,
        "methods and targets",
        On::Sec2,
        vec![
            ("GET on a known endpoint", raw(request("GET", "/proto-ver", "")), Reaction::Status(405)),
            (
                "HEAD on a known endpoint (no body in the answer)",
                raw(request("HEAD", "/prov-session", "")),
                Reaction::Status(405),
            ),
            (
                "PUT on prov-config",
                raw(request("PUT", "/prov-config", "Content-Length: 3\r\n")
                    .into_iter()
                    .chain(*b"abc")
                    .collect::<Vec<_>>()),
                Reaction::Status(405),
            ),
            ("DELETE on prov-session", raw(request("DELETE", "/prov-session", "")), Reaction::Status(405)),
            (
                "lowercase post (methods are case-sensitive)",
                raw(b"post /proto-ver HTTP/1.1\r\nContent-Length: 3\r\n\r\n---"),
                Reaction::Status(405),
            ),
            ("an invented method", raw(request("BREW", "/prov-config", "")), Reaction::Status(405)),
            ("OPTIONS with the asterisk target", raw(request("OPTIONS", "*", "")), Reaction::Status(404)),
            ("CONNECT with an authority target", raw(request("CONNECT", "device:443", "")), Reaction::Status(404)),
            ("POST to an unknown endpoint", raw(post("no-such-endpoint", b"---")), Reaction::Status(404)),
            (
                "HEAD on an unknown endpoint (no body in the answer)",
                raw(request("HEAD", "/no-such-endpoint", "")),
                Reaction::Status(404),
            ),
            ("POST to the root", raw(post("", b"---")), Reaction::Status(404)),
            ("POST to an endpoint name in another case", raw(post("PROV-CONFIG", b"---")), Reaction::Status(404)),
            ("POST to an endpoint with a query string", raw(post("proto-ver?x=1", b"---")), Reaction::Status(404)),
            ("POST to an endpoint with a trailing slash", raw(post("proto-ver/", b"---")), Reaction::Status(404)),
            (
                "POST with an absolute-form target",
                raw(b"POST http://device/proto-ver HTTP/1.1\r\nContent-Length: 3\r\n\r\n---"),
                Reaction::Status(404),
            ),
        ],
    );

    section(
        &mut all,
        "headers and bodies",
        On::Sec2,
        vec![
            ("POST without Content-Length", framed("", b""), CloseWithoutResponse),
            ("Content-Length: 0", framed("Content-Length: 0\r\n", b""), CloseWithoutResponse),
            ("Content-Length: 4097 (limit 4096)", raw(post(PROTO_VER, &[b'-'; 4097])), CloseWithoutResponse),
            (
                "Content-Length beyond 2^64",
                framed("Content-Length: 99999999999999999999999\r\n", b"---"),
                CloseWithoutResponse,
            ),
            ("Content-Length: -1", framed("Content-Length: -1\r\n", b"---"), CloseWithoutResponse),
            ("Content-Length in hexadecimal", framed("Content-Length: 0x3\r\n", b"---"), CloseWithoutResponse),
            ("Content-Length as a list", framed("Content-Length: 3, 3\r\n", b"---"), CloseWithoutResponse),
            (
                "two Content-Length headers that disagree",
                framed("Content-Length: 3\r\nContent-Length: 4\r\n", b"----"),
                CloseWithoutResponse,
            ),
            (
                "two Content-Length headers that agree",
                framed("Content-Length: 3\r\nContent-Length: 3\r\n", b"---"),
                Served,
            ),
            (
                "Transfer-Encoding: chunked",
                framed("Transfer-Encoding: chunked\r\n", b"3\r\n---\r\n0\r\n\r\n"),
                CloseWithoutResponse,
            ),
            // CL.TE request smuggling: a front-end going by Content-Length would see a second request after `0`.
            (
                "Content-Length and Transfer-Encoding together",
                framed(
                    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                    b"0\r\n\r\nPOST /prov-config HTTP/1.1\r\n\r\n",
                ),
                CloseWithoutResponse,
            ),
            ("Transfer-Encoding: gzip", framed("Transfer-Encoding: gzip\r\n", b"---"), CloseWithoutResponse),
            (
                "a body shorter than its Content-Length, then the end of input",
                framed("Content-Length: 10\r\n", b"---"),
                CloseWithoutResponse,
            ),
            (
                "Content-Length of 1 MiB, before any body byte",
                framed("Content-Length: 1048576\r\n", b""),
                CloseWithoutResponse,
            ),
            ("a body of 4096 bytes, the most allowed", raw(post(PROTO_VER, &[b'-'; 4096])), Served),
            ("NUL bytes as the body of proto-ver", raw(post(PROTO_VER, &[0; 16])), Served),
            ("Connection: close", raw(post_with(PROTO_VER, "Connection: close\r\n", b"---")), Served),
            (
                "Expect: 100-continue with the body sent at once",
                raw(post_with(PROTO_VER, "Expect: 100-continue\r\n", b"---")),
                Served,
            ),
        ],
    );

    section(
        &mut all,
        "garbage protobuf",
        On::Sec2,
        vec![
            (
                "proto-ver with binary garbage (it answers any body)",
                raw(post(PROTO_VER, &[0xff, 0x00, 0x13, 0x37])),
                Served,
            ),
            ("prov-session: bytes that are not protobuf", raw(post(PROV_SESSION, &[0xff; 8])), CloseWithoutResponse),
            ("prov-session: a varint cut off", raw(post(PROV_SESSION, &[0x10])), CloseWithoutResponse),
            (
                "prov-config: encrypted bytes that are not protobuf",
                sealed(PROV_CONFIG, [0xff; 8]),
                CloseWithoutResponse,
            ),
            ("prov-scan: encrypted bytes that are not protobuf", sealed(PROV_SCAN, [0xff; 8]), CloseWithoutResponse),
            ("prov-ctrl: encrypted bytes that are not protobuf", sealed(PROV_CTRL, [0xff; 8]), CloseWithoutResponse),
            (
                "prov-networks: encrypted bytes that are not protobuf",
                sealed(PROV_NETWORKS, [0xff; 8]),
                CloseWithoutResponse,
            ),
            (
                "prov-config: a message type it does not define (99)",
                sealed(PROV_CONFIG, pb::varint(1, 99)),
                CloseWithoutResponse,
            ),
            (
                "prov-config: a response's message type (RespGetStatus)",
                sealed(PROV_CONFIG, pb::varint(1, 1)),
                CloseWithoutResponse,
            ),
            ("prov-config: SetConfig without its body", sealed(PROV_CONFIG, pb::varint(1, 2)), CloseWithoutResponse),
            (
                "prov-config: SetConfig carrying a GetStatus body",
                sealed(PROV_CONFIG, [pb::varint(1, 2), pb::bytes(10, b"")].concat()),
                CloseWithoutResponse,
            ),
            ("prov-scan: ScanResult without its body", sealed(PROV_SCAN, pb::varint(1, 4)), CloseWithoutResponse),
            ("prov-ctrl: the reserved message type 0", sealed(PROV_CTRL, pb::varint(1, 0)), CloseWithoutResponse),
            (
                "prov-ctrl: a response's message type (RespCtrlReset)",
                sealed(PROV_CTRL, pb::varint(1, 2)),
                CloseWithoutResponse,
            ),
            (
                "prov-networks: Add with an unknown security (99)",
                sealed(
                    PROV_NETWORKS,
                    [pb::varint(1, 2), pb::bytes(12, &[pb::bytes(1, b"x-net"), pb::varint(3, 99)].concat())].concat(),
                ),
                CloseWithoutResponse,
            ),
            ("prov-networks: Remove without its body", sealed(PROV_NETWORKS, pb::varint(1, 4)), CloseWithoutResponse),
            (
                "prov-config: a length prefix longer than the message",
                sealed(PROV_CONFIG, [0x62, 0x7f, 0x01]),
                CloseWithoutResponse,
            ),
            ("prov-config: wire type 7, which does not exist", sealed(PROV_CONFIG, [0x0f, 0x00]), CloseWithoutResponse),
            (
                "prov-config: an empty plaintext is GetStatus (zero message type), as on ESP",
                sealed(PROV_CONFIG, b""),
                ProtocolStatus(Status::Success),
            ),
            ("prov-networks: an empty plaintext is List", sealed(PROV_NETWORKS, b""), Net(NetStatus::Success)),
            ("prov-ctrl: an empty plaintext is the reserved type 0", sealed(PROV_CTRL, b""), CloseWithoutResponse),
            (
                "prov-scan: an empty plaintext is ScanStart without its body",
                sealed(PROV_SCAN, b""),
                CloseWithoutResponse,
            ),
            (
                "prov-config: unknown field numbers around a GetStatus are ignored",
                sealed(PROV_CONFIG, [pb::varint(1000, 7), get_status.clone(), pb::bytes(77, b"junk")].concat()),
                ProtocolStatus(Status::Success),
            ),
            (
                "prov-config: groups of an unknown field nested 1000 deep",
                sealed(PROV_CONFIG, nested_groups(1000)),
                CloseWithoutResponse,
            ),
            (
                "prov-session: groups of an unknown field nested 1000 deep",
                raw(post(PROV_SESSION, &nested_groups(1000))),
                CloseWithoutResponse,
            ),
        ],
    );

    section(
        &mut all,
        "handshake out of order",
        On::Sec2,
        vec![
            (
                "S2 Command1 before any Command0",
                raw(post(PROV_SESSION, &sec2_message(2, 22, &pb::bytes(1, &[7; 64])))),
                CloseWithoutResponse,
            ),
            (
                "S2 Command1 with a wrong proof after Command0",
                Action::Script(|env| Box::pin(wrong_proof(env))),
                CloseWithoutResponse,
            ),
            (
                "S2 Command0 twice in one session restarts it",
                Action::Script(|env| Box::pin(command0_twice(env, On::Sec2))),
                Served,
            ),
            (
                "S2 Command1 replayed after the session is established",
                Action::Script(|env| Box::pin(command1_replayed(env))),
                CloseWithoutResponse,
            ),
            (
                "S2 Command1 with a proof of 63 bytes",
                Action::Script(|env| Box::pin(after_command0(env, sec2_message(2, 22, &pb::bytes(1, &[7; 63]))))),
                CloseWithoutResponse,
            ),
            (
                "S2 Response0 sent to the device",
                Action::Script(|env| Box::pin(after_command0(env, sec2_message(1, 21, &pb::bytes(2, &[5; 384]))))),
                CloseWithoutResponse,
            ),
            (
                "S2 Command0 message type carrying a Command1 body",
                raw(post(PROV_SESSION, &sec2_message(0, 22, &pb::bytes(1, &[7; 64])))),
                CloseWithoutResponse,
            ),
            (
                "S2 Command0 with an empty username",
                raw(post(PROV_SESSION, &sec2_command0(b"", &[5; 384]))),
                CloseWithoutResponse,
            ),
            (
                "S2 Command0 with a client key of 385 bytes",
                raw(post(PROV_SESSION, &sec2_command0(USER.as_bytes(), &[5; 385]))),
                CloseWithoutResponse,
            ),
            (
                "S2 Command0 with client key A = 0",
                raw(post(PROV_SESSION, &sec2_command0(USER.as_bytes(), &[0; 384]))),
                CloseWithoutResponse,
            ),
            (
                "S2 Command0 with client key A = N (0 mod N)",
                raw(post(PROV_SESSION, &sec2_command0(USER.as_bytes(), &hex::decode(SRP_N_HEX).unwrap()))),
                CloseWithoutResponse,
            ),
            (
                "an encrypted request after Command0, before the handshake finished",
                Action::Script(|env| Box::pin(request_before_established(env))),
                CloseWithoutResponse,
            ),
            ("an encrypted request without any session", raw(post(PROV_CONFIG, &[0x55; 18])), CloseWithoutResponse),
        ],
    );

    section(
        &mut all,
        "wrong sec_ver",
        On::Sec2,
        vec![
            (
                "sec_ver 1 with a security 1 Command0 to a security 2 device",
                raw(post(PROV_SESSION, &sec1_command0(&[9; 32]))),
                CloseWithoutResponse,
            ),
            (
                "sec_ver 0 with a security 0 payload to a security 2 device",
                raw(post(PROV_SESSION, &[pb::varint(2, 0), pb::bytes(10, &pb::varint(1, 0))].concat())),
                CloseWithoutResponse,
            ),
            (
                "sec_ver 2 carrying a security 1 payload",
                raw(post(
                    PROV_SESSION,
                    &[pb::varint(2, 2), pb::bytes(11, &pb::bytes(20, &pb::bytes(1, &[9; 32])))].concat(),
                )),
                CloseWithoutResponse,
            ),
            (
                "sec_ver 7, which does not exist",
                raw(post(PROV_SESSION, &[pb::varint(2, 7), pb::bytes(12, &pb::varint(1, 0))].concat())),
                CloseWithoutResponse,
            ),
            ("sec_ver 2 without any payload", raw(post(PROV_SESSION, &pb::varint(2, 2))), CloseWithoutResponse),
        ],
    );

    section(
        &mut all,
        "security 1",
        On::Sec1,
        vec![
            (
                "sec_ver 2 Command0 to a security 1 device",
                raw(post(PROV_SESSION, &sec2_command0(USER.as_bytes(), &[5; 384]))),
                CloseWithoutResponse,
            ),
            (
                "sec_ver 0 to a security 1 device",
                raw(post(PROV_SESSION, &[pb::varint(2, 0), pb::bytes(10, &pb::varint(1, 0))].concat())),
                CloseWithoutResponse,
            ),
            (
                "sec_ver 1 carrying a security 2 payload",
                raw(post(
                    PROV_SESSION,
                    &[pb::varint(2, 1), pb::bytes(12, &pb::bytes(20, &pb::bytes(1, b"u")))].concat(),
                )),
                CloseWithoutResponse,
            ),
            (
                "S1 Command1 before any Command0",
                raw(post(
                    PROV_SESSION,
                    &[
                        pb::varint(2, 1),
                        pb::bytes(11, &[pb::varint(1, 2), pb::bytes(22, &pb::bytes(2, &[3; 32]))].concat()),
                    ]
                    .concat(),
                )),
                CloseWithoutResponse,
            ),
            (
                "S1 Command0 with a client key of 31 bytes",
                raw(post(PROV_SESSION, &sec1_command0(&[9; 31]))),
                CloseWithoutResponse,
            ),
            (
                "S1 Command0 with a low-order client key (all zeros)",
                raw(post(PROV_SESSION, &sec1_command0(&[0; 32]))),
                CloseWithoutResponse,
            ),
            (
                "S1 Command1 with a wrong proof of possession",
                Action::Script(|env| Box::pin(wrong_pop(env))),
                CloseWithoutResponse,
            ),
            (
                "S1 Command0 twice in one session restarts it",
                Action::Script(|env| Box::pin(command0_twice(env, On::Sec1))),
                Served,
            ),
            (
                "S1 ciphertext with a flipped byte (AES-CTR: decrypts to garbage)",
                Action::Script(|env| Box::pin(sec1_flipped(env))),
                CloseWithoutResponse,
            ),
            (
                "S1 ciphertext cut short (AES-CTR: a truncated message)",
                Action::Script(|env| Box::pin(sec1_truncated(env))),
                CloseWithoutResponse,
            ),
            (
                "S1 stale cookie of a session evicted from the table",
                Action::Script(|env| Box::pin(stale_cookie(env))),
                CloseWithoutResponse,
            ),
            ("20 handshakes abandoned after Command0", Action::Script(|env| Box::pin(abandoned(env))), Served),
        ],
    );

    section(
        &mut all,
        "cookies",
        On::Sec2,
        vec![
            (
                "another client's cookie on a request sealed with the attacker's key",
                Action::Script(|env| Box::pin(foreign_cookie(env))),
                CloseWithoutResponse,
            ),
            (
                "another client's request replayed with its cookie",
                Action::Script(|env| Box::pin(replayed_request(env))),
                CloseWithoutResponse,
            ),
            (
                "several Cookie headers naming a live session",
                Action::Script(|env| Box::pin(several_cookies(env))),
                CloseWithoutResponse,
            ),
            (
                "a made-up cookie on prov-config",
                raw(post_with(PROV_CONFIG, "Cookie: session=12345\r\n", &[0x55; 18])),
                CloseWithoutResponse,
            ),
            (
                "a cookie with leading zeros (ESP compares exact strings)",
                Action::Script(|env| Box::pin(mangled_cookie(env, |c| c.replace('=', "=00")))),
                CloseWithoutResponse,
            ),
            (
                "a cookie with an extra attribute (ESP compares exact strings)",
                Action::Script(|env| Box::pin(mangled_cookie(env, |c| format!("{c}; theme=dark")))),
                CloseWithoutResponse,
            ),
            (
                "a made-up cookie on prov-session opens a new session of its own",
                Action::Script(|env| Box::pin(made_up_cookie_handshake(env))),
                Served,
            ),
            (
                "garbage on prov-session with another client's cookie",
                Action::Script(|env| Box::pin(foreign_cookie_garbage_handshake(env))),
                CloseWithoutResponse,
            ),
            // ESP's rule: a Command0 restarts the session it names. So one request carrying a live session's cookie
            // ends that session's handshake (see `foreign_cookie_command0`).
            (
                "Command0 with another client's cookie restarts that client's session",
                Action::Script(|env| Box::pin(foreign_cookie_command0(env))),
                Served,
            ),
        ],
    );

    section(
        &mut all,
        "ciphertext",
        On::Sec2,
        vec![
            (
                "S2 GetStatus with its GCM tag cut short by one byte",
                Action::Script(|env| {
                    Box::pin(tampered(env, |c| {
                        c.pop();
                    }))
                }),
                CloseWithoutResponse,
            ),
            (
                "S2 ciphertext shorter than a GCM tag",
                Action::Script(|env| Box::pin(tampered(env, |c| c.truncate(8)))),
                CloseWithoutResponse,
            ),
            (
                "S2 GetStatus with a flipped GCM tag byte",
                Action::Script(|env| {
                    Box::pin(tampered(env, |c| {
                        if let Some(b) = c.last_mut() {
                            *b ^= 1
                        }
                    }))
                }),
                CloseWithoutResponse,
            ),
            (
                "S2 GetStatus with a flipped ciphertext byte",
                Action::Script(|env| Box::pin(tampered(env, |c| c[0] ^= 0x80))),
                CloseWithoutResponse,
            ),
            (
                "S2 GetStatus sent in clear in an established session",
                Action::Script(|env| Box::pin(tampered(env, |c| *c = config::Request::GetStatus.encode()))),
                CloseWithoutResponse,
            ),
        ],
    );

    section(
        &mut all,
        "credential values",
        On::Sec2,
        vec![
            (
                "SetConfig with a 33-byte SSID",
                sealed(PROV_CONFIG, set_config(&[b'x'; 33], b"long-enough", b"")),
                ProtocolStatus(Status::InvalidArgument),
            ),
            (
                "SetConfig with an empty SSID",
                sealed(PROV_CONFIG, set_config(b"", b"long-enough", b"")),
                ProtocolStatus(Status::InvalidArgument),
            ),
            (
                "SetConfig with a non-UTF-8 SSID (valid: SSIDs are bytes)",
                sealed(PROV_CONFIG, set_config(b"\xff\xfe caf\xe9", b"long-enough", b"")),
                ProtocolStatus(Status::Success),
            ),
            (
                "SetConfig with a 65-byte passphrase",
                sealed(PROV_CONFIG, set_config(b"home", &[b'p'; 65], b"")),
                ProtocolStatus(Status::InvalidArgument),
            ),
            (
                "SetConfig with a 64-byte passphrase that is not hex",
                sealed(PROV_CONFIG, set_config(b"home", &[b'p'; 64], b"")),
                ProtocolStatus(Status::InvalidArgument),
            ),
            (
                "SetConfig with a 7-byte passphrase",
                sealed(PROV_CONFIG, set_config(b"home", b"1234567", b"")),
                ProtocolStatus(Status::InvalidArgument),
            ),
            (
                "SetConfig with a control byte in the passphrase",
                sealed(PROV_CONFIG, set_config(b"home", b"correct\x01horse", b"")),
                ProtocolStatus(Status::InvalidArgument),
            ),
            (
                "SetConfig with a non-UTF-8 passphrase",
                sealed(PROV_CONFIG, set_config(b"home", b"correct\xe9horse", b"")),
                ProtocolStatus(Status::InvalidArgument),
            ),
            (
                "SetConfig with a 5-byte BSSID",
                sealed(PROV_CONFIG, set_config(b"home", b"correct-horse", &[2, 0, 0, 0, 1])),
                ProtocolStatus(Status::InvalidArgument),
            ),
            (
                "SetConfig with a 7-byte BSSID",
                sealed(PROV_CONFIG, set_config(b"home", b"correct-horse", &[2, 0, 0, 0, 0, 0, 1])),
                ProtocolStatus(Status::InvalidArgument),
            ),
            // int32 -1 is a 10-byte varint; ESP checks the BSSID's length and ignores the channel, and so do we.
            (
                "SetConfig with channel -1",
                sealed(
                    PROV_CONFIG,
                    config::Request::SetConfig(config::SetConfig {
                        ssid: b"home".to_vec(),
                        passphrase: b"correct-horse".as_slice().into(),
                        bssid: Vec::new(),
                        channel: -1,
                    })
                    .encode(),
                ),
                ProtocolStatus(Status::Success),
            ),
            (
                "ApplyConfig without any SetConfig",
                sealed(PROV_CONFIG, config::Request::ApplyConfig.encode()),
                ProtocolStatus(Status::InternalError),
            ),
            (
                "CtrlReset while nothing has failed",
                sealed(PROV_CTRL, ctrl::Request::Reset.encode()),
                ProtocolStatus(Status::InternalError),
            ),
            (
                "CtrlReprov while auto-stop is on",
                sealed(PROV_CTRL, ctrl::Request::Reprov.encode()),
                ProtocolStatus(Status::InternalError),
            ),
            (
                "prov-networks Add with a 33-byte SSID",
                sealed(PROV_NETWORKS, add(&[b'x'; 33], b"long-enough", None)),
                Net(NetStatus::InvalidArgument),
            ),
            (
                "prov-networks Add with an empty SSID",
                sealed(PROV_NETWORKS, add(b"", b"long-enough", None)),
                Net(NetStatus::InvalidArgument),
            ),
            (
                "prov-networks Add with a 65-byte passphrase",
                sealed(PROV_NETWORKS, add(b"x-net", &[b'p'; 65], None)),
                Net(NetStatus::InvalidArgument),
            ),
            (
                "prov-networks Add updating a saved network with a 7-byte passphrase",
                sealed(PROV_NETWORKS, add(b"attic", b"1234567", None)),
                Net(NetStatus::InvalidArgument),
            ),
            (
                "prov-networks Add with a 5-byte BSSID",
                sealed(
                    PROV_NETWORKS,
                    [
                        pb::varint(1, 2),
                        pb::bytes(
                            12,
                            &[pb::bytes(1, b"x-net"), pb::varint(6, 1), pb::bytes(7, &[2, 0, 0, 0, 1])].concat(),
                        ),
                    ]
                    .concat(),
                ),
                CloseWithoutResponse,
            ),
        ],
    );

    section(
        &mut all,
        "indices",
        On::Sec2,
        vec![
            (
                "prov-networks Move to index 2 of a 2-network list",
                sealed(PROV_NETWORKS, networks::Request::Move { ssid: b"office".to_vec(), to: 2 }.encode()),
                Net(NetStatus::OutOfRange),
            ),
            (
                "prov-networks Move to -1 (varint wraps to 2^32-1)",
                sealed(
                    PROV_NETWORKS,
                    [pb::varint(1, 6), pb::bytes(16, &[pb::bytes(1, b"office"), pb::varint(2, u64::MAX)].concat())]
                        .concat(),
                ),
                Net(NetStatus::OutOfRange),
            ),
            (
                "prov-networks Add at priority 3 of a 2-network list",
                sealed(PROV_NETWORKS, add(b"x-net", b"long-enough", Some(3))),
                Net(NetStatus::OutOfRange),
            ),
            (
                "prov-networks Add at priority -1 (varint wraps to 2^32-1)",
                sealed(
                    PROV_NETWORKS,
                    [
                        pb::varint(1, 2),
                        pb::bytes(
                            12,
                            &[
                                pb::bytes(1, b"x-net"),
                                pb::bytes(2, b"long-enough"),
                                pb::varint(5, u64::MAX),
                                pb::varint(6, 1),
                            ]
                            .concat(),
                        ),
                    ]
                    .concat(),
                ),
                Net(NetStatus::OutOfRange),
            ),
            (
                "prov-networks Add updating a saved network to priority 2 of 2",
                sealed(PROV_NETWORKS, add(b"attic", b"attic-pass", Some(2))),
                Net(NetStatus::OutOfRange),
            ),
            (
                "prov-networks Remove of a network not in the list",
                sealed(PROV_NETWORKS, networks::Request::Remove { ssid: b"nowhere".to_vec() }.encode()),
                Net(NetStatus::NotFound),
            ),
            (
                "prov-networks Move of a network not in the list",
                sealed(PROV_NETWORKS, networks::Request::Move { ssid: b"nowhere".to_vec(), to: 0 }.encode()),
                Net(NetStatus::NotFound),
            ),
            (
                "prov-networks Connect to a network not in the list",
                sealed(PROV_NETWORKS, networks::Request::Connect { ssid: b"nowhere".to_vec() }.encode()),
                Net(NetStatus::NotFound),
            ),
            (
                "prov-networks Remove with a 33-byte SSID",
                sealed(PROV_NETWORKS, networks::Request::Remove { ssid: vec![b'x'; 33] }.encode()),
                Net(NetStatus::InvalidArgument),
            ),
            (
                "ScanResult starting at 16 (the device keeps 16)",
                sealed(PROV_SCAN, scan::Request::Result { start_index: 16, count: 1 }.encode()),
                CloseWithoutResponse,
            ),
            (
                "ScanResult of 17 entries",
                sealed(PROV_SCAN, scan::Request::Result { start_index: 0, count: 17 }.encode()),
                CloseWithoutResponse,
            ),
            (
                "ScanResult starting at -1 (varint wraps to 2^32-1)",
                sealed(
                    PROV_SCAN,
                    [pb::varint(1, 4), pb::bytes(14, &[pb::varint(1, u64::MAX), pb::varint(2, 1)].concat())].concat(),
                ),
                CloseWithoutResponse,
            ),
            (
                "ScanResult whose start + count overflows 32 bits",
                sealed(PROV_SCAN, scan::Request::Result { start_index: 1, count: u32::MAX }.encode()),
                CloseWithoutResponse,
            ),
            (
                "ScanResult inside 16 but beyond the results found",
                sealed(PROV_SCAN, scan::Request::Result { start_index: 15, count: 1 }.encode()),
                ProtocolStatus(Status::InternalError),
            ),
        ],
    );

    section(
        &mut all,
        "online guessing",
        On::Sec2,
        vec![(
            "a sixth handshake after five wrong passwords, on a fresh daemon with the default limit",
            Action::Script(|env| Box::pin(lockout(env))),
            Locked(1),
        )],
    );
    all
}

// ---------------------------------------------------------------------------------------------------------
// Protobuf by hand: what a decoder must survive cannot be built with the typed messages.

mod pb {
    fn varint_bytes(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Field `field` as a varint (wire type 0).
    pub(super) fn varint(field: u32, value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint_bytes(u64::from(field) << 3, &mut out);
        varint_bytes(value, &mut out);
        out
    }

    /// Field `field` as length-delimited bytes (wire type 2).
    pub(super) fn bytes(field: u32, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint_bytes((u64::from(field) << 3) | 2, &mut out);
        varint_bytes(value.len() as u64, &mut out);
        out.extend_from_slice(value);
        out
    }
}

/// `SessionData { sec_ver: 2, sec2: { msg, <payload_field>: payload } }`.
fn sec2_message(msg: u64, payload_field: u32, payload: &[u8]) -> Vec<u8> {
    [pb::varint(2, 2), pb::bytes(12, &[pb::varint(1, msg), pb::bytes(payload_field, payload)].concat())].concat()
}

fn sec2_command0(username: &[u8], client_key: &[u8]) -> Vec<u8> {
    sec2_message(0, 20, &[pb::bytes(1, username), pb::bytes(2, client_key)].concat())
}

/// `SessionData { sec_ver: 1, sec1: { Session_Command0 { client_pubkey } } }`.
fn sec1_command0(client_key: &[u8]) -> Vec<u8> {
    [pb::varint(2, 1), pb::bytes(11, &[pb::varint(1, 0), pb::bytes(20, &pb::bytes(1, client_key))].concat())].concat()
}

/// `depth` start-group tags of field 99 (wire type 3), each closed by its end-group tag: a decoder that recursed
/// once per level without a limit would exhaust its stack.
fn nested_groups(depth: usize) -> Vec<u8> {
    let start = [0x9b, 0x06]; // (99 << 3) | 3
    let end = [0x9c, 0x06]; // (99 << 3) | 4
    [start.repeat(depth), end.repeat(depth)].concat()
}

fn set_config(ssid: &[u8], passphrase: &[u8], bssid: &[u8]) -> Vec<u8> {
    let set =
        config::SetConfig { ssid: ssid.to_vec(), passphrase: passphrase.into(), bssid: bssid.to_vec(), channel: 0 };
    config::Request::SetConfig(set).encode()
}

/// A prov-networks Add that saves without joining first.
fn add(ssid: &[u8], passphrase: &[u8], priority: Option<u32>) -> Vec<u8> {
    let mut add = AddRequest::new(ssid, passphrase);
    add.connect = false;
    add.priority = priority;
    networks::Request::Add(add).encode()
}

// ---------------------------------------------------------------------------------------------------------
// The daemons

struct Device {
    service: ProvisioningService,
    addr: SocketAddr,
    security: DeviceSecurity,
    state_dir: tempfile::TempDir,
}

impl Device {
    /// A daemon on `127.0.0.1:0` with [`SAVED`] in its store, short HTTP timeouts, and `free_failures` wrong
    /// proofs allowed before the default doubling waits begin.
    async fn start(security: DeviceSecurity, free_failures: u32) -> Self {
        use wifiprov_backend::{Passphrase, Ssid};
        use wifiprov_manager::networks::{NetworkList, NetworkSecurity, SavedNetwork};

        let state_dir = tempfile::tempdir().unwrap();
        let saved = SAVED.iter().map(|(ssid, pass)| {
            let pass = Passphrase::new((*pass).to_owned()).unwrap();
            SavedNetwork::new(Ssid::try_from(*ssid).unwrap(), NetworkSecurity::WpaPsk, Some(pass)).unwrap()
        });
        let list = NetworkList::from_networks(8, saved.collect()).unwrap();
        NetworkStore::open(state_dir.path()).save(&list).unwrap();

        let guessing = Guessing::in_memory(GuessLimit { free_failures, ..GuessLimit::default() });
        let config = ServiceConfig { manager: fast_manager(), sessions: SessionLimits::default(), guessing };
        let radio = SimRadio::from_toml_str(SCENARIO).unwrap();
        let service = ProvisioningService::new(config, Arc::new(radio), NetworkStore::open(state_dir.path())).unwrap();
        let listener = wifiprov_transport_http::listen(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut http = HttpConfig::default();
        http.header_timeout = HEADER_TIMEOUT;
        http.body_timeout = BODY_TIMEOUT;
        let frontends: Vec<Arc<dyn Frontend>> = vec![Arc::new(HttpFrontend::bound(listener, http).unwrap())];
        service.start_provisioning(security.clone(), frontends).await.unwrap();
        Self { service, addr, security, state_dir }
    }

    fn store_path(&self) -> PathBuf {
        self.state_dir.path().join(NetworkStore::FILE_NAME)
    }

    /// The store file's bytes once every change made so far is on disk.
    async fn store_bytes(&self) -> Vec<u8> {
        assert!(self.service.flush().await, "the store writer failed");
        std::fs::read(self.store_path()).unwrap()
    }

    /// A legitimate client: version, handshake, one encrypted request (GetStatus, which writes nothing), within
    /// [`PROMPT`]. Returns how long it took.
    async fn serves_a_legitimate_client(&self) -> Duration {
        let started = Instant::now();
        let run = async {
            let mut client = Client::new(HttpClient::connect(self.addr).await.expect("connect"));
            client.version().await.expect("proto-ver");
            let mut rng = SeededRandom::new(rand_seed());
            client.establish(client_security(&self.security), &mut rng).await.expect("handshake");
            client.status().await.expect("GetStatus")
        };
        let report = tokio::time::timeout(PROMPT, run).await.expect("the legitimate client was not served promptly");
        // Nothing an attacker sent started a join.
        assert_eq!(report.state, Some(StationState::Disconnected), "{report:?}");
        started.elapsed()
    }
}

struct Env {
    sec2: Device,
    sec1: Device,
}

impl Env {
    fn device(&self, on: On) -> &Device {
        match on {
            On::Sec2 => &self.sec2,
            On::Sec1 => &self.sec1,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Talking to the daemon

/// An HTTP response as it arrived.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Everything the peer sends until it closes (a reset counts as a close), failing after [`CASE_DEADLINE`].
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + CASE_DEADLINE;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the daemon neither answered nor closed within {CASE_DEADLINE:?}: {received:?}"),
        }
    }
}

/// Splits what arrived into responses; `head_request`: the first answers a HEAD, so it has no body.
fn parse_responses(mut bytes: &[u8], head_request: bool) -> Result<Vec<Response>, String> {
    let mut responses = Vec::new();
    while !bytes.is_empty() {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("truncated head {bytes:?}"))?;
        let head = std::str::from_utf8(&bytes[..end]).map_err(|_| format!("non-UTF-8 head {bytes:?}"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                (name.to_owned(), value.trim().to_owned())
            })
            .collect();
        bytes = &bytes[end + 4..];
        let mut response = Response { status, headers, body: Vec::new() };
        let len: usize = response.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        if !(head_request && responses.is_empty()) {
            let body = bytes.get(..len).ok_or_else(|| format!("truncated body {bytes:?}"))?;
            response.body = body.to_vec();
            bytes = &bytes[len..];
        }
        responses.push(response);
    }
    Ok(responses)
}

/// The reaction the responses to one connection's requests show. Every error answer must close the connection
/// (`Connection: close`); a `405` must name `Allow: POST`; a `429` must carry `Retry-After`; an answer to `HEAD`
/// carries no body but the length of the one a `GET` would get.
fn reaction_of(responses: &[Response], head_request: bool) -> Reaction {
    let mut each = Vec::new();
    for (i, response) in responses.iter().enumerate() {
        let last = i + 1 == responses.len();
        let reaction = match response.status {
            200 => Served,
            429 => match response.header("retry-after").and_then(|v| v.parse().ok()) {
                Some(secs) => Locked(secs),
                None => return Reaction::Unexpected(format!("429 without Retry-After: {response:?}")),
            },
            status => Reaction::Status(status),
        };
        if response.status != 200 {
            if response.header("connection") != Some("close") || !last {
                return Reaction::Unexpected(format!("an error answer that does not close: {response:?}"));
            }
            if response.status == 405 && response.header("allow") != Some("POST") {
                return Reaction::Unexpected(format!("405 without Allow: POST: {response:?}"));
            }
            if head_request && (!response.body.is_empty() || response.header("content-length") == Some("0")) {
                return Reaction::Unexpected(format!("an answer to HEAD with a body, or a zero length: {response:?}"));
            }
        }
        each.push(reaction);
    }
    match each.len() {
        0 => CloseWithoutResponse,
        1 => each.remove(0),
        _ => Each(each),
    }
}

/// Sends `bytes` on a new connection, half-closes, and reads until the daemon closes.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Reaction {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The daemon may answer and close before it has read everything (a head too large): a failed write is part
    // of that, and the answer is still to be read.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let received = read_until_closed(&mut stream).await;
    match parse_responses(&received, bytes.starts_with(b"HEAD ")) {
        Ok(responses) => reaction_of(&responses, bytes.starts_with(b"HEAD ")),
        Err(what) => Reaction::Unexpected(format!("unparsable answer: {what}")),
    }
}

/// The reaction an [`HttpClient`] request failure shows.
fn refusal(error: &TransportError) -> Reaction {
    match error {
        TransportError::ConnectionClosed { .. } => CloseWithoutResponse,
        TransportError::Status { status: 429, body, .. } => {
            let text = String::from_utf8_lossy(body);
            let secs = text.strip_prefix("locked for ").and_then(|t| t.split(' ').next()).and_then(|s| s.parse().ok());
            secs.map_or_else(|| Reaction::Unexpected(format!("429 {text:?}")), Locked)
        }
        TransportError::Status { status, .. } => Reaction::Status(*status),
        other => Reaction::Unexpected(ErrorChain(other).to_string()),
    }
}

/// The status an endpoint's decrypted answer carries.
fn answer_status(endpoint: &str, plaintext: &[u8]) -> Reaction {
    let decoded = match endpoint {
        PROV_CONFIG => config::Response::decode(plaintext).map(|r| ProtocolStatus(r.status())),
        PROV_SCAN => scan::Response::decode(plaintext).map(|r| ProtocolStatus(r.status())),
        PROV_CTRL => ctrl::Response::decode(plaintext).map(|r| ProtocolStatus(r.status())),
        PROV_NETWORKS => networks::Response::decode(plaintext).map(|r| Net(r.status())),
        _ => return Served,
    };
    decoded.unwrap_or_else(|e| Reaction::Unexpected(format!("undecodable answer from {endpoint}: {e}")))
}

/// A security session of a client's own, with its raw HTTP transport and keys at hand.
struct Session {
    http: HttpClient,
    keys: ClientSession,
    /// The handshake messages sent, in order.
    sent: Vec<Vec<u8>>,
}

impl Session {
    /// Runs the handshake with `security`; `Err` is the daemon's reaction to the step it refused.
    async fn handshake(addr: SocketAddr, security: ClientSecurity) -> Result<Self, Reaction> {
        let mut http = HttpClient::connect(addr).await.unwrap();
        let mut keys = ClientSession::new(security);
        let mut rng = SeededRandom::new(rand_seed());
        let mut request = keys.start(&mut rng).unwrap();
        let mut sent = Vec::new();
        loop {
            sent.push(request.clone());
            let reply = http.request(PROV_SESSION, &request).await.map_err(|e| refusal(&e))?;
            match keys.handle_response(&reply, &mut rng) {
                Ok(Some(next)) => request = next,
                Ok(None) => return Ok(Self { http, keys, sent }),
                Err(e) => return Err(Reaction::Unexpected(format!("handshake answer refused: {}", ErrorChain(&e)))),
            }
        }
    }

    /// A session with the device's own credentials.
    async fn open(device: &Device) -> Self {
        Self::handshake(device.addr, client_security(&device.security)).await.expect("legitimate handshake")
    }

    fn cookie(&self) -> String {
        self.http.cookie().expect("the device set a session cookie").to_owned()
    }

    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut body = plaintext.to_vec();
        self.keys.encrypt(&mut body).unwrap();
        body
    }

    /// Sends `body` as it is, on a new connection if the last one was closed (the cookie goes with it).
    async fn send(&mut self, endpoint: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        if !self.http.is_connected() {
            self.http.reconnect().await.unwrap();
        }
        self.http.request(endpoint, body).await
    }

    /// Seals `plaintext`, sends it, and reads the status of the decrypted answer.
    async fn call(&mut self, endpoint: &str, plaintext: &[u8]) -> Reaction {
        let body = self.seal(plaintext);
        match self.send(endpoint, &body).await {
            Ok(mut reply) => match self.keys.decrypt(&mut reply) {
                Ok(()) => answer_status(endpoint, &reply),
                Err(e) => Reaction::Unexpected(format!("answer does not decrypt: {}", ErrorChain(&e))),
            },
            Err(e) => refusal(&e),
        }
    }
}

/// A first handshake message as a real client of `security` sends it.
fn command0(security: ClientSecurity) -> Vec<u8> {
    ClientSession::new(security).start(&mut SeededRandom::new(rand_seed())).unwrap()
}

// ---------------------------------------------------------------------------------------------------------
// Scripted cases

/// A connection that sends nothing is closed at the header timeout, without a response.
async fn silent(env: &Env) -> Reaction {
    let started = Instant::now();
    let mut stream = TcpStream::connect(env.sec2.addr).await.unwrap();
    let received = read_until_closed(&mut stream).await;
    timed(started, HEADER_TIMEOUT, &received)
}

/// A head that never ends, one byte every 100 ms: closed at the header timeout, however steady the drip.
async fn drip_head(env: &Env) -> Reaction {
    let started = Instant::now();
    let mut stream = TcpStream::connect(env.sec2.addr).await.unwrap();
    let (mut read, mut write) = stream.split();
    let head = b"POST /proto-ver HTTP/1.1\r\nX-Drip: ";
    let received = tokio::select! {
        received = read_until_closed(&mut read) => received,
        () = drip(&mut write, head) => unreachable!(),
    };
    timed(started, HEADER_TIMEOUT, &received)
}

/// A complete head, then a body one byte every 100 ms: closed at the body timeout.
async fn drip_body(env: &Env) -> Reaction {
    let mut stream = TcpStream::connect(env.sec2.addr).await.unwrap();
    let (mut read, mut write) = stream.split();
    write.write_all(&request("POST", "/proto-ver", "Content-Length: 4000\r\n")).await.unwrap();
    let started = Instant::now();
    let received = tokio::select! {
        received = read_until_closed(&mut read) => received,
        () = drip(&mut write, b"") => unreachable!(),
    };
    timed(started, BODY_TIMEOUT, &received)
}

/// Writes `first`, then one byte every 100 ms, forever (a failed write ends the writing, not the future).
async fn drip(write: &mut (impl AsyncWrite + Unpin), first: &[u8]) {
    if write.write_all(first).await.is_ok() {
        while write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    std::future::pending::<()>().await;
}

/// A close without response that came when `timeout` ran out (not before, and not long after).
fn timed(started: Instant, timeout: Duration, received: &[u8]) -> Reaction {
    let took = started.elapsed();
    if !received.is_empty() {
        return Reaction::Unexpected(format!("an answer: {:?}", String::from_utf8_lossy(received)));
    }
    if took + Duration::from_millis(50) < timeout || took > timeout + Duration::from_secs(3) {
        return Reaction::Unexpected(format!("closed after {took:?}, the timeout being {timeout:?}"));
    }
    CloseWithoutResponse
}

fn wrong_password() -> ClientSecurity {
    ClientSecurity::sec2(USER, Password::from("wrong-password"), Sec2Patch::Counter)
}

async fn wrong_proof(env: &Env) -> Reaction {
    match Session::handshake(env.sec2.addr, wrong_password()).await {
        Ok(_) => Reaction::Unexpected("a wrong password was accepted".to_owned()),
        Err(reaction) => reaction,
    }
}

async fn wrong_pop(env: &Env) -> Reaction {
    match Session::handshake(env.sec1.addr, ClientSecurity::sec1(ProofOfPossession::from("wrong-pop"))).await {
        Ok(_) => Reaction::Unexpected("a wrong PoP was accepted".to_owned()),
        Err(reaction) => reaction,
    }
}

/// Command0, then a fresh Command0 in the same session (same connection, same cookie): the second restarts the
/// handshake and is answered, with no new cookie.
async fn command0_twice(env: &Env, on: On) -> Reaction {
    let device = env.device(on);
    let mut http = HttpClient::connect(device.addr).await.unwrap();
    if let Err(e) = http.request(PROV_SESSION, &command0(client_security(&device.security))).await {
        return Reaction::Unexpected(format!("the first Command0 was refused: {}", ErrorChain(&e)));
    }
    let cookie = http.cookie().map(str::to_owned);
    match http.request(PROV_SESSION, &command0(client_security(&device.security))).await {
        Ok(_) if http.cookie().map(str::to_owned) == cookie => Served,
        Ok(_) => Reaction::Unexpected("the second Command0 opened another session".to_owned()),
        Err(e) => refusal(&e),
    }
}

/// Command0 (answered), then `message` to prov-session in the same session.
async fn after_command0(env: &Env, message: Vec<u8>) -> Reaction {
    let mut http = HttpClient::connect(env.sec2.addr).await.unwrap();
    if let Err(e) = http.request(PROV_SESSION, &command0(client_security(&env.sec2.security))).await {
        return Reaction::Unexpected(format!("Command0 refused: {}", ErrorChain(&e)));
    }
    http.request(PROV_SESSION, &message).await.map_or_else(|e| refusal(&e), |_| Served)
}

async fn command1_replayed(env: &Env) -> Reaction {
    let mut session = Session::open(&env.sec2).await;
    let command1 = session.sent[1].clone();
    session.send(PROV_SESSION, &command1).await.map_or_else(|e| refusal(&e), |_| Served)
}

async fn request_before_established(env: &Env) -> Reaction {
    let mut http = HttpClient::connect(env.sec2.addr).await.unwrap();
    if let Err(e) = http.request(PROV_SESSION, &command0(client_security(&env.sec2.security))).await {
        return Reaction::Unexpected(format!("Command0 refused: {}", ErrorChain(&e)));
    }
    http.request(PROV_CONFIG, &[0x55; 18]).await.map_or_else(|e| refusal(&e), |_| Served)
}

async fn sec1_flipped(env: &Env) -> Reaction {
    let mut session = Session::open(&env.sec1).await;
    let mut body = session.seal(&config::Request::GetStatus.encode());
    // GetStatus is `52 00`; `52 ^ ff` = `ad`, a tag whose varint runs into a fixed32 field with no bytes left.
    body[0] ^= 0xff;
    session.send(PROV_CONFIG, &body).await.map_or_else(|e| refusal(&e), |_| Served)
}

async fn sec1_truncated(env: &Env) -> Reaction {
    let mut session = Session::open(&env.sec1).await;
    let body = session.seal(&config::Request::GetStatus.encode());
    // `52` alone: a length-delimited field whose length is missing.
    session.send(PROV_CONFIG, &body[..1]).await.map_or_else(|e| refusal(&e), |_| Served)
}

/// A session evicted from the table (8 established sessions are kept; this one is the idlest of 9 whose
/// clients left), then its cookie on an encrypted request.
async fn stale_cookie(env: &Env) -> Reaction {
    let mut stale = Session::open(&env.sec1).await;
    let answered = stale.call(PROV_CONFIG, &config::Request::GetStatus.encode()).await;
    if answered != ProtocolStatus(Status::Success) {
        return Reaction::Unexpected(format!("the session was not usable to begin with: {answered:?}"));
    }
    let body = stale.seal(&config::Request::GetStatus.encode());
    let cookie = stale.cookie();
    drop(stale);
    for _ in 0..SessionLimits::default().max_sessions {
        drop(Session::open(&env.sec1).await);
    }
    let mut http = HttpClient::connect(env.sec1.addr).await.unwrap();
    http.set_cookie(Some(&cookie)).unwrap();
    http.request(PROV_CONFIG, &body).await.map_or_else(|e| refusal(&e), |_| Served)
}

/// The attacker's own request, sealed with its own key, sent with the victim's cookie; the victim's session
/// keeps working (a failed GCM tag moves no nonce counter).
async fn foreign_cookie(env: &Env) -> Reaction {
    let mut victim = Session::open(&env.sec2).await;
    let mut attacker = Session::open(&env.sec2).await;
    let body = attacker.seal(&config::Request::GetStatus.encode());
    attacker.http.set_cookie(Some(&victim.cookie())).unwrap();
    let reaction = attacker.send(PROV_CONFIG, &body).await.map_or_else(|e| refusal(&e), |_| Served);
    victim_unharmed(&mut victim, reaction).await
}

/// A request of the victim's, captured and sent again: the device's nonce counter has moved on.
async fn replayed_request(env: &Env) -> Reaction {
    let mut victim = Session::open(&env.sec2).await;
    let body = victim.seal(&config::Request::GetStatus.encode());
    let answered = victim.send(PROV_CONFIG, &body).await;
    let Ok(mut reply) = answered else { return Reaction::Unexpected("the victim's request was refused".to_owned()) };
    victim.keys.decrypt(&mut reply).unwrap();
    let mut replay = HttpClient::connect(env.sec2.addr).await.unwrap();
    replay.set_cookie(Some(&victim.cookie())).unwrap();
    let reaction = replay.request(PROV_CONFIG, &body).await.map_or_else(|e| refusal(&e), |_| Served);
    victim_unharmed(&mut victim, reaction).await
}

/// `reaction`, if the victim's session still answers an encrypted request.
async fn victim_unharmed(victim: &mut Session, reaction: Reaction) -> Reaction {
    match victim.call(PROV_CONFIG, &config::Request::GetStatus.encode()).await {
        ProtocolStatus(Status::Success) => reaction,
        other => Reaction::Unexpected(format!("{reaction:?}, but the victim's session broke: {other:?}")),
    }
}

async fn several_cookies(env: &Env) -> Reaction {
    let mut victim = Session::open(&env.sec2).await;
    let body = victim.seal(&config::Request::GetStatus.encode());
    let cookie = victim.cookie();
    exchange(env.sec2.addr, &post_with(PROV_CONFIG, &format!("Cookie: {cookie}\r\nCookie: {cookie}\r\n"), &body)).await
}

/// The victim's own, correctly sealed request, with its cookie changed by `mangle`: it names no session.
async fn mangled_cookie(env: &Env, mangle: fn(&str) -> String) -> Reaction {
    let mut victim = Session::open(&env.sec2).await;
    let body = victim.seal(&config::Request::GetStatus.encode());
    let cookie = mangle(&victim.cookie());
    exchange(env.sec2.addr, &post_with(PROV_CONFIG, &format!("Cookie: {cookie}\r\n"), &body)).await
}

/// Command0 with a cookie that names no session: a new session is opened and its own cookie set.
async fn made_up_cookie_handshake(env: &Env) -> Reaction {
    let mut http = HttpClient::connect(env.sec2.addr).await.unwrap();
    http.set_cookie(Some("session=12345")).unwrap();
    match http.request(PROV_SESSION, &command0(client_security(&env.sec2.security))).await {
        Ok(_) if http.cookie() != Some("session=12345") => Served,
        Ok(_) => Reaction::Unexpected("the made-up session id was taken".to_owned()),
        Err(e) => refusal(&e),
    }
}

/// Garbage on prov-session with the victim's cookie. Refused; note that a refused handshake message resets the
/// session it names (`DeviceSession::handle_handshake`, "as with ESP"), so the victim must handshake again.
async fn foreign_cookie_garbage_handshake(env: &Env) -> Reaction {
    let victim = Session::open(&env.sec2).await;
    let mut http = HttpClient::connect(env.sec2.addr).await.unwrap();
    http.set_cookie(Some(&victim.cookie())).unwrap();
    http.request(PROV_SESSION, &[0xff; 8]).await.map_or_else(|e| refusal(&e), |_| Served)
}

/// A valid Command0 with the victim's cookie: answered, and the victim's established session is gone (it restarted
/// as the attacker's half-open handshake), as on ESP, where a Command0 restarts the session it names.
async fn foreign_cookie_command0(env: &Env) -> Reaction {
    let mut victim = Session::open(&env.sec2).await;
    let mut http = HttpClient::connect(env.sec2.addr).await.unwrap();
    http.set_cookie(Some(&victim.cookie())).unwrap();
    let reaction = http.request(PROV_SESSION, &command0(client_security(&env.sec2.security))).await;
    let reaction = reaction.map_or_else(|e| refusal(&e), |_| Served);
    match victim.call(PROV_CONFIG, &config::Request::GetStatus.encode()).await {
        CloseWithoutResponse => reaction,
        other => Reaction::Unexpected(format!("{reaction:?}, and the victim's session still answers: {other:?}")),
    }
}

/// Handshakes left after their first message, each on its own connection: all answered, and (checked after every
/// case) the next client's handshake still completes.
async fn abandoned(env: &Env) -> Reaction {
    for n in 0..20 {
        let mut http = HttpClient::connect(env.sec1.addr).await.unwrap();
        if let Err(e) = http.request(PROV_SESSION, &command0(client_security(&env.sec1.security))).await {
            return Reaction::Unexpected(format!("Command0 {n}: {}", ErrorChain(&e)));
        }
    }
    Served
}

/// The victim's GetStatus, sealed, then altered by `tamper` before it is sent in the victim's session.
async fn tampered(env: &Env, tamper: fn(&mut Vec<u8>)) -> Reaction {
    let mut session = Session::open(&env.sec2).await;
    let mut body = session.seal(&config::Request::GetStatus.encode());
    tamper(&mut body);
    session.send(PROV_CONFIG, &body).await.map_or_else(|e| refusal(&e), |_| Served)
}

/// Five wrong passwords on a fresh daemon with the default limit, then the right one: refused with 429 and
/// Retry-After. Once that wait is over the right password succeeds (and forgives the count).
async fn lockout(_env: &Env) -> Reaction {
    let device = Device::start(sec2(Sec2Patch::Counter), GuessLimit::default().free_failures).await;
    // Made before the guesses, so that the wait the fifth starts is still on when it arrives.
    let right = post(PROV_SESSION, &command0(client_security(&device.security)));
    for n in 1..=GuessLimit::default().free_failures {
        match Session::handshake(device.addr, wrong_password()).await {
            Err(CloseWithoutResponse) => {}
            Err(other) => return Reaction::Unexpected(format!("wrong password {n}: {other:?}")),
            Ok(_) => return Reaction::Unexpected(format!("wrong password {n} accepted")),
        }
    }
    let locked = exchange(device.addr, &right).await;
    let Locked(secs) = locked else { return locked };
    tokio::time::sleep(Duration::from_secs(secs)).await;
    if let Err(refused) = Session::handshake(device.addr, client_security(&device.security)).await {
        return Reaction::Unexpected(format!("{locked:?}, but after the wait the right password got {refused:?}"));
    }
    locked
}

// ---------------------------------------------------------------------------------------------------------
// The run

async fn run(env: &Env, case: &Case) -> Reaction {
    let device = env.device(case.on);
    match &case.action {
        Action::Raw(bytes) => exchange(device.addr, bytes).await,
        Action::Sealed(endpoint, plaintext) => Session::open(device).await.call(endpoint, plaintext).await,
        Action::Script(script) => script(env).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_documented_reaction_and_harms_no_one() {
    let started = Instant::now();
    let env = Env {
        sec2: Device::start(sec2(Sec2Patch::Counter), 1_000_000).await,
        sec1: Device::start(sec1(), 1_000_000).await,
    };
    let cases = cases();
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "two cases named {:?}", case.name);
    }
    assert!(cases.len() >= 60, "{} cases", cases.len());

    let mut wrong = Vec::new();
    let mut slowest = Duration::ZERO;
    for case in &cases {
        let device = env.device(case.on);
        let before = device.store_bytes().await;
        let got = tokio::time::timeout(CASE_DEADLINE, run(&env, case))
            .await
            .unwrap_or_else(|_| panic!("{}: no reaction within {CASE_DEADLINE:?}", case.name));
        if got != case.expect {
            wrong.push(format!("{} ({}): expected {:?}, got {got:?}", case.name, case.group, case.expect));
        }
        assert!(device.store_bytes().await == before, "{}: the saved-network file changed", case.name);
        slowest = slowest.max(device.serves_a_legitimate_client().await);
    }
    assert!(wrong.is_empty(), "{} of {} cases reacted otherwise:\n{}", wrong.len(), cases.len(), wrong.join("\n"));

    // The store is still writable: a full provisioning on each daemon saves its network at the top.
    for device in [&env.sec2, &env.sec1] {
        let before = device.store_bytes().await;
        let mut client = Client::new(HttpClient::connect(device.addr).await.unwrap());
        client.establish(client_security(&device.security), &mut SeededRandom::new(rand_seed())).await.unwrap();
        let outcome = client.provision(b"home", b"correct-horse", poll(), |_| {}).await.unwrap();
        assert!(matches!(outcome, ProvisionOutcome::Connected(_)), "{outcome:?}");
        let after = device.store_bytes().await;
        assert_ne!(after, before);
        let saved = NetworkStore::open(device.state_dir.path()).load().unwrap();
        let order: Vec<&[u8]> = (0..saved.len()).map(|i| saved.get_at(i).unwrap().ssid().as_bytes()).collect();
        assert_eq!(order, [&b"home"[..], b"attic", b"office"]);
    }

    let mut groups = std::collections::BTreeMap::<&str, usize>::new();
    for case in &cases {
        *groups.entry(case.group).or_default() += 1;
    }
    println!(
        "{} cases in {:?} (slowest legitimate client after a case: {slowest:?}): {groups:?}",
        cases.len(),
        started.elapsed()
    );
}
