//! One client connection: read a request, dispatch it, answer or close, repeat while kept alive.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::{Instant, sleep, timeout, timeout_at};
use tracing::{Instrument, Span, debug, error, info_span};
use wifiprov_proto::endpoint::SessionId;

use super::dispatch::{self, Processed, Request};
use super::{Device, peer_warn};
use crate::io::{Buffered, ReadError};
use crate::wire::{self, BodyLength, ErrorStatus, RequestHead};
use wifiprov_proto::ErrorChain;

/// Whether the connection goes on after a request.
enum Next {
    KeepAlive,
    Close,
}

struct Connection {
    io: Buffered<TcpStream>,
    device: Arc<Device>,
    stop: watch::Receiver<bool>,
    /// The session this connection opened or last presented a cookie for (ESP's socket rule).
    session: Option<SessionId>,
    span: Span,
}

/// Serves one accepted connection until it closes. `_slot` is the connection's place under
/// [`super::HttpConfig::max_connections`], released when this returns.
pub(super) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    device: Arc<Device>,
    stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let span = info_span!("http_conn", %peer, session = tracing::field::Empty);
    let conn_span = span.clone();
    let serve = async move {
        // Responses are written in one piece; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        debug!("connection opened");
        let mut conn = Connection { io: Buffered::new(stream), device, stop, session: None, span: conn_span };
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

impl Connection {
    /// Moves this connection to `session`, telling protocomm which sessions still have a live client.
    fn rebind(&mut self, session: Option<SessionId>) {
        if self.session == session {
            return;
        }
        let mut protocomm = self.device.lock_protocomm();
        if let Some(old) = self.session {
            protocomm.detach(old);
        }
        if let Some(new) = session {
            protocomm.attach(new);
        }
        self.session = session;
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits for the start of the next request. `false`: the connection should close (peer closed, idle
    /// timeout, shutdown).
    async fn await_request(&mut self) -> bool {
        self.io.skip_blank_lines();
        while self.io.buffered().is_empty() {
            let idle = self.device.config.idle_timeout;
            tokio::select! {
                biased;
                () = stopped(&mut self.stop) => return false,
                read = self.io.fill() => match read {
                    Ok(0) => return false,
                    Ok(_) => self.io.skip_blank_lines(),
                    Err(e) => {
                        debug!(error = %e, "read failed");
                        return false;
                    }
                },
                () = sleep(idle) => {
                    debug!(?idle, "idle connection timed out");
                    return false;
                }
            }
        }
        true
    }

    async fn serve_one(&mut self) -> Next {
        if self.stopping() || !self.await_request().await {
            return Next::Close;
        }
        let config = &self.device.config;
        let head = match timeout(config.header_timeout, self.io.read_head(config.max_head)).await {
            Ok(Ok(head)) => head,
            Ok(Err(ReadError::TooLarge)) => {
                peer_warn!(self.device, limit = config.max_head, "request head too large; answering 431");
                return self.reject(ErrorStatus::HeaderTooLarge).await;
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
                peer_warn!(self.device, timeout = ?config.header_timeout, "request head incomplete; closing");
                return Next::Close;
            }
        };
        let head = match wire::parse_request(&head) {
            Ok(head) => head,
            Err(e) => {
                peer_warn!(self.device, error = %e, "bad request; answering 400");
                return self.reject(ErrorStatus::BadRequest).await;
            }
        };
        self.handle(head).await
    }

    async fn handle(&mut self, head: RequestHead) -> Next {
        // ESP takes the endpoint name from the raw target, so a query string makes it unknown.
        let endpoint = head.target.strip_prefix('/').unwrap_or_default();
        let known = self.device.with_protocomm(|p| p.endpoint_names().any(|name| name == endpoint));
        if !known {
            peer_warn!(self.device, method = %head.method, target = ?head.target, "unknown endpoint; answering 404");
            self.drain_body(head.body).await;
            return self.reject(ErrorStatus::NotFound).await;
        }
        if head.method != "POST" {
            peer_warn!(self.device, method = %head.method, endpoint, "method not allowed; answering 405");
            self.drain_body(head.body).await;
            return self.reject(ErrorStatus::MethodNotAllowed).await;
        }
        let config = &self.device.config;
        let len = match head.body {
            BodyLength::Length(n) => usize::try_from(n).ok().filter(|n| (1..=config.max_body).contains(n)),
            _ => None,
        };
        let Some(len) = len else {
            // ESP accepts only a Content-Length of 1..=4096 and refuses anything else without an answer.
            peer_warn!(
                self.device,
                endpoint,
                body = ?head.body,
                max = config.max_body,
                "unacceptable request body length; closing without response"
            );
            return Next::Close;
        };
        let body = match timeout(config.body_timeout, self.io.read_exact(len)).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                debug!(endpoint, error = ?e, "request body incomplete; closing");
                return Next::Close;
            }
            Err(_) => {
                peer_warn!(self.device, endpoint, timeout = ?config.body_timeout, "request body too slow; closing");
                return Next::Close;
            }
        };
        let request = Request {
            endpoint: endpoint.to_owned(),
            body,
            cookie: head.cookie,
            conn_session: self.session,
            now: Instant::now().into_std(),
        };
        let processed = match self.dispatch(request).await {
            Some(processed) => processed,
            None => return Next::Close,
        };
        self.rebind(processed.conn_session);
        if let Some(session) = processed.session {
            self.span.record("session", session.0);
        }
        match processed.outcome {
            Ok(reply) => {
                let close = !head.keep_alive || self.stopping();
                debug!(endpoint, len, reply = reply.body.len(), new_session = reply.new_session.is_some(), "answered");
                let response = wire::ok_response(&reply.body, reply.new_session, close);
                if !self.write(&response).await || close {
                    self.close().await;
                    return Next::Close;
                }
                Next::KeepAlive
            }
            Err(refusal) => {
                let session = processed.session.map(|s| s.0);
                if refusal.is_peer_fault() {
                    peer_warn!(
                        self.device,
                        endpoint,
                        session,
                        error = %ErrorChain(&refusal),
                        "request refused; closing without response"
                    );
                } else {
                    let error = ErrorChain(&refusal);
                    error!(endpoint, session, %error, "cannot serve request; closing without response");
                }
                Next::Close
            }
        }
    }

    /// Runs the request through protocomm on a blocking thread (handlers may block).
    async fn dispatch(&self, request: Request) -> Option<Processed> {
        let device = self.device.clone();
        // Keep the connection's span and whatever subscriber is in effect here (it may be scoped to this thread).
        let span = self.span.clone();
        let logs = tracing::dispatcher::get_default(Clone::clone);
        let work =
            move || tracing::dispatcher::with_default(&logs, || span.in_scope(|| dispatch::process(&device, request)));
        match tokio::task::spawn_blocking(work).await {
            Ok(processed) => Some(processed),
            Err(e) => {
                error!(error = %e, "request processing failed");
                None
            }
        }
    }

    /// Reads and discards a body of acceptable size before an error response, so that closing the socket with
    /// unread data does not turn into a reset that could destroy the response on its way.
    async fn drain_body(&mut self, body: BodyLength) {
        let config = &self.device.config;
        if let BodyLength::Length(n) = body
            && let Ok(n) = usize::try_from(n)
            && n <= config.max_body
        {
            let _ = timeout(config.body_timeout, self.io.read_exact(n)).await;
        }
    }

    /// Sends an error response and closes.
    async fn reject(&mut self, status: ErrorStatus) -> Next {
        if self.write(&wire::error_response(status)).await {
            self.close().await;
        }
        Next::Close
    }

    /// Writes all of `bytes`; `false` if the connection failed or stalled.
    async fn write(&mut self, bytes: &[u8]) -> bool {
        let deadline = Instant::now() + self.device.config.write_timeout;
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
        let _ = timeout(self.device.config.write_timeout, self.io.get_mut().shutdown()).await;
    }
}

/// Completes once the server shuts down (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}
