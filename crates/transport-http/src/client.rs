//! The client half: protocomm requests over exactly one HTTP/1.1 connection.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, ToSocketAddrs, lookup_host};
use tracing::debug;

use crate::error::TransportError;
use crate::io::{Buffered, ReadError};
use crate::wire::{self, BodyLength, trim_ows};
use wifiprov_proto::ErrorChain;

/// Largest response head the client reads.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Largest chunk-size line of a chunked response.
const MAX_CHUNK_LINE: usize = 1024;

/// Limits and timeouts of an [`HttpClient`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Time allowed to open the TCP connection (per address tried).
    pub connect_timeout: Duration,
    /// Time allowed for one request: sending it and receiving the whole response. A device answers `prov-scan`
    /// only after its scan finishes, so keep this well above a scan's duration. esp_prov uses 60 s.
    pub request_timeout: Duration,
    /// Largest response body accepted.
    pub max_response: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_response: 64 * 1024,
        }
    }
}

/// A protocomm client over one TCP connection, the way `esp_prov --transport httpd` talks to a device.
///
/// Every request goes out on the same connection. The client never opens a second one by itself: an ESP device
/// keeps one socket (`max_open_sockets = 1`) and older firmware ties the session to it, so a hidden reconnect
/// would silently end the session. When the connection breaks, requests fail with
/// [`TransportError::NotConnected`] until [`HttpClient::reconnect`] is called; the session cookie is kept, so a
/// device that tracks sessions by cookie (ESP since 2021, and wifiprov) continues the session.
pub struct HttpClient {
    addr: SocketAddr,
    host: String,
    config: ClientConfig,
    conn: Option<Buffered<TcpStream>>,
    cookie: Option<String>,
}

impl HttpClient {
    /// Connects to a device at `addr` (a `SocketAddr`, or `"host:port"` such as esp_prov's `192.168.4.1:80`) with
    /// the default [`ClientConfig`].
    pub async fn connect<A>(addr: A) -> Result<Self, TransportError>
    where
        A: ToSocketAddrs + fmt::Display,
    {
        Self::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects to a device at `addr` with `config`.
    pub async fn connect_with<A>(addr: A, config: ClientConfig) -> Result<Self, TransportError>
    where
        A: ToSocketAddrs + fmt::Display,
    {
        let host = addr.to_string();
        if host.is_empty() || host.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(TransportError::InvalidTarget { target: host });
        }
        let candidates =
            lookup_host(addr).await.map_err(|source| TransportError::Resolve { target: host.clone(), source })?;
        let mut last_error = None;
        for candidate in candidates {
            match open(candidate, config.connect_timeout).await {
                Ok(stream) => {
                    debug!(addr = %candidate, "connected");
                    return Ok(Self { addr: candidate, host, config, conn: Some(Buffered::new(stream)), cookie: None });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| TransportError::Resolve {
            target: host.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        }))
    }

    /// Drops the current connection, if any, and opens a new one to the same address. The session cookie is
    /// kept.
    pub async fn reconnect(&mut self) -> Result<(), TransportError> {
        self.conn = None;
        let stream = open(self.addr, self.config.connect_timeout).await?;
        debug!(addr = %self.addr, "reconnected");
        self.conn = Some(Buffered::new(stream));
        Ok(())
    }

    /// The device address in use.
    pub fn peer_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a connection is open (as far as the client knows: the device may have closed it meanwhile).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The cookie sent with requests: the `name=value` part of the last `Set-Cookie` the device sent.
    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// Replaces the cookie, for example to continue a session in a new client; `None` sends no cookie.
    pub fn set_cookie(&mut self, cookie: Option<&str>) -> Result<(), TransportError> {
        if let Some(c) = cookie
            && (c.is_empty() || !c.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
        {
            return Err(TransportError::InvalidCookie { cookie: c.to_owned() });
        }
        self.cookie = cookie.map(str::to_owned);
        Ok(())
    }

    /// Sends `body` to `endpoint` (`POST /<endpoint>`) and returns the response body of a `200 OK`.
    ///
    /// A device refuses a request by closing the connection without an answer, reported as
    /// [`TransportError::ConnectionClosed`].
    pub async fn request(&mut self, endpoint: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        if endpoint.is_empty() || !endpoint.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') {
            return Err(TransportError::InvalidEndpoint { endpoint: endpoint.to_owned() });
        }
        let conn = self.conn.as_mut().ok_or(TransportError::NotConnected { addr: self.addr })?;
        let request = encode_request(&self.host, endpoint, body, self.cookie.as_deref());
        let exchange = exchange(conn, &request, endpoint, self.config.max_response);
        let after = self.config.request_timeout;
        let response = match tokio::time::timeout(after, exchange).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.conn = None;
                debug!(endpoint, error = %ErrorChain(&e), "request failed; connection dropped");
                return Err(e);
            }
            Err(_) => {
                self.conn = None;
                return Err(TransportError::Timeout { endpoint: endpoint.to_owned(), after });
            }
        };
        if !response.keep_alive {
            self.conn = None;
        }
        if let Some(cookie) = response.set_cookie {
            debug!(endpoint, "device set a session cookie");
            self.cookie = Some(cookie);
        }
        debug!(endpoint, status = response.status, sent = body.len(), received = response.body.len(), "exchange");
        if response.status != 200 {
            return Err(TransportError::Status {
                endpoint: endpoint.to_owned(),
                status: response.status,
                reason: response.reason,
                body: response.body,
            });
        }
        Ok(response.body)
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("addr", &self.addr)
            .field("connected", &self.conn.is_some())
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

async fn open(addr: SocketAddr, after: Duration) -> Result<TcpStream, TransportError> {
    let stream = tokio::time::timeout(after, TcpStream::connect(addr))
        .await
        .map_err(|_| TransportError::ConnectTimeout { addr, after })?
        .map_err(|source| TransportError::Connect { addr, source })?;
    // Requests are written in one piece; do not let Nagle hold back the next one.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The request as esp_prov sends it (header names as in its transcripts; the device ignores case).
fn encode_request(host: &str, endpoint: &str, body: &[u8], cookie: Option<&str>) -> Vec<u8> {
    let mut head = format!(
        "POST /{endpoint} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Accept: text/plain\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(cookie) = cookie {
        head.push_str("Cookie: ");
        head.push_str(cookie);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

struct Response {
    status: u16,
    reason: String,
    body: Vec<u8>,
    set_cookie: Option<String>,
    keep_alive: bool,
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted)
}

async fn exchange(
    conn: &mut Buffered<TcpStream>,
    request: &[u8],
    endpoint: &str,
    max_response: usize,
) -> Result<Response, TransportError> {
    let closed = || TransportError::ConnectionClosed { endpoint: endpoint.to_owned() };
    let malformed = |what| TransportError::MalformedResponse { endpoint: endpoint.to_owned(), what };
    let io_error = |source| TransportError::Io { endpoint: endpoint.to_owned(), source };
    if !conn.buffered().is_empty() {
        return Err(malformed("data before the request was sent"));
    }
    if let Err(e) = conn.get_mut().write_all(request).await {
        // A device that refused the request early may close while the body is still being written.
        return Err(if is_disconnect(&e) { closed() } else { io_error(e) });
    }
    let mut first = true;
    let head = loop {
        let head = match conn.read_head(MAX_RESPONSE_HEAD).await {
            Ok(head) => head,
            Err(ReadError::Eof { received: 0 }) if first => return Err(closed()),
            Err(ReadError::Io(e)) if first && conn.buffered().is_empty() && is_disconnect(&e) => return Err(closed()),
            Err(ReadError::Eof { .. }) => return Err(malformed("truncated head")),
            Err(ReadError::TooLarge) => return Err(malformed("head too large")),
            Err(ReadError::Io(e)) => return Err(io_error(e)),
        };
        first = false;
        let head = wire::parse_response(&head).map_err(|e| malformed(e.what()))?;
        match head.status {
            101 => return Err(malformed("protocol switch")),
            100..=199 => continue,
            _ => break head,
        }
    };
    let body_error = |e| match e {
        ReadError::Eof { .. } => malformed("truncated body"),
        ReadError::TooLarge => TransportError::ResponseTooLarge { endpoint: endpoint.to_owned(), limit: max_response },
        ReadError::Io(e) => io_error(e),
    };
    let mut keep_alive = head.keep_alive;
    let body = match head.body {
        _ if head.status == 204 || head.status == 304 => Vec::new(),
        BodyLength::Length(n) => {
            let n = usize::try_from(n)
                .ok()
                .filter(|n| *n <= max_response)
                .ok_or_else(|| body_error(ReadError::TooLarge))?;
            conn.read_exact(n).await.map_err(body_error)?
        }
        BodyLength::Chunked => read_chunked(conn, max_response).await.map_err(|e| match e {
            ChunkError::Read(e) => body_error(e),
            ChunkError::Malformed => malformed("chunk framing"),
        })?,
        BodyLength::Absent => {
            keep_alive = false;
            conn.read_to_end(max_response).await.map_err(body_error)?
        }
        BodyLength::UnsupportedCoding => return Err(malformed("transfer coding")),
        BodyLength::Invalid => return Err(malformed("content length")),
    };
    Ok(Response { status: head.status, reason: head.reason, body, set_cookie: head.set_cookie, keep_alive })
}

enum ChunkError {
    Read(ReadError),
    Malformed,
}

impl From<ReadError> for ChunkError {
    fn from(e: ReadError) -> Self {
        Self::Read(e)
    }
}

async fn read_chunked(conn: &mut Buffered<TcpStream>, max: usize) -> Result<Vec<u8>, ChunkError> {
    let mut body = Vec::new();
    loop {
        let line = conn.read_line(MAX_CHUNK_LINE).await?;
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(trim_ows(size)).map_err(|_| ChunkError::Malformed)?;
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ChunkError::Malformed);
        }
        let size = usize::from_str_radix(size, 16).map_err(|_| ChunkError::Malformed)?;
        if size == 0 {
            // Trailer fields, then the blank line.
            while !conn.read_line(MAX_CHUNK_LINE).await?.is_empty() {}
            return Ok(body);
        }
        if body.len().saturating_add(size) > max {
            return Err(ChunkError::Read(ReadError::TooLarge));
        }
        body.extend(conn.read_exact(size).await?);
        if conn.read_exact(2).await? != b"\r\n" {
            return Err(ChunkError::Malformed);
        }
    }
}
