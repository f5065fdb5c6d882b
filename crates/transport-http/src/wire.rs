//! The small part of HTTP/1.1 that protocomm uses, as pure functions: parsing request and response heads, and
//! writing the few responses a device sends. No I/O here; see [`crate::io`] for the buffered reads.
//!
//! Only what ESP devices and ESP clients exchange is supported: requests are `METHOD /target HTTP/1.x` with a
//! fixed-length body; responses carry a `Content-Length`, or (from servers other than ours) a chunked or
//! close-delimited body.

use std::fmt::Write as _;

use wifiprov_proto::endpoint::SessionId;

/// The blank line that ends a message head.
const HEAD_END: &[u8] = b"\r\n\r\n";

/// Body of the `404 Not Found` response, as ESP devices send it.
pub(crate) const NOT_FOUND_BODY: &str = "Nothing matches the given URI";

/// Body of the `405 Method Not Allowed` response.
const METHOD_NOT_ALLOWED_BODY: &str = "Only POST is accepted on this URI";

/// Length of the head at the start of `buf`, blank line included, once it is complete.
pub(crate) fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(HEAD_END.len()).position(|w| w == HEAD_END).map(|p| p + HEAD_END.len())
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
    pub(crate) reason: String,
    pub(crate) body: BodyLength,
    /// The `name=value` part of the first `Set-Cookie` header.
    pub(crate) set_cookie: Option<String>,
    /// Whether the server allows another request on this connection.
    pub(crate) keep_alive: bool,
}

/// Why a head could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0}")]
pub(crate) struct Malformed(pub(crate) &'static str);

/// Header fields common to requests and responses.
struct Fields {
    body: BodyLength,
    cookie: CookieHeader,
    set_cookie: Option<String>,
    close: bool,
    keep_alive: bool,
}

/// Splits a head (with or without its final blank line) into lines, refusing bare CR or LF.
fn lines(head: &[u8]) -> Result<Vec<&[u8]>, Malformed> {
    let head = head.strip_suffix(HEAD_END).unwrap_or(head);
    let mut out = Vec::new();
    let mut rest = head;
    loop {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(p) => {
                let (line, tail) = rest.split_at(p);
                out.push(line);
                rest = tail.get(2..).unwrap_or_default();
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    if out.iter().any(|l| l.contains(&b'\r') || l.contains(&b'\n')) {
        return Err(Malformed("line ending"));
    }
    Ok(out)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().copied().all(is_tchar)
}

/// A field value may hold visible characters, spaces, tabs and obs-text, but no other control character.
fn is_field_value(s: &[u8]) -> bool {
    s.iter().all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f)
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

fn parse_version(s: &[u8]) -> Result<Version, Malformed> {
    match s {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        _ => Err(Malformed("http version")),
    }
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

fn parse_fields(lines: &[&[u8]]) -> Result<Fields, Malformed> {
    let mut length: Option<Result<u64, ()>> = None;
    let mut coding: Option<bool> = None;
    let mut fields = Fields {
        body: BodyLength::Absent,
        cookie: CookieHeader::Absent,
        set_cookie: None,
        close: false,
        keep_alive: false,
    };
    for line in lines {
        if let [b' ' | b'\t', ..] = line {
            return Err(Malformed("folded header line"));
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(Malformed("header line"))?;
        let (name, value) = line.split_at(colon);
        let value = trim_ows(value.get(1..).unwrap_or_default());
        if !is_token(name) {
            return Err(Malformed("header name"));
        }
        if !is_field_value(value) {
            return Err(Malformed("header value"));
        }
        let name = name.to_ascii_lowercase();
        match name.as_slice() {
            b"content-length" => {
                let parsed = parse_decimal(value).ok_or(());
                length = match (length, parsed) {
                    (None, parsed) => Some(parsed),
                    (Some(Ok(a)), Ok(b)) if a == b => Some(Ok(a)),
                    _ => Some(Err(())),
                };
            }
            b"transfer-encoding" => {
                let last = value.rsplit(|&b| b == b',').next().map(trim_ows).unwrap_or_default();
                coding = Some(last.eq_ignore_ascii_case(b"chunked"));
            }
            b"cookie" => {
                fields.cookie = match fields.cookie {
                    CookieHeader::Absent => CookieHeader::One(value.to_vec()),
                    _ => CookieHeader::Several,
                };
            }
            b"set-cookie" if fields.set_cookie.is_none() => {
                let pair = value.split(|&b| b == b';').next().map(trim_ows).unwrap_or_default();
                fields.set_cookie = std::str::from_utf8(pair).ok().filter(|p| !p.is_empty()).map(str::to_owned);
            }
            b"connection" => {
                for option in value.split(|&b| b == b',').map(trim_ows) {
                    fields.close |= option.eq_ignore_ascii_case(b"close");
                    fields.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            _ => {}
        }
    }
    fields.body = match (coding, length) {
        (Some(true), None) => BodyLength::Chunked,
        (Some(_), _) => BodyLength::UnsupportedCoding,
        (None, Some(Ok(n))) => BodyLength::Length(n),
        (None, Some(Err(()))) => BodyLength::Invalid,
        (None, None) => BodyLength::Absent,
    };
    Ok(fields)
}

fn keep_alive(version: Version, fields: &Fields) -> bool {
    match version {
        Version::Http11 => !fields.close,
        Version::Http10 => fields.keep_alive && !fields.close,
    }
}

/// Parses a request head. Blank lines before the request line are skipped, as RFC 9112 allows.
pub(crate) fn parse_request(head: &[u8]) -> Result<RequestHead, Malformed> {
    let lines = lines(head)?;
    let mut lines = lines.iter().copied().skip_while(|l| l.is_empty());
    let request_line = lines.next().ok_or(Malformed("request line"))?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed("request line"));
    };
    if !is_token(method) {
        return Err(Malformed("method"));
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(Malformed("request target"));
    }
    let version = parse_version(version)?;
    let rest: Vec<&[u8]> = lines.collect();
    let fields = parse_fields(&rest)?;
    Ok(RequestHead {
        // Both were checked to be ASCII above.
        method: String::from_utf8_lossy(method).into_owned(),
        target: String::from_utf8_lossy(target).into_owned(),
        body: fields.body,
        keep_alive: keep_alive(version, &fields),
        cookie: fields.cookie,
    })
}

/// Parses a response head.
pub(crate) fn parse_response(head: &[u8]) -> Result<ResponseHead, Malformed> {
    let lines = lines(head)?;
    let (status_line, rest) = lines.split_first().ok_or(Malformed("status line"))?;
    let mut parts = status_line.splitn(3, |&b| b == b' ');
    let version = parse_version(parts.next().unwrap_or_default())?;
    let status = match parts.next() {
        Some(code @ [b'1'..=b'9', b'0'..=b'9', b'0'..=b'9']) => parse_decimal(code).and_then(|c| u16::try_from(c).ok()),
        _ => None,
    }
    .ok_or(Malformed("status code"))?;
    let reason = parts.next().unwrap_or_default();
    if !is_field_value(reason) {
        return Err(Malformed("reason phrase"));
    }
    let fields = parse_fields(rest)?;
    Ok(ResponseHead {
        status,
        reason: String::from_utf8_lossy(reason).into_owned(),
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

/// An error response; the device closes the connection after it.
pub(crate) fn error_response(status: ErrorStatus) -> Vec<u8> {
    let (line, body) = status.line_and_body();
    format!(
        "HTTP/1.1 {line}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests;
