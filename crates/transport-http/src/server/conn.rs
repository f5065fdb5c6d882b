//! One client connection: read a request, dispatch it, answer or close, repeat while kept alive.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tracing::{Instrument, debug, info_span};
use wifiprov_dispatch::{Request, peer_warn};
use wifiprov_proto::endpoint::{Peer, ProtocommError, SessionId};

use super::Shared;
use super::slots::Slot;
use crate::io::{Buffered, ReadError};
use crate::wire::{self, BodyLength, CookieHeader, ErrorStatus, RequestHead, ResponseBody};

/// Whether the connection goes on after a request.
enum Next {
    KeepAlive,
    Close,
}

struct Connection {
    io: Buffered<TcpStream>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    slot: Slot,
    peer: Peer,
    /// The session this connection opened or last presented a cookie for (ESP's socket rule).
    session: Option<SessionId>,
    /// When the connection was accepted; its first request head must be complete within the header timeout.
    started: Instant,
    /// No request has been completed on it yet.
    first: bool,
}

/// Serves one accepted connection until it closes; `slot` is its place among
/// [`super::HttpConfig::max_connections`], released when this returns.
pub(super) async fn run(stream: TcpStream, address: SocketAddr, shared: Arc<Shared>, slot: Slot) {
    let span = info_span!("http_conn", peer = %address);
    let serve = async move {
        // Responses are written in one piece; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        debug!("connection opened");
        let stop = shared.stop.clone();
        let mut conn = Connection {
            io: Buffered::new(stream),
            shared,
            stop,
            slot,
            peer: super::peer_of(address),
            session: None,
            started: Instant::now(),
            first: true,
        };
        while let Next::KeepAlive = conn.serve_one().await {}
        debug!("connection closed");
    };
    serve.instrument(span).await;
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Also runs when the connection task is cancelled at shutdown.
        self.rebind(None);
    }
}

/// Completes with the reason when the connection must give up waiting for its client: the server is shutting
/// down, or wants the slot back.
async fn interrupted(stop: &mut watch::Receiver<bool>, slot: &Slot) -> &'static str {
    tokio::select! {
        biased;
        _ = stop.wait_for(|stopping| *stopping) => "shutting down",
        () = slot.reclaimed() => "closed to make room for another connection",
    }
}

impl Connection {
    /// Moves this connection to `session`, telling the dispatcher which sessions still have a live client.
    fn rebind(&mut self, session: Option<SessionId>) {
        if self.session == session {
            return;
        }
        if let Some(old) = self.session {
            self.shared.dispatcher.detach(old);
        }
        if let Some(new) = session {
            self.shared.dispatcher.attach(new);
        }
        self.session = session;
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits for the first byte of the next request, ignoring blank lines (which do not move the deadline).
    /// `false`: the connection should close (peer closed, timeout, shutdown, reclaimed).
    async fn await_request(&mut self, deadline: Instant) -> bool {
        self.io.skip_blank_lines();
        while self.io.buffered().is_empty() {
            tokio::select! {
                biased;
                reason = interrupted(&mut self.stop, &self.slot) => {
                    debug!(reason, "waiting connection closed");
                    return false;
                }
                read = self.io.fill() => match read {
                    Ok(0) => return false,
                    Ok(_) => self.io.skip_blank_lines(),
                    Err(e) => {
                        debug!(error = %e, "read failed");
                        return false;
                    }
                },
                () = sleep_until(deadline) => {
                    debug!(first = self.first, "no request in time; closing");
                    return false;
                }
            }
        }
        true
    }

    async fn serve_one(&mut self) -> Next {
        if self.stopping() {
            return Next::Close;
        }
        let config = &self.shared.config;
        let (wait_until, header_timeout) = (config.idle_timeout, config.header_timeout);
        let waiting = if self.first { self.started + header_timeout } else { Instant::now() + wait_until };
        if !self.await_request(waiting).await {
            return Next::Close;
        }
        let head_deadline = if self.first { self.started + header_timeout } else { Instant::now() + header_timeout };
        let max_head = self.shared.config.max_head;
        let read = tokio::select! {
            biased;
            reason = interrupted(&mut self.stop, &self.slot) => {
                debug!(reason, "closing a connection in the middle of a request head");
                return Next::Close;
            }
            read = timeout_at(head_deadline, self.io.read_head(max_head)) => read,
        };
        let head = match read {
            Ok(Ok(head)) => head,
            Ok(Err(ReadError::TooLarge)) => {
                peer_warn!(self.shared.dispatcher, limit = max_head, "request head too large; answering 431");
                let body = ResponseBody::for_request(self.io.buffered());
                return self.reject(ErrorStatus::HeaderTooLarge, body).await;
            }
            Ok(Err(ReadError::Eof { .. })) => {
                debug!("peer closed the connection in the middle of a request head");
                return Next::Close;
            }
            Ok(Err(ReadError::Io(e))) => {
                debug!(error = %e, "read failed");
                return Next::Close;
            }
            Err(_) => {
                peer_warn!(self.shared.dispatcher, timeout = ?header_timeout, "request head incomplete; closing");
                return Next::Close;
            }
        };
        let parsed = match wire::parse_request(&head) {
            Ok(parsed) => parsed,
            Err(e) => {
                let status = e.status();
                peer_warn!(self.shared.dispatcher, error = %e, "bad request; answering {}", status.code());
                return self.reject(status, ResponseBody::for_request(&head)).await;
            }
        };
        self.first = false;
        self.handle(parsed).await
    }

    async fn handle(&mut self, head: RequestHead) -> Next {
        let dispatcher = self.shared.dispatcher.clone();
        // ESP takes the endpoint name from the raw target, so a query string makes it unknown.
        let endpoint = head.target.strip_prefix('/').unwrap_or_default();
        if !dispatcher.has_endpoint(endpoint) {
            peer_warn!(dispatcher, method = %head.method, target = ?head.target, "unknown endpoint; answering 404");
            self.drain_body(head.body).await;
            return self.reject(ErrorStatus::NotFound, ResponseBody::for_request(head.method.as_bytes())).await;
        }
        if head.method != "POST" {
            peer_warn!(dispatcher, method = %head.method, endpoint, "method not allowed; answering 405");
            self.drain_body(head.body).await;
            return self.reject(ErrorStatus::MethodNotAllowed, ResponseBody::for_request(head.method.as_bytes())).await;
        }
        let config = &self.shared.config;
        let len = match head.body {
            BodyLength::Length(n) => usize::try_from(n).ok().filter(|n| (1..=config.max_body).contains(n)),
            _ => None,
        };
        let Some(len) = len else {
            // ESP accepts only a Content-Length of 1..=4096 and refuses anything else without an answer.
            peer_warn!(
                dispatcher,
                endpoint,
                body = ?head.body,
                max = config.max_body,
                "unacceptable request body length; closing without response"
            );
            return Next::Close;
        };
        let body_timeout = config.body_timeout;
        let read = tokio::select! {
            biased;
            reason = interrupted(&mut self.stop, &self.slot) => {
                debug!(reason, endpoint, "closing a connection in the middle of a request body");
                return Next::Close;
            }
            read = timeout(body_timeout, self.io.read_exact(len)) => read,
        };
        let body = match read {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                debug!(endpoint, error = ?e, "request body incomplete; closing");
                return Next::Close;
            }
            Err(_) => {
                peer_warn!(dispatcher, endpoint, timeout = ?body_timeout, "request body too slow; closing");
                return Next::Close;
            }
        };
        let claim = match &head.cookie {
            CookieHeader::One(value) => wire::cookie_session(value),
            CookieHeader::Absent => self.session,
            CookieHeader::Several => None,
        };
        let request = Request { peer: self.peer, claim, endpoint: endpoint.to_owned(), body };
        self.slot.busy();
        let answer = dispatcher.dispatch(request, "closing without response").await;
        self.slot.answered();
        // The session the request ran in (opened here, or named by a cookie) is this connection's from now on.
        if answer.session.is_some() {
            self.rebind(answer.session);
        }
        match answer.result {
            Ok(reply) => {
                let close = !head.keep_alive || self.stopping();
                let new_session = answer.session.filter(|_| answer.opened);
                let session = answer.session.map(|s| s.0);
                debug!(endpoint, session, len, reply = reply.len(), new_session = new_session.is_some(), "answered");
                let response = wire::ok_response(&reply, new_session, close);
                if !self.write(&response).await || close {
                    self.close().await;
                    return Next::Close;
                }
                Next::KeepAlive
            }
            // The one refusal a client is told about: a person must learn why the device will not talk, and for
            // how long. ESP has no such state, so its clients see an HTTP error, which they report. A proof refused
            // while another is checked (past the free failures) is told the same, with its short wait.
            Err(ProtocommError::LockedOut { retry_after } | ProtocommError::ProofInFlight { retry_after }) => {
                let secs = wifiprov_proto::endpoint::retry_after_secs(retry_after);
                if self.write(&wire::locked_response(secs)).await {
                    self.close().await;
                }
                Next::Close
            }
            // Already logged by the dispatcher.
            Err(_) => Next::Close,
        }
    }

    /// Reads and discards a body of acceptable size before an error response, so that closing the socket with
    /// unread data does not turn into a reset that could destroy the response on its way.
    async fn drain_body(&mut self, body: BodyLength) {
        let config = &self.shared.config;
        if let BodyLength::Length(n) = body
            && let Ok(n) = usize::try_from(n)
            && n <= config.max_body
        {
            let _ = timeout(config.body_timeout, self.io.read_exact(n)).await;
        }
    }

    /// Sends an error response (its body only if `body` says so) and closes.
    async fn reject(&mut self, status: ErrorStatus, body: ResponseBody) -> Next {
        if self.write(&wire::error_response(status, body)).await {
            self.close().await;
        }
        Next::Close
    }

    /// Writes all of `bytes`; `false` if the connection failed or stalled.
    async fn write(&mut self, bytes: &[u8]) -> bool {
        let deadline = Instant::now() + self.shared.config.write_timeout;
        match timeout_at(deadline, self.io.get_mut().write_all(bytes)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                debug!(error = %e, "write failed");
                false
            }
            Err(_) => {
                debug!("write timed out");
                false
            }
        }
    }

    /// Ends our side of the connection cleanly (FIN after the response).
    async fn close(&mut self) {
        let _ = timeout(self.shared.config.write_timeout, self.io.get_mut().shutdown()).await;
    }
}
