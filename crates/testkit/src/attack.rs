//! Load generators that play an attacker against an HTTP provisioning daemon on loopback.
//!
//! Tests and benchmarks run a legitimate provisioning while one of these attacks runs, to show that the daemon
//! cannot be locked out: by connections that hold a slot without ever finishing a request ([`Attack::SlowDrip`],
//! [`Attack::Idle`], [`Attack::BlankLines`]), by a flood of cheap requests ([`Attack::ProtoVerLoop`]), or by
//! handshake sessions that are opened and abandoned ([`Attack::AbandonedHandshakes`]).
//!
//! Every attack connection is made from a source address of the caller's choosing. On Linux, `127.0.0.2` is a
//! loopback peer distinct from the `127.0.0.1` the legitimate client uses, so a daemon that shares its capacity
//! per peer can tell the two apart. Each connection runs in a task of its own until [`RunningAttack::stop`]; when
//! the daemon closes it, the task reconnects after [`RECONNECT_PAUSE`], so the pressure lasts the whole test.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// How long an attack connection waits before reconnecting after the daemon closed it or a connect failed. An
/// attacker that reconnects in a tight loop only measures the loopback's accept rate (and takes the CPU the
/// daemon under test needs); a short pause still refills any slot the daemon frees within milliseconds.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// The most an attack connection buffers for one answer, head and body together. The daemon's answers are a few
/// hundred bytes; anything larger is treated as a protocol error, so a broken daemon cannot make the attacker
/// grow without bound.
const MAX_ANSWER: usize = 64 * 1024;

/// How long [`RunningAttack::stop`] lets the tasks end on their own before aborting them.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The shortest drip interval: `tokio::time::interval` panics on zero, and a zero interval would be a busy loop
/// rather than a slow attack.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The body of a `proto-ver` request: the daemon answers its version string to any body.
const PROTO_VER_BODY: &[u8] = b"---";

/// One kind of attack. Each variant says how many connections it keeps open at once; every connection runs the
/// same script in a task of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attack {
    /// `connections` connections that each send a request head one byte every `interval`, never finishing it: a
    /// valid start (`POST /prov-session HTTP/1.1`, `Host`, then an `X-Slow: aaaa…` header that never ends).
    /// An `interval` under 1 ms is raised to 1 ms.
    SlowDrip {
        /// Connections held at once.
        connections: usize,
        /// The pause between two bytes.
        interval: Duration,
    },
    /// `connections` connections that connect and send nothing.
    Idle {
        /// Connections held at once.
        connections: usize,
    },
    /// `connections` connections that send only `"\r\n"` every `interval` (blank lines a server may skip before a
    /// request line). An `interval` under 1 ms is raised to 1 ms.
    BlankLines {
        /// Connections held at once.
        connections: usize,
        /// The pause between two blank lines.
        interval: Duration,
    },
    /// `connections` connections, each sending cookie-less `POST /proto-ver` requests back to back (waiting for
    /// each answer before sending the next), as fast as the daemon answers.
    ProtoVerLoop {
        /// Connections held at once.
        connections: usize,
    },
    /// `connections` connections that each send one cookie-less `POST /prov-session` with `command0` as body (a
    /// handshake's first message), read the answer, then go silent and hold the connection open: the session is
    /// abandoned after Command0. The body is sent as given; an empty body or one over 4096 bytes is a request the
    /// daemon refuses, which turns the attack into a reconnect loop.
    AbandonedHandshakes {
        /// Connections held at once.
        connections: usize,
        /// The body of the `prov-session` request, e.g. a security-2 `SessionData` holding `Command0`.
        command0: Vec<u8>,
    },
}

impl Attack {
    /// The number of connections and what each one does.
    fn into_script(self, target: SocketAddr) -> (usize, Script) {
        match self {
            Self::SlowDrip { connections, interval } => {
                let head = format!("POST /prov-session HTTP/1.1\r\nHost: {target}\r\nX-Slow: ").into_bytes();
                (connections, Script::Drip { head, interval: interval.max(MIN_INTERVAL) })
            }
            Self::Idle { connections } => (connections, Script::Idle),
            Self::BlankLines { connections, interval } => {
                (connections, Script::BlankLines { interval: interval.max(MIN_INTERVAL) })
            }
            Self::ProtoVerLoop { connections } => {
                (connections, Script::RequestLoop { request: request(target, "proto-ver", PROTO_VER_BODY) })
            }
            Self::AbandonedHandshakes { connections, command0 } => {
                (connections, Script::Abandon { request: request(target, "prov-session", &command0) })
            }
        }
    }
}

/// What one attack connection does after connecting; shared by all connections of an attack.
#[derive(Debug)]
enum Script {
    /// Send `head` one byte per `interval`, then `a` forever.
    Drip { head: Vec<u8>, interval: Duration },
    /// Send nothing.
    Idle,
    /// Send `"\r\n"` every `interval`.
    BlankLines { interval: Duration },
    /// Send `request`, read the answer, repeat.
    RequestLoop { request: Vec<u8> },
    /// Send `request`, read the answer, go silent.
    Abandon { request: Vec<u8> },
}

/// A cookie-less request as the wifiprov client sends it, so the daemon cannot single the attacker out by its
/// headers.
fn request(target: SocketAddr, endpoint: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /{endpoint} HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Accept: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// What an attack did so far. Counters only grow; they cover every connection the attack opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttackStats {
    /// Connections opened.
    pub connections: u64,
    /// Connections that ended other than by [`RunningAttack::stop`]: the daemon closed them, or answered
    /// something the attacker treats as a close (a status other than 200, an answer it cannot parse or over
    /// 64 KiB).
    pub closed_by_device: u64,
    /// Complete requests sent.
    pub requests: u64,
    /// `200` answers read.
    pub answers: u64,
    /// Bytes written to the daemon, over all connections.
    pub bytes_sent: u64,
}

/// The counters the connection tasks share with their [`RunningAttack`].
#[derive(Debug, Default)]
struct Shared {
    connections: AtomicU64,
    closed_by_device: AtomicU64,
    requests: AtomicU64,
    answers: AtomicU64,
    bytes_sent: AtomicU64,
    /// Woken on every counter change, so a waiter needs no polling.
    changed: Notify,
}

impl Shared {
    /// Adds `n` to `counter`, one of `self`'s fields. Release pairs with the Acquire loads in
    /// [`Shared::snapshot`]: a reader that sees a count also sees every count the same task made before it.
    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// The counters now. Each task bumps `closed_by_device` before its next `connections`, and `requests` before
    /// the matching `answers`; loading the later counter first keeps a snapshot consistent with that order
    /// (`answers <= requests`, `connections - initial <= closed_by_device`).
    fn snapshot(&self) -> AttackStats {
        let connections = self.connections.load(Ordering::Acquire);
        let answers = self.answers.load(Ordering::Acquire);
        AttackStats {
            connections,
            closed_by_device: self.closed_by_device.load(Ordering::Acquire),
            requests: self.requests.load(Ordering::Acquire),
            answers,
            bytes_sent: self.bytes_sent.load(Ordering::Acquire),
        }
    }
}

/// One of the lockout attempts the daemon must withstand (issue #10), as its tests and its benchmark run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutAttempt {
    /// What it is, for reports.
    pub name: &'static str,
    /// The attack.
    pub attack: Attack,
}

/// The lockout attempts, bounded in count: 200 slow-drip connections, 32 idle connections, 32 connections sending
/// blank lines, a loop of cookie-less `proto-ver` requests (on two connections), 16 handshakes abandoned after
/// `command0` (a security 2 Command0, as an attacker would send it).
pub fn lockout_attempts(command0: Vec<u8>) -> Vec<LockoutAttempt> {
    let attempt = |name, attack| LockoutAttempt { name, attack };
    vec![
        attempt(
            "200 slow-drip connections",
            Attack::SlowDrip { connections: 200, interval: Duration::from_millis(100) },
        ),
        attempt("32 idle connections", Attack::Idle { connections: 32 }),
        attempt(
            "32 connections sending blank lines",
            Attack::BlankLines { connections: 32, interval: Duration::from_millis(50) },
        ),
        attempt("a loop of cookie-less proto-ver requests", Attack::ProtoVerLoop { connections: 2 }),
        attempt("16 handshakes abandoned after Command0", Attack::AbandonedHandshakes { connections: 16, command0 }),
    ]
}

impl LockoutAttempt {
    /// Launches the attack and waits until it is in place: as many connections opened as it holds at once (at
    /// most `slots`, what the daemon serves at once), and for attacks that send whole requests, each answered
    /// once. `Err` with the counters if that did not happen within `timeout`.
    pub async fn launch(
        self,
        target: SocketAddr,
        source: IpAddr,
        slots: usize,
        timeout: Duration,
    ) -> Result<RunningAttack, AttackStats> {
        let (connections, answered) = match &self.attack {
            Attack::SlowDrip { connections, .. }
            | Attack::Idle { connections }
            | Attack::BlankLines { connections, .. } => (*connections, false),
            Attack::ProtoVerLoop { connections } | Attack::AbandonedHandshakes { connections, .. } => {
                (*connections, true)
            }
        };
        let running = launch(self.attack, target, source);
        let wanted = u64::try_from(connections.min(slots)).unwrap_or(u64::MAX);
        let in_place =
            running.wait_for(|s| s.connections >= wanted && (!answered || s.answers >= wanted), timeout).await;
        if in_place { Ok(running) } else { Err(running.stop().await) }
    }
}

/// An attack in progress, from [`launch`]. Its tasks run until [`RunningAttack::stop`]; dropping it also ends
/// them (they see the stop channel close) but does not wait for them.
#[derive(Debug)]
pub struct RunningAttack {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts `attack` against the daemon at `target`, with one task per connection, every connection made from
/// `source` (port chosen by the system).
///
/// # Panics
///
/// When called outside a tokio runtime.
pub fn launch(attack: Attack, target: SocketAddr, source: IpAddr) -> RunningAttack {
    let (connections, script) = attack.into_script(target);
    let script = Arc::new(script);
    let shared = Arc::new(Shared::default());
    let (stop, stopped) = watch::channel(false);
    let tasks = (0..connections)
        .map(|_| tokio::spawn(connection_task(script.clone(), target, source, shared.clone(), stopped.clone())))
        .collect();
    RunningAttack { shared, stop, tasks }
}

impl RunningAttack {
    /// Waits until at least `n` connections have been opened in total (reconnections count), so a test can start
    /// its legitimate client once the attack is in place. False if that did not happen within `timeout`.
    pub async fn wait_connected(&self, n: usize, timeout: Duration) -> bool {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.wait_for(|stats| stats.connections >= n, timeout).await
    }

    /// Waits until `condition` holds for the counters, checking on every change, so a test can wait for answers
    /// or bytes without polling. False if it did not hold within `timeout`.
    pub async fn wait_for(&self, mut condition: impl FnMut(&AttackStats) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            // Created before the check: a `Notified` sees every `notify_waiters` made after its creation, so a
            // change between the check and the wait is not lost.
            let changed = self.shared.changed.notified();
            if condition(&self.stats()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return condition(&self.stats());
            }
        }
    }

    /// The counters now.
    pub fn stats(&self) -> AttackStats {
        self.shared.snapshot()
    }

    /// Stops every connection task, waits for them (aborting any still running after a second), and returns the
    /// final counters. Every attack connection is closed when this returns.
    ///
    /// # Panics
    ///
    /// When a connection task panicked: that is a bug in this module, and the test should show it.
    pub async fn stop(self) -> AttackStats {
        // `send` fails when no task is left to listen; `send_replace` stores the value regardless.
        self.stop.send_replace(true);
        let deadline = Instant::now() + STOP_GRACE;
        for mut task in self.tasks {
            let ended = match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(ended) => ended,
                Err(_) => {
                    task.abort();
                    task.await
                }
            };
            if let Err(error) = ended
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
        self.shared.snapshot()
    }
}

/// One attack connection: connect, play the script until the daemon closes the connection, pause, repeat, until
/// stopped. The stop signal is raced against every step, so a stop never waits for the daemon.
async fn connection_task(
    script: Arc<Script>,
    target: SocketAddr,
    source: IpAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let connected = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            connected = connect(target, source) => connected,
        };
        // A failed connect (the daemon's backlog is full, or it is not up yet) is retried after the same pause.
        if let Ok(stream) = connected {
            shared.add(&shared.connections, 1);
            tokio::select! {
                biased;
                () = stopped(&mut stop) => return,
                () = play(&script, stream, &shared) => shared.add(&shared.closed_by_device, 1),
            }
        }
        tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}

/// Resolves once the attack is stopped, or its [`RunningAttack`] was dropped (the channel closed).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // Either outcome means stop: Ok when `true` was sent, Err when the sender is gone.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Opens a connection to `target` from `source`.
async fn connect(target: SocketAddr, source: IpAddr) -> std::io::Result<TcpStream> {
    let socket = if source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target).await?;
    // A drip must leave as one segment per byte, not wait for Nagle to batch it behind the peer's delayed ACK.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs `script` on `stream`; returns when the daemon closed the connection (or gave an answer that counts as
/// closing it). Every silent phase reads the socket, so a close is noticed at once.
async fn play(script: &Script, mut stream: TcpStream, shared: &Shared) {
    match script {
        Script::Drip { head, interval } => {
            trickle(&mut stream, *interval, head.iter().copied().chain(std::iter::repeat(b'a')), 1, shared).await;
        }
        Script::Idle => until_closed(&mut stream).await,
        Script::BlankLines { interval } => {
            trickle(&mut stream, *interval, b"\r\n".iter().copied().cycle(), 2, shared).await;
        }
        Script::RequestLoop { request } => {
            let mut answers = AnswerReader::default();
            while send_request(&mut stream, request, shared).await && answers.read_answer(&mut stream).await == Ok(200)
            {
                shared.add(&shared.answers, 1);
            }
        }
        Script::Abandon { request } => {
            let mut answers = AnswerReader::default();
            if send_request(&mut stream, request, shared).await && answers.read_answer(&mut stream).await == Ok(200) {
                shared.add(&shared.answers, 1);
                until_closed(&mut stream).await;
            }
        }
    }
}

/// Writes `unit` bytes of `bytes` every `interval` (the first at once) until the daemon closes the connection.
async fn trickle(
    stream: &mut TcpStream,
    interval: Duration,
    mut bytes: impl Iterator<Item = u8>,
    unit: usize,
    shared: &Shared,
) {
    let mut ticks = tokio::time::interval(interval);
    // After a late tick, keep the pace instead of catching up with a burst: the attack must stay slow.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut chunk = Vec::with_capacity(unit);
    loop {
        tokio::select! {
            () = until_closed(stream) => return,
            _ = ticks.tick() => {
                chunk.clear();
                chunk.extend(bytes.by_ref().take(unit));
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                shared.add(&shared.bytes_sent, chunk.len() as u64);
            }
        }
    }
}

/// Writes one complete request; false when the connection is gone.
async fn send_request(stream: &mut TcpStream, request: &[u8], shared: &Shared) -> bool {
    if stream.write_all(request).await.is_err() {
        return false;
    }
    shared.add(&shared.bytes_sent, request.len() as u64);
    shared.add(&shared.requests, 1);
    true
}

/// Reads and discards until the daemon closes the connection (end of stream or an error): how a silent attacker
/// notices it was dropped. Cancel-safe, so it can sit in a `select!` beside a timer.
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) {
    let mut sink = [0u8; 1024];
    while let Ok(1..) = stream.read(&mut sink).await {}
}

/// Why no answer could be read. The attacker treats each one as the daemon closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerError {
    /// The connection ended (end of stream or a read error) before a whole answer arrived.
    Closed,
    /// The answer (head and body) would exceed [`MAX_ANSWER`].
    TooLarge,
    /// The head is not an HTTP/1.x status line and headers with one `Content-Length`.
    Malformed,
}

/// Reads HTTP/1.1 answers off a connection, keeping bytes received past one answer for the next. Holds at most
/// [`MAX_ANSWER`] bytes.
#[derive(Debug, Default)]
struct AnswerReader {
    buf: Vec<u8>,
}

impl AnswerReader {
    /// Reads one answer (head, then `Content-Length` bytes of body, which are discarded) and returns its status.
    async fn read_answer(&mut self, stream: &mut (impl AsyncRead + Unpin)) -> Result<u16, AnswerError> {
        let head_len = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill(stream).await?;
        };
        let head = self.buf.get(..head_len).ok_or(AnswerError::Malformed)?;
        let (status, content_length) = parse_head(head)?;
        let total = head_len.checked_add(content_length).filter(|&t| t <= MAX_ANSWER).ok_or(AnswerError::TooLarge)?;
        while self.buf.len() < total {
            self.fill(stream).await?;
        }
        self.buf.drain(..total);
        Ok(status)
    }

    /// Appends what one read returns, never past [`MAX_ANSWER`] buffered bytes.
    async fn fill(&mut self, stream: &mut (impl AsyncRead + Unpin)) -> Result<(), AnswerError> {
        let room = MAX_ANSWER.saturating_sub(self.buf.len());
        if room == 0 {
            return Err(AnswerError::TooLarge);
        }
        let mut chunk = [0u8; 4096];
        let want = room.min(chunk.len());
        let n = stream.read(&mut chunk[..want]).await.map_err(|_| AnswerError::Closed)?;
        if n == 0 {
            return Err(AnswerError::Closed);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// The status and `Content-Length` of an answer head (ending in the blank line). The daemon always sends
/// `Content-Length`; without it the end of the answer is unknown, so its absence is an error.
fn parse_head(head: &[u8]) -> Result<(u16, usize), AnswerError> {
    let text = std::str::from_utf8(head).map_err(|_| AnswerError::Malformed)?;
    let mut lines = text.split("\r\n");
    let mut status_line = lines.next().unwrap_or_default().splitn(3, ' ');
    if !status_line.next().is_some_and(|version| version.starts_with("HTTP/1.")) {
        return Err(AnswerError::Malformed);
    }
    let status = status_line
        .next()
        .filter(|code| code.len() == 3)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(AnswerError::Malformed)?;
    let mut content_length = None;
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(AnswerError::Malformed)?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            // `parse` would accept a leading `+`; a length is digits only.
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AnswerError::Malformed);
            }
            let length = value.parse::<usize>().map_err(|_| AnswerError::TooLarge)?;
            // Two different lengths leave the end of the answer ambiguous.
            if content_length.replace(length).is_some_and(|earlier| earlier != length) {
                return Err(AnswerError::Malformed);
            }
        }
    }
    Ok((status, content_length.ok_or(AnswerError::Malformed)?))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    use tokio::net::TcpListener;

    use super::*;

    /// The attacker's address: a loopback peer distinct from 127.0.0.1 (Linux routes all of 127/8 to `lo`).
    const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    /// How long to wait for a condition; conditions normally hold within milliseconds.
    const WAIT: Duration = Duration::from_secs(1);

    /// Connections per attack in these tests.
    const N: usize = 3;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    /// What the test server observed.
    #[derive(Debug, Default, Clone)]
    struct Seen {
        /// Every peer accepted, in order.
        peers: Vec<SocketAddr>,
        /// Connections currently open.
        open: usize,
        /// Bytes received over all connections.
        bytes: usize,
        /// Complete requests received.
        requests: usize,
        paths: BTreeSet<String>,
        bodies: BTreeSet<Vec<u8>>,
    }

    /// A tiny daemon stand-in: answers `proto-ver` and `prov-session` with `200 ok`, closes on anything else,
    /// and closes every open connection on [`Server::kick`].
    struct Server {
        addr: SocketAddr,
        seen: watch::Receiver<Seen>,
        kick: watch::Sender<u64>,
    }

    impl Server {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (seen_tx, seen) = watch::channel(Seen::default());
            let seen_tx = Arc::new(seen_tx);
            let (kick, kick_rx) = watch::channel(0);
            tokio::spawn(async move {
                while let Ok((stream, peer)) = listener.accept().await {
                    // Subscribed before the peer is recorded: a test that saw the peer and then kicks is sure to
                    // reach this connection.
                    let mut kicked = kick_rx.clone();
                    kicked.mark_unchanged();
                    seen_tx.send_modify(|s| {
                        s.peers.push(peer);
                        s.open += 1;
                    });
                    tokio::spawn(serve(stream, seen_tx.clone(), kicked));
                }
            });
            Self { addr, seen, kick }
        }

        /// Waits until `condition` holds for what the server saw, failing the test after [`WAIT`].
        async fn wait(&mut self, what: &str, condition: impl FnMut(&Seen) -> bool) -> Seen {
            let waited =
                tokio::time::timeout(WAIT, self.seen.wait_for(condition)).await.map(|seen| seen.unwrap().clone());
            waited.unwrap_or_else(|_| panic!("server: {what}: timed out; saw {:?}", self.seen.borrow()))
        }

        /// Closes every connection open now.
        fn kick(&self) {
            self.kick.send_modify(|generation| *generation += 1);
        }
    }

    async fn serve(mut stream: TcpStream, seen: Arc<watch::Sender<Seen>>, mut kicked: watch::Receiver<u64>) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        'connection: loop {
            tokio::select! {
                _ = kicked.changed() => break,
                read = stream.read(&mut chunk) => {
                    let n = match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    seen.send_modify(|s| s.bytes += n);
                    while let Some((path, body)) = take_request(&mut buf) {
                        let known = path == "/proto-ver" || path == "/prov-session";
                        seen.send_modify(|s| {
                            s.requests += 1;
                            s.paths.insert(path);
                            s.bodies.insert(body);
                        });
                        if !known || stream.write_all(OK).await.is_err() {
                            break 'connection;
                        }
                    }
                }
            }
        }
        drop(stream);
        seen.send_modify(|s| s.open -= 1);
    }

    /// Takes one complete request (path and body) off the front of `buf`, skipping leading blank lines as the
    /// daemon does.
    fn take_request(buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        let head_len = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8(buf[..head_len].to_vec()).unwrap();
        let path = head.split(' ').nth(1).unwrap().to_owned();
        let length = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, value)| value.trim().parse::<usize>().unwrap());
        if buf.len() < head_len + length {
            return None;
        }
        let body = buf.drain(..head_len + length).skip(head_len).collect();
        Some((path, body))
    }

    /// What every attack must do: open `N` connections from [`ATTACKER`], open new ones after the server closes
    /// them, and stop promptly, closing every connection. Returns the final counters.
    async fn reconnects_then_stops(server: &mut Server, attack: RunningAttack) -> AttackStats {
        assert!(attack.wait_connected(N, WAIT).await, "not connected: {:?}", attack.stats());
        let before = attack.stats().connections;
        let seen = server.wait("accepted the attack", |s| s.peers.len() as u64 >= before).await;
        assert!(seen.peers.iter().all(|peer| peer.ip() == ATTACKER), "peers {:?}", seen.peers);

        server.kick();
        assert!(attack.wait_connected(before as usize + N, WAIT).await, "no reconnect: {:?}", attack.stats());
        let stats = attack.stats();
        // Each reconnection follows a close the attacker noticed.
        assert!(stats.closed_by_device >= stats.connections - N as u64, "{stats:?}");
        assert!(stats.closed_by_device >= N as u64, "{stats:?}");
        let total = stats.connections;
        let seen = server.wait("accepted the reconnections", |s| s.peers.len() as u64 >= total).await;
        assert!(seen.peers.iter().all(|peer| peer.ip() == ATTACKER), "peers {:?}", seen.peers);

        let stats = tokio::time::timeout(Duration::from_secs(1), attack.stop())
            .await
            .expect("stop did not return within a second");
        server.wait("saw every attack connection closed", |s| s.open == 0).await;
        stats
    }

    #[tokio::test]
    async fn slow_drip_sends_bytes_slowly_and_never_a_request() {
        let mut server = Server::start().await;
        let interval = Duration::from_millis(5);
        let started = Instant::now();
        let attack = launch(Attack::SlowDrip { connections: N, interval }, server.addr, ATTACKER);
        assert!(attack.wait_for(|s| s.bytes_sent >= 4 * N as u64, WAIT).await, "{:?}", attack.stats());
        let stats = attack.stats();
        let elapsed = started.elapsed();
        // Ticks are at least `interval` apart and the first comes at once, so each connection (none has been
        // closed yet) sent at most elapsed / interval + 1 bytes.
        let ticks = (elapsed.as_micros() / interval.as_micros()) as u64 + 1;
        assert!(stats.bytes_sent <= N as u64 * ticks, "{stats:?} after {elapsed:?}");
        assert_eq!(stats.connections, N as u64);
        assert_eq!(stats.requests, 0);
        assert_eq!(stats.answers, 0);
        let seen = server.wait("received drips", |s| s.bytes >= 4 * N).await;
        assert_eq!(seen.requests, 0);

        let stats = reconnects_then_stops(&mut server, attack).await;
        assert_eq!(stats.requests, 0);
        assert_eq!(server.seen.borrow().requests, 0);
    }

    #[tokio::test]
    async fn idle_sends_nothing_and_notices_the_close() {
        let mut server = Server::start().await;
        let attack = launch(Attack::Idle { connections: N }, server.addr, ATTACKER);
        let stats = reconnects_then_stops(&mut server, attack).await;
        assert_eq!(stats.bytes_sent, 0);
        assert_eq!(stats.requests, 0);
        assert_eq!(server.seen.borrow().bytes, 0);
    }

    #[tokio::test]
    async fn blank_lines_send_only_crlf() {
        let mut server = Server::start().await;
        let interval = Duration::from_millis(5);
        let attack = launch(Attack::BlankLines { connections: N, interval }, server.addr, ATTACKER);
        assert!(attack.wait_for(|s| s.bytes_sent >= 2 * 2 * N as u64, WAIT).await, "{:?}", attack.stats());
        assert_eq!(attack.stats().bytes_sent % 2, 0);
        server.wait("received blank lines", |s| s.bytes >= 2 * 2 * N).await;

        let stats = reconnects_then_stops(&mut server, attack).await;
        assert_eq!(stats.requests, 0);
        assert_eq!(server.seen.borrow().requests, 0);
    }

    // On several threads: the counters are shared by tasks that really run in parallel there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proto_ver_loop_gets_answers_back_to_back() {
        let mut server = Server::start().await;
        let attack = launch(Attack::ProtoVerLoop { connections: N }, server.addr, ATTACKER);
        assert!(attack.wait_for(|s| s.answers >= 10 * N as u64, WAIT).await, "{:?}", attack.stats());

        let stats = reconnects_then_stops(&mut server, attack).await;
        assert!(stats.answers >= 10 * N as u64, "{stats:?}");
        // One request in flight per connection at most: the next is sent only after the answer.
        assert!(stats.requests >= stats.answers && stats.requests <= stats.answers + stats.connections, "{stats:?}");
        let seen = server.seen.borrow().clone();
        assert_eq!(seen.paths, BTreeSet::from(["/proto-ver".to_owned()]));
        assert_eq!(seen.bodies, BTreeSet::from([PROTO_VER_BODY.to_vec()]));
    }

    #[tokio::test]
    async fn abandoned_handshakes_send_command0_once_and_hold_the_connection() {
        let mut server = Server::start().await;
        let command0 = b"\x08\x02\x5a\x04command0".to_vec();
        let attack =
            launch(Attack::AbandonedHandshakes { connections: N, command0: command0.clone() }, server.addr, ATTACKER);
        assert!(attack.wait_for(|s| s.answers >= N as u64, WAIT).await, "{:?}", attack.stats());
        let stats = attack.stats();
        assert_eq!(
            (stats.connections, stats.requests, stats.answers, stats.closed_by_device),
            (N as u64, N as u64, N as u64, 0)
        );
        let seen = server.wait("answered every Command0", |s| s.requests >= N).await;
        assert_eq!(seen.open, N, "the attacker must hold its connections after the answer");

        let stats = reconnects_then_stops(&mut server, attack).await;
        // Exactly one request per connection.
        assert!(stats.requests <= stats.connections, "{stats:?}");
        let seen = server.seen.borrow().clone();
        assert_eq!(seen.paths, BTreeSet::from(["/prov-session".to_owned()]));
        assert_eq!(seen.bodies, BTreeSet::from([command0]));
    }

    #[tokio::test]
    async fn connect_failures_are_retried_and_stop_still_returns() {
        // A port nobody listens on: bind one, then free it.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let attack = launch(Attack::Idle { connections: N }, addr, ATTACKER);
        assert!(!attack.wait_connected(1, Duration::from_millis(50)).await);
        let stats = tokio::time::timeout(Duration::from_secs(1), attack.stop())
            .await
            .expect("stop did not return within a second");
        assert_eq!(stats, AttackStats::default());
    }

    #[tokio::test]
    async fn reader_keeps_leftovers_for_the_next_answer() {
        let mut input: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-LENGTH: 2\r\nSet-Cookie: session=1\r\n\r\nok\
                                 HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n\
                                 HTTP/1.1 200 OK\r\nContent-Length:5\r\n\r\nhel";
        let mut reader = AnswerReader::default();
        assert_eq!(reader.read_answer(&mut input).await, Ok(200));
        assert_eq!(reader.read_answer(&mut input).await, Ok(404));
        // The third answer's body is cut short by the end of the stream.
        assert_eq!(reader.read_answer(&mut input).await, Err(AnswerError::Closed));
    }

    #[tokio::test]
    async fn reader_reads_a_body_over_several_reads() {
        let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n".to_vec();
        answer.resize(answer.len() + 10000, b'x');
        answer.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let mut input = answer.as_slice();
        let mut reader = AnswerReader::default();
        assert_eq!(reader.read_answer(&mut input).await, Ok(200));
        assert_eq!(reader.read_answer(&mut input).await, Ok(200));
        assert!(reader.buf.is_empty());
    }

    #[tokio::test]
    async fn reader_bounds_what_it_buffers() {
        let mut input: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n";
        assert_eq!(AnswerReader::default().read_answer(&mut input).await, Err(AnswerError::TooLarge));

        let endless_head = vec![b'a'; 2 * MAX_ANSWER];
        let mut input = endless_head.as_slice();
        let mut reader = AnswerReader::default();
        assert_eq!(reader.read_answer(&mut input).await, Err(AnswerError::TooLarge));
        assert!(reader.buf.len() <= MAX_ANSWER);
    }

    #[test]
    fn head_parsing_rejects_what_it_cannot_frame() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"), Ok((200, 12)));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n"), Err(AnswerError::Malformed));
        assert_eq!(parse_head(b"SPDY/3 200 OK\r\nContent-Length: 1\r\n\r\n"), Err(AnswerError::Malformed));
        assert_eq!(parse_head(b"HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\n"), Err(AnswerError::Malformed));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n"), Err(AnswerError::Malformed));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(AnswerError::Malformed)
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n"), Err(AnswerError::Malformed));
    }
}
