//! The server half: a device's protocomm endpoints as `POST /<endpoint>` over HTTP/1.1.

mod conn;
mod slots;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tracing::{Instrument, debug, error, info, info_span, warn};
use wifiprov_dispatch::Dispatcher;

use slots::Slots;

/// Limits and timeouts of the server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Largest request body accepted. ESP devices accept 1..=4096 bytes (`MAX_REQ_BODY_LEN`) and clients are
    /// written for that limit.
    pub max_body: usize,
    /// Largest request head (request line and headers) accepted; larger ones get `431`.
    pub max_head: usize,
    /// Connections served at once. When all are taken, a new connection makes room by closing a waiting one
    /// (see [`serve`]).
    pub max_connections: usize,
    /// How long a kept-alive connection may wait between requests. esp_prov holds one connection for a whole
    /// run, including while its user picks a network from the scan list, and reports a failure if the device
    /// closed it meanwhile; its own timeout per request is 60 s.
    pub idle_timeout: Duration,
    /// Time allowed for a complete request head: from the connection's start for its first request, from the
    /// request's first byte for later ones. Blank lines before a request count against it, not for it.
    pub header_timeout: Duration,
    /// Time allowed for a request body, once its head has arrived.
    pub body_timeout: Duration,
    /// Time allowed to write a response.
    pub write_timeout: Duration,
    /// On shutdown, how long requests already being handled may take to finish before their connections are
    /// dropped.
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body: 4096,
            max_head: 8 * 1024,
            max_connections: 32,
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Connections the kernel completes and queues for the server before it accepts them. The usual default (128)
/// is less than what one attacker in radio range opens in a burst; past it the kernel drops a newcomer's SYN and
/// the client only retries a second later. The server takes queued connections fast (turning away the noisiest
/// peer's when it must), so a deep queue costs little.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Binds `address` for [`serve`], with a listen queue of [`LISTEN_BACKLOG`]. Must be called inside a tokio
/// runtime.
pub fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As every server on Linux: a restarted daemon must not wait for the old connections' TIME_WAIT to end.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// What the connection tasks share.
struct Shared {
    dispatcher: Arc<Dispatcher>,
    config: HttpConfig,
    slots: Slots,
    stop: watch::Receiver<bool>,
}

/// Serves `dispatcher`'s protocomm endpoints over HTTP on `listener` (bind it with [`listen`]) until `shutdown`
/// completes.
///
/// Connections: at most [`HttpConfig::max_connections`] at once. When all are taken, a new connection makes
/// room by closing one that is waiting for its client (between requests, or still sending its request head or
/// body), never one whose request is being handled: one of the peer holding the most connections (the new one
/// counted), the one whose last request was answered longest ago (or that never completed one). ESP's httpd
/// likewise closes its least recently used socket. Each such close is logged, rate-limited. While as many
/// connections again are still on their way out (a peer reconnecting as fast as it is closed), a new connection
/// of the peer holding the most is closed at once instead. A connection also
/// closes when its client leaves it waiting past [`HttpConfig::idle_timeout`] between requests, or takes longer
/// than [`HttpConfig::header_timeout`] over a request head; blank lines do not count as progress.
///
/// On shutdown it stops accepting, closes waiting connections, lets requests already being handled finish and be
/// answered (for at most [`HttpConfig::shutdown_grace`]), then returns. Errors accepting a connection are logged
/// and retried; the function only fails if the listener is unusable from the start.
pub async fn serve(
    listener: TcpListener,
    dispatcher: Arc<Dispatcher>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let span = info_span!("http_server", %local);
    run(listener, dispatcher, config, shutdown).instrument(span).await;
    Ok(())
}

async fn run(
    listener: TcpListener,
    dispatcher: Arc<Dispatcher>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = watch::channel(false);
    let shared = Arc::new(Shared { slots: Slots::new(config.max_connections), dispatcher, config, stop: stopped });
    let mut connections = JoinSet::new();
    let mut backoff = Duration::ZERO;
    let mut shutdown = std::pin::pin!(shutdown);
    info!(max_connections = shared.config.max_connections, "serving protocomm over http");
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = connections.join_next() => report(done),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::ZERO;
                    let slot = tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        slot = shared.slots.admit(peer.ip(), &shared.dispatcher) => slot,
                    };
                    // Turned away: dropping the stream closes it.
                    if let Some(slot) = slot {
                        connections.spawn(conn::run(stream, peer, shared.clone(), slot));
                    }
                }
                Err(e) => {
                    // Running out of file descriptors and the like: keep serving the connections we have.
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                    error!(error = %e, retry_in = ?backoff, "accept failed");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    stop.send_replace(true);
    info!(connections = connections.len(), "shutting down");
    let drain = async {
        while let Some(done) = connections.join_next().await {
            report(done);
        }
    };
    if tokio::time::timeout(shared.config.shutdown_grace, drain).await.is_err() {
        warn!(connections = connections.len(), "requests still running after the shutdown grace period; dropping them");
        connections.shutdown().await;
    }
    info!("stopped");
}

fn report(done: Result<(), JoinError>) {
    match done {
        Ok(()) => {}
        Err(e) if e.is_panic() => error!("connection task panicked"),
        Err(e) => debug!(error = %e, "connection task cancelled"),
    }
}

/// The address a peer is known by: its IP address, so that all connections of one client count together.
fn peer_of(address: SocketAddr) -> wifiprov_proto::endpoint::Peer {
    wifiprov_proto::endpoint::Peer::new(match address.ip() {
        std::net::IpAddr::V4(ip) => ip.to_ipv6_mapped().to_bits(),
        std::net::IpAddr::V6(ip) => ip.to_bits(),
    })
}
