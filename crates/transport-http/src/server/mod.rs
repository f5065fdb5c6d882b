//! The server half: a device's protocomm endpoints as `POST /<endpoint>` over HTTP/1.1.

mod conn;
mod dispatch;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};
use wifiprov_proto::endpoint::Protocomm;
use wifiprov_proto::rng::SecureRandom;

/// Limits and timeouts of the server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Largest request body accepted. ESP devices accept 1..=4096 bytes (`MAX_REQ_BODY_LEN`) and clients are
    /// written for that limit.
    pub max_body: usize,
    /// Largest request head (request line and headers) accepted; larger ones get `431`.
    pub max_head: usize,
    /// Connections served at once. Further clients wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// How long a kept-alive connection may sit between requests. Keep it long: esp_prov holds one
    /// connection for a whole run, including while its user picks a network from the scan list.
    pub idle_timeout: Duration,
    /// Time allowed for a request head, from its first byte.
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
            idle_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What the server shares between connections: the device's protocomm instance, its random source (session
/// ids and handshake secrets) and the server limits.
///
/// Both locks are only held for short, synchronous steps and never across an `.await`; endpoint handlers run
/// without them. Lock order: protocomm, then random source.
pub struct Device {
    protocomm: Mutex<Protocomm>,
    rng: Mutex<Box<dyn SecureRandom + Send>>,
    config: HttpConfig,
    warnings: WarnLimiter,
}

impl Device {
    /// A device serving `protocomm`, drawing session ids and handshake secrets from `rng` (the OS random source
    /// in production: `wifiprov_proto::rng::OsRandom`).
    pub fn new(protocomm: Protocomm, rng: Box<dyn SecureRandom + Send>, config: HttpConfig) -> Self {
        Self { protocomm: Mutex::new(protocomm), rng: Mutex::new(rng), config, warnings: WarnLimiter::default() }
    }

    /// Runs `f` on the protocomm instance (to add endpoints, update the version, close sessions). Do not block
    /// in `f`: requests of every client wait for it.
    pub fn with_protocomm<R>(&self, f: impl FnOnce(&mut Protocomm) -> R) -> R {
        f(&mut self.lock_protocomm())
    }

    /// The server limits.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    fn lock_protocomm(&self) -> MutexGuard<'_, Protocomm> {
        // A panic while the lock was held can only come from a bug in protocomm itself; its tables are still
        // consistent enough to go on (at worst one session stays busy until evicted), which beats refusing
        // every client from now on.
        self.protocomm.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_rng(&self) -> MutexGuard<'_, Box<dyn SecureRandom + Send>> {
        self.rng.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Device");
        // `try_lock`: formatting must not deadlock when done from inside `with_protocomm`.
        match self.protocomm.try_lock() {
            Ok(protocomm) => d.field("protocomm", &*protocomm),
            Err(_) => d.field("protocomm", &"<locked>"),
        };
        d.field("config", &self.config).finish_non_exhaustive()
    }
}

/// Caps `warn`-level logs about misbehaving peers, so a flood of bad requests cannot flood the journal.
/// Suppressed messages are still logged at `debug`.
#[derive(Debug, Default)]
struct WarnLimiter(Mutex<WarnWindow>);

#[derive(Debug, Default)]
struct WarnWindow {
    start: Option<Instant>,
    issued: u32,
    suppressed: u32,
}

impl WarnLimiter {
    const WINDOW: Duration = Duration::from_secs(60);
    const BURST: u32 = 20;

    /// Whether the next peer warning may be logged at `warn`.
    fn allow(&self) -> bool {
        let now = Instant::now();
        let mut w = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if w.start.is_none_or(|start| now.duration_since(start) >= Self::WINDOW) {
            if w.suppressed > 0 {
                warn!(suppressed = w.suppressed, "peer warnings were rate-limited");
            }
            *w = WarnWindow { start: Some(now), issued: 0, suppressed: 0 };
        }
        if w.issued < Self::BURST {
            w.issued += 1;
            true
        } else {
            w.suppressed += 1;
            false
        }
    }
}

/// Logs peer misbehaviour at `warn`, or at `debug` once the rate limit is reached.
macro_rules! peer_warn {
    ($device:expr, $($arg:tt)+) => {
        if $device.warnings_allowed() {
            tracing::warn!($($arg)+);
        } else {
            tracing::debug!($($arg)+);
        }
    };
}
pub(crate) use peer_warn;

impl Device {
    fn warnings_allowed(&self) -> bool {
        self.warnings.allow()
    }
}

/// Serves protocomm over HTTP on `listener` until `shutdown` completes.
///
/// On shutdown it stops accepting, closes idle connections, lets requests already being handled finish and be
/// answered (for at most [`HttpConfig::shutdown_grace`]), then returns. Errors accepting a connection are logged
/// and retried; the function only fails if the listener is unusable from the start.
pub async fn serve(listener: TcpListener, device: Arc<Device>, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let local = listener.local_addr()?;
    let span = info_span!("http_server", %local);
    run(listener, device, shutdown).instrument(span).await;
    Ok(())
}

async fn run(listener: TcpListener, device: Arc<Device>, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(device.config.max_connections.max(1)));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut backoff = Duration::ZERO;
    let mut shutdown = std::pin::pin!(shutdown);
    info!(max_connections = device.config.max_connections, "serving protocomm over http");
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = connections.join_next() => report(done),
            (slot, accepted) = accept(&listener, &slots) => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::ZERO;
                    connections.spawn(conn::run(stream, peer, device.clone(), stopped.clone(), slot));
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
    if tokio::time::timeout(device.config.shutdown_grace, drain).await.is_err() {
        warn!(connections = connections.len(), "requests still running after the shutdown grace period; dropping them");
        connections.shutdown().await;
    }
    info!("stopped");
}

async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (OwnedSemaphorePermit, io::Result<(tokio::net::TcpStream, SocketAddr)>) {
    let slot = slots.clone().acquire_owned().await.expect("the connection semaphore is never closed");
    (slot, listener.accept().await)
}

fn report(done: Result<(), JoinError>) {
    match done {
        Ok(()) => {}
        Err(e) if e.is_panic() => error!("connection task panicked"),
        Err(e) => debug!(error = %e, "connection task cancelled"),
    }
}
