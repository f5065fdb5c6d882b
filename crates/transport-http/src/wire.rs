//! The small part of HTTP/1.1 that protocomm uses, as pure functions: parsing request and response heads, and
//! writing the few responses a device sends. No I/O here; see [`crate::io`] for the buffered reads.
//!
//! The syntax of a head (start line, field names and values, line endings) is checked by `httparse`, the parser
//! under hyper; this module adds protocomm's rules on top of it: CRLF line endings only, a bounded number of header
//! fields, an ASCII request target, the body framing ([`BodyLength`]), ESP's keep-alive rule and the raw `Cookie`
//! value ESP compares byte for byte.
//!
//! Only what ESP devices and ESP clients exchange is supported: requests are `METHOD /target HTTP/1.x` with a
//! fixed-length body; responses carry a `Content-Length`, or (from servers other than ours) a chunked or
//! close-delimited body.

use std::fmt::Write as _;

use wifiprov_proto::endpoint::SessionId;

/// Most header fields accepted in one head. esp_prov sends six and ESP devices answer with three or four;
/// `httparse` fills a fixed array, and 32 leaves room for any real peer while bounding the work per head.
pub(crate) const MAX_HEADERS: usize = 32;

/// Body of the `404 Not Found` response, as ESP devices send it.
pub(crate) const NOT_FOUND_BODY: &str = "Nothing matches the given URI";

/// Body of the `405 Method Not Allowed` response.
const METHOD_NOT_ALLOWED_BODY: &str = "Only POST is accepted on this URI";

/// Length of the head at the start of `buf`, blank line included, once it is complete.
///
/// A head ends at the first line feed followed by an empty line: `\r\n\r\n` from every real peer, but also
/// `\n\n` (or `\n\r\n`) from a peer using bare LF line endings. Those heads are refused (see
/// [`parse_request`]), and recognising their end here is what gets them that answer at once instead of after the
/// header timeout, waiting for a CRLFCRLF that never comes.
pub(crate) fn head_len(buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().find_map(|(i, &b)| match (b, buf.get(i + 1..)) {
        (b'\n', Some([b'\n', ..])) => Some(i + 2),
        (b'\n', Some([b'\r', b'\n', ..])) => Some(i + 3),
        _ => None,
    })
}

/// Length of the blank lines (CRLF) at the start of `buf`, which a client may send before a request.
pub(crate) fn leading_blank_lines(buf: &[u8]) -> usize {
    buf.chunks(2).take_while(|c| *c == b"\r\n").count() * 2
}

/// HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
}

/// How a message says its body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// Neither `Content-Length` nor `Transfer-Encoding`.
    Absent,
    /// A valid `Content-Length` (repeated headers agree).
    Length(u64),
    /// `Transfer-Encoding` whose last coding is `chunked`.
    Chunked,
    /// Some other `Transfer-Encoding`, or one next to a `Content-Length`.
    UnsupportedCoding,
    /// A `Content-Length` that is not a number, or several that disagree.
    Invalid,
}

/// The request's `Cookie` header(s), kept as raw bytes: ESP compares the value as an exact string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CookieHeader {
    Absent,
    One(Vec<u8>),
    /// More than one `Cookie` header; never matches a session.
    Several,
}

/// The parts of a request head the server acts on.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    /// The raw request target (`/prov-session`, query included if the client sent one).
    pub(crate) target: String,
    pub(crate) body: BodyLength,
    pub(crate) cookie: CookieHeader,
    /// Whether the client allows another request on this connection after the response.
    pub(crate) keep_alive: bool,
}

/// The parts of a response head the client acts on.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    /// The reason phrase; empty if the server sent none, or one with non-ASCII bytes.
    pub(crate) reason: String,
    pub(crate) body: BodyLength,
    /// The `name=value` part of the first `Set-Cookie` header.
    pub(crate) set_cookie: Option<String>,
    /// Whether the server allows another request on this connection.
    pub(crate) keep_alive: bool,
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// The head breaks the HTTP/1.1 syntax, or one of the rules protocomm adds to it; names the part.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// More than [`MAX_HEADERS`] header fields.
    #[error("too many header fields")]
    TooManyHeaders,
}

impl HeadError {
    /// What the device answers to a request head refused for this reason: `431` when it holds too many fields
    /// (RFC 6585 §5 covers their number as well as their size), `400` otherwise.
    pub(crate) fn status(self) -> ErrorStatus {
        match self {
            Self::Malformed(_) => ErrorStatus::BadRequest,
            Self::TooManyHeaders => ErrorStatus::HeaderTooLarge,
        }
    }

    /// A short description of the fault, as the client reports it for a response.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Self::Malformed(what) => what,
            Self::TooManyHeaders => "too many header fields",
        }
    }
}

impl From<httparse::Error> for HeadError {
    fn from(e: httparse::Error) -> Self {
        match e {
            httparse::Error::HeaderName => Self::Malformed("header name"),
            httparse::Error::HeaderValue => Self::Malformed("header value"),
            httparse::Error::NewLine => Self::Malformed("line ending"),
            httparse::Error::Status => Self::Malformed("status line"),
            // A method or request target that is not a token, or an empty one (a doubled space).
            httparse::Error::Token => Self::Malformed("request line"),
            httparse::Error::TooManyHeaders => Self::TooManyHeaders,
            httparse::Error::Version => Self::Malformed("http version"),
        }
    }
}

/// Header fields common to requests and responses.
struct Fields {
    body: BodyLength,
    cookie: CookieHeader,
    set_cookie: Option<String>,
    close: bool,
    keep_alive: bool,
}

/// Refuses any line ending but CRLF: a bare LF, or a CR not followed by LF, anywhere in the head.
///
/// RFC 9112 §2.2 lets a recipient accept a bare LF as a line ending (it is a "MAY"), and `httparse` does. The
/// device does not: every client that provisions ESP devices (esp_prov through Python's `http.client`, Espressif's
/// Android and iOS apps through their platforms' HTTP stacks, curl) writes CRLF, so refusing costs no real client;
/// a head that mixes line endings is what header-injection and request-smuggling attempts look like; and one rule
/// for every line (the one this module always had) is simpler to reason about than httparse's leniency plus
/// exceptions for bare CR. The client holds devices to the same rule. Such a head is answered with `400` as soon as
/// it ends (see [`head_len`]), never left waiting for the header timeout.
fn check_line_endings(head: &[u8]) -> Result<(), HeadError> {
    let bare = head.iter().enumerate().any(|(i, &b)| match b {
        b'\n' => i.checked_sub(1).and_then(|p| head.get(p)) != Some(&b'\r'),
        b'\r' => head.get(i + 1) != Some(&b'\n'),
        _ => false,
    });
    if bare { Err(HeadError::Malformed("line ending")) } else { Ok(()) }
}

/// The length `httparse` found for a head that must be complete and nothing more.
fn complete_head(status: httparse::Result<usize>, head: &[u8]) -> Result<(), HeadError> {
    match status? {
        httparse::Status::Complete(len) if len == head.len() => Ok(()),
        httparse::Status::Complete(_) => Err(HeadError::Malformed("data after the head")),
        httparse::Status::Partial => Err(HeadError::Malformed("incomplete head")),
    }
}

fn parse_version(minor: Option<u8>) -> Result<Version, HeadError> {
    match minor {
        Some(1) => Ok(Version::Http11),
        Some(0) => Ok(Version::Http10),
        _ => Err(HeadError::Malformed("http version")),
    }
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Strips optional whitespace (spaces and tabs) at both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Reads the fields protocomm acts on. `httparse` has checked names and values and trimmed the whitespace around
/// each value.
fn parse_fields(headers: &[httparse::Header<'_>]) -> Fields {
    let mut length: Option<Result<u64, ()>> = None;
    let mut coding: Option<bool> = None;
    let mut fields = Fields {
        body: BodyLength::Absent,
        cookie: CookieHeader::Absent,
        set_cookie: None,
        close: false,
        keep_alive: false,
    };
    for header in headers {
        let (name, value) = (header.name, header.value);
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_decimal(value).ok_or(());
            length = match (length, parsed) {
                (None, parsed) => Some(parsed),
                (Some(Ok(a)), Ok(b)) if a == b => Some(Ok(a)),
                _ => Some(Err(())),
            };
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().map(trim_ows).unwrap_or_default();
            coding = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("cookie") {
            fields.cookie = match fields.cookie {
                CookieHeader::Absent => CookieHeader::One(value.to_vec()),
                CookieHeader::One(_) | CookieHeader::Several => CookieHeader::Several,
            };
        } else if name.eq_ignore_ascii_case("set-cookie") {
            if fields.set_cookie.is_none() {
                let pair = value.split(|&b| b == b';').next().map(trim_ows).unwrap_or_default();
                fields.set_cookie = std::str::from_utf8(pair).ok().filter(|p| !p.is_empty()).map(str::to_owned);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(|&b| b == b',').map(trim_ows) {
                fields.close |= option.eq_ignore_ascii_case(b"close");
                fields.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    fields.body = match (coding, length) {
        (Some(true), None) => BodyLength::Chunked,
        (Some(_), _) => BodyLength::UnsupportedCoding,
        (None, Some(Ok(n))) => BodyLength::Length(n),
        (None, Some(Err(()))) => BodyLength::Invalid,
        (None, None) => BodyLength::Absent,
    };
    fields
}

fn keep_alive(version: Version, fields: &Fields) -> bool {
    match version {
        Version::Http11 => !fields.close,
        Version::Http10 => fields.keep_alive && !fields.close,
    }
}

/// Parses a request head: exactly the bytes up to and including its blank line, as [`head_len`] delimits it.
/// Blank lines before the request line are skipped, as RFC 9112 allows.
pub(crate) fn parse_request(head: &[u8]) -> Result<RequestHead, HeadError> {
    check_line_endings(head)?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    complete_head(request.parse(head), head)?;
    let version = parse_version(request.version)?;
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Err(HeadError::Malformed("request line"));
    };
    // httparse also lets UTF-8 through; ESP's targets, and the endpoint names they carry, are ASCII.
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HeadError::Malformed("request target"));
    }
    let fields = parse_fields(request.headers);
    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        body: fields.body,
        keep_alive: keep_alive(version, &fields),
        cookie: fields.cookie,
    })
}

/// Parses a response head: exactly the bytes up to and including its blank line, as [`head_len`] delimits it.
pub(crate) fn parse_response(head: &[u8]) -> Result<ResponseHead, HeadError> {
    check_line_endings(head)?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    complete_head(response.parse(head), head)?;
    let version = parse_version(response.version)?;
    // httparse takes any three digits; a status code starts with 1 to 9.
    let status = response.code.filter(|c| (100..=999).contains(c)).ok_or(HeadError::Malformed("status code"))?;
    let fields = parse_fields(response.headers);
    Ok(ResponseHead {
        status,
        reason: response.reason.unwrap_or_default().to_owned(),
        body: fields.body,
        keep_alive: keep_alive(version, &fields),
        set_cookie: fields.set_cookie,
    })
}

/// The session a `Cookie` header names, if its value is exactly `session=<decimal u32>` in the form the device
/// issues (no leading zeros, nothing else in the header), as ESP compares it.
pub(crate) fn cookie_session(value: &[u8]) -> Option<SessionId> {
    let digits = value.strip_prefix(b"session=")?;
    let id = u32::try_from(parse_decimal(digits)?).ok()?;
    (set_cookie_value(SessionId(id)).as_bytes() == value).then_some(SessionId(id))
}

/// The `Set-Cookie` value for a session: `session=<decimal id>`, with no attributes.
pub(crate) fn set_cookie_value(id: SessionId) -> String {
    format!("session={}", id.0)
}

/// Error statuses the device sends before closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorStatus {
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeaderTooLarge,
}

impl ErrorStatus {
    /// The status code.
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::HeaderTooLarge => 431,
        }
    }

    fn line_and_body(self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest => ("400 Bad Request", "Malformed request"),
            Self::NotFound => ("404 Not Found", NOT_FOUND_BODY),
            Self::MethodNotAllowed => ("405 Method Not Allowed", METHOD_NOT_ALLOWED_BODY),
            Self::HeaderTooLarge => ("431 Request Header Fields Too Large", "Request header is too large"),
        }
    }
}

/// A successful protocomm response, laid out as ESP's httpd does (`Content-Type: text/html`, then
/// `Content-Length`, then `Set-Cookie` on the first response of a session).
pub(crate) fn ok_response(body: &[u8], cookie: Option<SessionId>, close: bool) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n", body.len());
    if let Some(id) = cookie {
        // Writing to a String cannot fail.
        let _ = write!(head, "Set-Cookie: {}\r\n", set_cookie_value(id));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Whether an error response carries its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseBody {
    /// The body follows the head.
    Send,
    /// The head only: the answer to a `HEAD` request, which must not carry a body (RFC 9110 §9.3.2). Its
    /// `Content-Length` is still the length of the body a `GET` would have received, as RFC 9110 §8.6 requires of
    /// any `Content-Length` in a response to `HEAD` (so `0` would be wrong), and the head is the one a `GET` gets.
    Omit,
}

impl ResponseBody {
    /// For a request whose head starts with `head` (the whole head, or just its method): no body for `HEAD`.
    /// Also used on a head that could not be parsed, so that a broken `HEAD` request still gets no body.
    pub(crate) fn for_request(head: &[u8]) -> Self {
        match head.strip_prefix(b"HEAD") {
            Some([] | [b' ', ..]) => Self::Omit,
            _ => Self::Send,
        }
    }
}

/// The answer to a handshake refused during a wait after repeated wrong proofs: `429 Too Many Requests` with
/// `Retry-After` and a sentence a client can show as it is. The device closes the connection after it.
pub(crate) fn locked_response(retry_after_secs: u64) -> Vec<u8> {
    let text = format!("locked for {retry_after_secs} s after repeated wrong proofs of possession or passwords");
    let mut out = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Retry-After: {retry_after_secs}\r\nConnection: close\r\n\r\n",
        text.len()
    )
    .into_bytes();
    out.extend_from_slice(text.as_bytes());
    out
}

/// An error response; the device closes the connection after it.
pub(crate) fn error_response(status: ErrorStatus, body: ResponseBody) -> Vec<u8> {
    let (line, text) = status.line_and_body();
    let mut head = format!("HTTP/1.1 {line}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n", text.len());
    if status == ErrorStatus::MethodNotAllowed {
        // RFC 9110 §15.5.6: a 405 must name the methods the target does support.
        head.push_str("Allow: POST\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    match body {
        ResponseBody::Send => out.extend_from_slice(text.as_bytes()),
        ResponseBody::Omit => {}
    }
    out
}

#[cfg(test)]
mod tests;
