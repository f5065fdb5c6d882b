//! A flood of complete handshakes against the real daemon binary, and what it costs the daemon and a legitimate
//! client (issue #12, part 6).
//!
//! The `wifiprovd` binary (the release build under `cargo bench`) serves HTTP on loopback with security 1 (a PoP)
//! or security 2 (a password), on a simulated radio that joins at once, with no connect delay. A load generator in
//! this process runs complete handshakes with the right PoP or password from 127.0.0.2, each one a new session,
//! as fast as the daemon answers, over a few concurrent connections:
//!
//! - *new connection*: one TCP connection per handshake, as an ESP phone app opens one per session; its last
//!   request asks for `Connection: close`, so the daemon closes first and the generator's ports are not left in
//!   `TIME_WAIT` (about 28,000 ports would last a few seconds at the rates measured);
//! - *keep-alive*: one connection per flood task for the whole phase, each handshake opened with a cookie that
//!   names no session (`session=0`), so the device opens a new one and sets a fresh cookie.
//!
//! Meanwhile a legitimate client (`wifiprov_client::Client` over `HttpClient`, from 127.0.0.1) provisions round
//! after round: new connection, `proto-ver`, handshake, SetConfig, ApplyConfig, status polls until Connected,
//! reprovision. Its rounds are measured without the flood first, during each flood phase, and without the flood
//! again; the ratio is against the larger of the two unloaded medians.
//!
//! Measured per phase: complete handshakes a second, the daemon's CPU time (utime + stime from
//! `/proc/<pid>/stat`) and this process's (the load generator's), the daemon's resident memory (VmRSS from
//! `/proc/<pid>/status`, sampled through the phase) and, per daemon, its peak (VmHWM). Two layouts: both processes
//! free to use both cores, and the daemon pinned to CPU 0 and this process to CPU 1 (`taskset`).
//!
//! `cargo bench -p wifiprovd --bench flood` runs everything (about 4 minutes; options after `--`: `--secs N` per
//! phase [10], `--long N` for the security 1 new-connection phase that shows memory stays bounded [60],
//! `--conns N` flood connections [4], `--rounds N` unloaded rounds [15], `--layout shared|pinned` [both],
//! `--scheme 1|2` [both]; `FLOOD_DAEMON=path` runs another daemon binary). Under `cargo test` it runs a
//! one-second smoke round of security 1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wifiprov_client::{Client, HttpClient, PollPolicy, ProvisionOutcome};
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{ClientSecurity, ClientSession, Sec2Patch};
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::process::{Process, Stream};

/// Where the flood comes from: another loopback peer than the legitimate client's 127.0.0.1.
const FLOOD_PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const POP: &str = "flood-pop-8d1f";
const USERNAME: &str = "wifiprov";
const PASSWORD: &str = "flood-password-5e2a";

/// The radio joins at once and the daemon does not wait before connecting: a round is the stack's own cost, where
/// the flood's CPU shows most.
const SCENARIO: &str = r#"
scan_duration_ms = 0
join_latency_ms = 0
[[ap]]
ssid = "home"
bssid = "02:00:00:00:00:01"
channel = 6
rssi = -40
auth = "wpa2-psk"
passphrase = "correct-horse"
"#;

/// The legitimate client's pause between rounds, with and without the flood: a person provisions once, not in a
/// loop, so its own load on the daemon (a saved network written to disk every round) stays small next to the
/// flood's.
const ROUND_PAUSE: Duration = Duration::from_millis(100);

/// Linux's `USER_HZ`, the unit of utime and stime in `/proc/<pid>/stat`.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Sec1,
    Sec2,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Self::Sec1 => "security 1",
            Self::Sec2 => "security 2",
        }
    }

    fn daemon_args(self) -> Vec<&'static str> {
        match self {
            Self::Sec1 => vec!["--security", "1", "--pop", POP],
            Self::Sec2 => vec!["--security", "2", "--sec2-username", USERNAME, "--sec2-password", PASSWORD],
        }
    }

    fn client(self) -> ClientSecurity {
        match self {
            Self::Sec1 => ClientSecurity::sec1(ProofOfPossession::from(POP)),
            Self::Sec2 => ClientSecurity::sec2(USERNAME, Password::from(PASSWORD), Sec2Patch::Counter),
        }
    }
}

/// How the flood's handshakes use connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reuse {
    NewConnection,
    KeepAlive,
}

impl Reuse {
    fn name(self) -> &'static str {
        match self {
            Self::NewConnection => "new connection each",
            Self::KeepAlive => "keep-alive, fresh cookie",
        }
    }
}

/// Where the two processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Both free to use every core.
    Shared,
    /// The daemon on CPU 0, this process (load generator and legitimate client) on CPU 1.
    Pinned,
}

struct Options {
    bench: bool,
    secs: Duration,
    long: Duration,
    conns: usize,
    rounds: usize,
    layouts: Vec<Layout>,
    schemes: Vec<Scheme>,
}

impl Options {
    fn parse() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let bench = args.iter().any(|a| a == "--bench");
        let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        let number = |name: &str, default: u64| value(name).map_or(default, |v| v.parse().expect(name));
        let layouts = match value("--layout").as_deref() {
            Some("shared") => vec![Layout::Shared],
            Some("pinned") => vec![Layout::Pinned],
            Some(other) => panic!("--layout {other}: expected shared or pinned"),
            None if bench => vec![Layout::Shared, Layout::Pinned],
            None => vec![Layout::Shared],
        };
        let schemes = match value("--scheme").as_deref() {
            Some("1") => vec![Scheme::Sec1],
            Some("2") => vec![Scheme::Sec2],
            Some(other) => panic!("--scheme {other}: expected 1 or 2"),
            None if bench => vec![Scheme::Sec1, Scheme::Sec2],
            None => vec![Scheme::Sec1],
        };
        if bench {
            Self {
                bench,
                secs: Duration::from_secs(number("--secs", 10)),
                long: Duration::from_secs(number("--long", 60)),
                conns: usize::try_from(number("--conns", 4)).expect("--conns"),
                rounds: usize::try_from(number("--rounds", 15)).expect("--rounds"),
                layouts,
                schemes,
            }
        } else {
            // `cargo test --all-targets`: a smoke run of about a second, to keep the benchmark working.
            Self {
                bench,
                secs: Duration::from_millis(400),
                long: Duration::from_millis(600),
                conns: 2,
                rounds: 1,
                layouts,
                schemes,
            }
        }
    }
}

/// A `wifiprovd` process serving HTTP on a loopback port, with its state directory.
struct Daemon {
    process: Process,
    pid: u32,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(scheme: Scheme, layout: Layout) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let scenario = dir.path().join("scenario.toml");
        std::fs::write(&scenario, SCENARIO).expect("scenario");
        let state = dir.path().join("state");
        let binary = daemon_binary();
        let mut command = match layout {
            Layout::Shared => Command::new(binary),
            Layout::Pinned => {
                // taskset execs the daemon, so the pid is the daemon's.
                let mut command = Command::new("taskset");
                command.args(["-c", "0", &binary]);
                command
            }
        };
        command
            .args(scheme.daemon_args())
            .args(["--listen", "127.0.0.1:0", "--no-auto-stop", "--connect-delay-ms", "0"])
            .arg("--scenario")
            .arg(&scenario)
            .arg("--state-dir")
            .arg(&state);
        let process = Process::spawn("wifiprovd", command);
        let line = process
            .wait_for_line(Stream::Stdout, Duration::from_secs(30), |l| l.starts_with("listening on "))
            .unwrap_or_else(|| panic!("the daemon did not start:\n{process}"));
        let addr = line.trim_start_matches("listening on ").trim().parse().expect("listening address");
        let pid = process.id();
        Self { process, pid, addr, _dir: dir }
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.pid.to_string())
    }

    fn status_kib(&self, field: &str) -> u64 {
        status_kib(self.pid, field).unwrap_or_else(|| panic!("no {field} for the daemon:\n{}", self.process))
    }
}

/// The daemon binary: the one cargo built for this run (the release build under `cargo bench`), or
/// `$FLOOD_DAEMON`.
fn daemon_binary() -> String {
    std::env::var("FLOOD_DAEMON").unwrap_or_else(|_| env!("CARGO_BIN_EXE_wifiprovd").to_owned())
}

/// utime + stime of `/proc/<pid>/stat` (fields 14 and 15), in seconds; `pid` may be `self`.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; count from the closing parenthesis.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples the daemon's VmRSS every `every` on a thread of its own until stopped.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, u64)>>,
}

impl RssSampler {
    fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                if let Some(kib) = status_kib(pid, "VmRSS") {
                    samples.push((started.elapsed(), kib));
                }
                std::thread::sleep(every);
            }
            samples
        });
        Self { stop, thread }
    }

    fn stop(self) -> Vec<(Duration, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler")
    }
}

/// Why one flood handshake did not complete.
#[derive(Debug)]
enum Failure {
    /// The daemon closed the connection without an answer: how it refuses a request (a full session table, a
    /// session evicted under the handshake).
    Refused,
    /// `429 Too Many Requests`: the online-guessing lockout.
    LockedOut,
    /// Anything else: a connect error, another status, a malformed answer, a proof that did not check out.
    Other(String),
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    refused: AtomicU64,
    locked: AtomicU64,
    other: AtomicU64,
    /// The first unexpected failure, to show in the report.
    first_other: Mutex<Option<String>>,
}

impl Counters {
    fn count(&self, outcome: Result<(), Failure>) {
        match outcome {
            Ok(()) => self.done.fetch_add(1, Ordering::Relaxed),
            Err(Failure::Refused) => self.refused.fetch_add(1, Ordering::Relaxed),
            Err(Failure::LockedOut) => self.locked.fetch_add(1, Ordering::Relaxed),
            Err(Failure::Other(why)) => {
                self.first_other.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(why);
                self.other.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    fn snapshot(&self) -> [u64; 4] {
        [&self.done, &self.refused, &self.locked, &self.other].map(|c| c.load(Ordering::Relaxed))
    }
}

/// An answer of the daemon.
struct Answer {
    status: u16,
    cookie: Option<String>,
    body: Vec<u8>,
}

/// One flood connection: requests as the wifiprov client writes them, answers read with their `Content-Length`.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    host: String,
}

impl Conn {
    async fn open(target: SocketAddr) -> Result<Self, Failure> {
        let socket = TcpSocket::new_v4().map_err(|e| Failure::Other(format!("socket: {e}")))?;
        socket.bind(SocketAddr::new(FLOOD_PEER, 0)).map_err(|e| Failure::Other(format!("bind: {e}")))?;
        let stream = socket.connect(target).await.map_err(|e| Failure::Other(format!("connect: {e}")))?;
        stream.set_nodelay(true).map_err(|e| Failure::Other(format!("nodelay: {e}")))?;
        Ok(Self { stream, buf: Vec::with_capacity(1024), host: target.to_string() })
    }

    async fn exchange(&mut self, body: &[u8], cookie: Option<&str>, close: bool) -> Result<Answer, Failure> {
        let mut request = format!(
            "POST /prov-session HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Accept: text/plain\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if let Some(cookie) = cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        if close {
            request.push_str("Connection: close\r\n");
        }
        request.push_str("\r\n");
        let mut request = request.into_bytes();
        request.extend_from_slice(body);
        self.stream.write_all(&request).await.map_err(|_| Failure::Refused)?;
        let head_len = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(self.buf.get(..head_len).unwrap_or_default())
            .map_err(|_| Failure::Other("answer head is not UTF-8".into()))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| Failure::Other(format!("bad status line in {head:?}")))?;
        let (mut length, mut cookie) = (None, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("set-cookie") {
                cookie = value.split(';').next().map(|c| c.trim().to_owned());
            }
        }
        let length = length.ok_or_else(|| Failure::Other(format!("no Content-Length in {head:?}")))?;
        while self.buf.len() < head_len + length {
            self.fill().await?;
        }
        let body = self.buf.get(head_len..head_len + length).unwrap_or_default().to_vec();
        self.buf.drain(..head_len + length);
        match status {
            200 => Ok(Answer { status, cookie, body }),
            429 => Err(Failure::LockedOut),
            other => Err(Failure::Other(format!("status {other}"))),
        }
    }

    async fn fill(&mut self) -> Result<(), Failure> {
        let mut chunk = [0u8; 2048];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => Err(Failure::Refused),
            Ok(n) => {
                self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                Ok(())
            }
        }
    }

    /// Waits for the daemon to close its side (after `Connection: close`), so that it is the one to close first.
    async fn until_closed(mut self) {
        let mut sink = [0u8; 256];
        while let Ok(1..) = self.stream.read(&mut sink).await {}
    }
}

/// One complete handshake, a new session: Command0 (with `cookie`, if any), then the proof. `close`: ask the
/// daemon to close the connection after the last answer.
async fn handshake(
    conn: &mut Conn,
    security: &ClientSecurity,
    cookie: Option<&str>,
    close: bool,
    rng: &mut SeededRandom,
) -> Result<(), Failure> {
    let mut session = ClientSession::new(security.clone());
    let mut request = session.start(rng).map_err(|e| Failure::Other(format!("client start: {e}")))?;
    let mut cookie = cookie.map(str::to_owned);
    // Both schemes take two requests: Command0/Response0, then the proof and the device's.
    for step in 0..2 {
        let last = step == 1;
        let answer = conn.exchange(&request, cookie.as_deref(), close && last).await?;
        debug_assert_eq!(answer.status, 200);
        if let Some(fresh) = answer.cookie {
            cookie = Some(fresh);
        }
        match session.handle_response(&answer.body, rng) {
            Ok(Some(next)) if !last => request = next,
            Ok(None) if last => return Ok(()),
            Ok(_) => return Err(Failure::Other("the handshake took an unexpected number of steps".into())),
            Err(e) => return Err(Failure::Other(format!("client: {e}"))),
        }
    }
    Err(Failure::Other("unreachable".into()))
}

/// One flood connection's loop until `stop`.
async fn flood_task(
    target: SocketAddr,
    scheme: Scheme,
    reuse: Reuse,
    seed: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let security = scheme.client();
    let mut rng = SeededRandom::new(seed);
    let mut kept: Option<Conn> = None;
    // A request hanging this long is a failure, not a reason to stall the benchmark.
    let limit = Duration::from_secs(10);
    while !stop.load(Ordering::Relaxed) {
        let outcome = match reuse {
            Reuse::NewConnection => match Conn::open(target).await {
                Ok(mut conn) => {
                    let outcome = tokio::time::timeout(limit, handshake(&mut conn, &security, None, true, &mut rng))
                        .await
                        .unwrap_or_else(|_| Err(Failure::Other("timeout".into())));
                    if outcome.is_ok() {
                        let _ = tokio::time::timeout(limit, conn.until_closed()).await;
                    }
                    outcome
                }
                Err(failure) => Err(failure),
            },
            Reuse::KeepAlive => {
                let conn = match kept.take() {
                    Some(conn) => Ok(conn),
                    None => Conn::open(target).await,
                };
                match conn {
                    Ok(mut conn) => {
                        let run = handshake(&mut conn, &security, Some("session=0"), false, &mut rng);
                        let outcome = tokio::time::timeout(limit, run)
                            .await
                            .unwrap_or_else(|_| Err(Failure::Other("timeout".into())));
                        // After a failure the connection may be closed or half-way through an answer: open another.
                        if outcome.is_ok() {
                            kept = Some(conn);
                        }
                        outcome
                    }
                    Err(failure) => Err(failure),
                }
            }
        };
        if let Err(Failure::Other(_)) = &outcome {
            // A connect error or the like: do not spin on it.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        counters.count(outcome);
    }
}

/// One provisioning round as a phone app does it; how long it took until the client saw Connected.
async fn round(addr: SocketAddr, scheme: Scheme, seed: u64) -> Result<Duration, String> {
    let poll = PollPolicy { initial: Duration::ZERO, max: Duration::from_millis(1), deadline: Duration::from_secs(20) };
    let started = Instant::now();
    let mut client = Client::new(HttpClient::connect(addr).await.map_err(|e| format!("connect: {e}"))?);
    client.version().await.map_err(|e| format!("version: {e:#}"))?;
    let establish = client.establish(scheme.client(), &mut SeededRandom::new(seed)).await;
    establish.map_err(|e| format!("session: {}", wifiprov_proto::ErrorChain(&e)))?;
    let outcome = client.provision(b"home", b"correct-horse", poll, |_| {}).await;
    let outcome = outcome.map_err(|e| format!("provision: {}", wifiprov_proto::ErrorChain(&e)))?;
    if !matches!(outcome, ProvisionOutcome::Connected(_)) {
        return Err(format!("provision: {outcome:?}"));
    }
    let took = started.elapsed();
    client.reprov().await.map_err(|e| format!("reprov: {}", wifiprov_proto::ErrorChain(&e)))?;
    Ok(took)
}

/// A round that may fail: after a failure, a best-effort reprovision in a session of its own, so the next round
/// starts from an open provisioning again.
async fn measured_round(addr: SocketAddr, scheme: Scheme, seed: u64) -> Result<Duration, String> {
    let result = match tokio::time::timeout(Duration::from_secs(30), round(addr, scheme, seed)).await {
        Ok(result) => result,
        Err(_) => Err("round took over 30 s".into()),
    };
    if result.is_err() {
        let recover = async {
            let mut client = Client::new(HttpClient::connect(addr).await.ok()?);
            client.establish(scheme.client(), &mut SeededRandom::new(seed ^ 0xffff)).await.ok()?;
            client.reprov().await.ok()
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), recover).await;
    }
    result
}

/// Rounds of the legitimate client: the times of those that succeeded, and how many were run.
#[derive(Default)]
struct Rounds {
    ok: Vec<Duration>,
    run: usize,
    first_error: Option<String>,
}

impl Rounds {
    fn add(&mut self, result: Result<Duration, String>) {
        self.run += 1;
        match result {
            Ok(took) => self.ok.push(took),
            Err(why) => {
                self.first_error.get_or_insert(why);
            }
        }
    }

    fn median(&self) -> Duration {
        let mut sorted = self.ok.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    fn success(&self) -> String {
        format!("{}/{}", self.ok.len(), self.run)
    }
}

/// What one flood phase measured.
struct Phase {
    reuse: Reuse,
    secs: f64,
    /// Completed, refused, locked out, other.
    counts: [u64; 4],
    first_other: Option<String>,
    daemon_cpu: f64,
    client_cpu: f64,
    rss: Vec<(Duration, u64)>,
    rounds: Rounds,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.counts.first().copied().unwrap_or_default() as f64 / self.secs
    }
}

/// Floods `daemon` for `length` while the legitimate client provisions round after round.
async fn flood_phase(daemon: &Daemon, scheme: Scheme, reuse: Reuse, conns: usize, length: Duration) -> Phase {
    let every = if length >= Duration::from_secs(30) { Duration::from_secs(1) } else { Duration::from_millis(200) };
    let sampler = RssSampler::start(daemon.pid, every);
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (daemon_cpu, client_cpu, started) = (daemon.cpu_seconds(), cpu_seconds("self"), Instant::now());
    let tasks: Vec<_> = (0..conns)
        .map(|i| tokio::spawn(flood_task(daemon.addr, scheme, reuse, 7000 + i as u64, stop.clone(), counters.clone())))
        .collect();
    let rounds = legitimate(daemon.addr, scheme, 50_000, Until::Elapsed(length)).await;
    stop.store(true, Ordering::Relaxed);
    let counts = counters.snapshot();
    let secs = started.elapsed().as_secs_f64();
    let daemon_cpu = daemon.cpu_seconds() - daemon_cpu;
    let client_cpu = cpu_seconds("self") - client_cpu;
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    }
    let first_other = counters.first_other.lock().unwrap_or_else(PoisonError::into_inner).take();
    Phase { reuse, secs, counts, first_other, daemon_cpu, client_cpu, rss: sampler.stop(), rounds }
}

/// How long the legitimate client goes on.
#[derive(Clone, Copy)]
enum Until {
    Count(usize),
    Elapsed(Duration),
}

/// The legitimate client's rounds, on a thread and runtime of its own: it must not queue behind the flood's tasks
/// in the load generator's runtime (a security 2 flood task computes for milliseconds between awaits), only share
/// the cores with them as another program would.
async fn legitimate(addr: SocketAddr, scheme: Scheme, seed: u64, until: Until) -> Rounds {
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");
        runtime.block_on(async {
            let (mut rounds, started) = (Rounds::default(), Instant::now());
            while match until {
                Until::Count(n) => rounds.run < n,
                Until::Elapsed(length) => started.elapsed() < length,
            } {
                rounds.add(measured_round(addr, scheme, seed + rounds.run as u64).await);
                tokio::time::sleep(ROUND_PAUSE).await;
            }
            rounds
        })
    });
    tokio::task::spawn_blocking(move || thread.join().expect("legitimate client"))
        .await
        .expect("legitimate client thread")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the phases of one scheme on a daemon of its own and prints them.
async fn measure(scheme: Scheme, layout: Layout, options: &Options) -> Vec<Phase> {
    let daemon = Daemon::start(scheme, layout);
    // Let start-up (the SRP tables under security 2) settle before the idle figure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = daemon.status_kib("VmRSS");
    let before = legitimate(daemon.addr, scheme, 1000, Until::Count(options.rounds)).await;
    let first = if scheme == Scheme::Sec1 { options.long } else { options.secs };
    let mut phases = Vec::new();
    phases.push(flood_phase(&daemon, scheme, Reuse::NewConnection, options.conns, first).await);
    phases.push(flood_phase(&daemon, scheme, Reuse::KeepAlive, options.conns, options.secs).await);
    let after = legitimate(daemon.addr, scheme, 2000, Until::Count(options.rounds)).await;
    let hwm_kib = daemon.status_kib("VmHWM");
    let end_kib = daemon.status_kib("VmRSS");

    let layout_name = match layout {
        Layout::Shared => "daemon and load generator share both cores",
        Layout::Pinned => "daemon on CPU 0, load generator and client on CPU 1 (taskset)",
    };
    println!(
        "\n{}, {} flood connections from {FLOOD_PEER}; {layout_name}; daemon pid {}",
        scheme.name(),
        options.conns,
        daemon.pid
    );
    println!(
        "{:<26} {:>6} {:>10} {:>12} {:>8} {:>5} {:>6} {:>10} {:>9} {:>10} {:>16}",
        "flood phase",
        "secs",
        "handshakes",
        "handshakes/s",
        "refused",
        "429",
        "other",
        "daemon CPU",
        "ms/hs",
        "client CPU",
        "RSS KiB min-max"
    );
    for p in &phases {
        let [done, refused, locked, other] = p.counts;
        let (lo, hi) = p.rss.iter().fold((u64::MAX, 0), |(lo, hi), (_, kib)| (lo.min(*kib), hi.max(*kib)));
        println!(
            "{:<26} {:>6.1} {:>10} {:>12.0} {:>8} {:>5} {:>6} {:>9.0}% {:>9.3} {:>9.0}% {:>16}",
            p.reuse.name(),
            p.secs,
            done,
            p.rate(),
            refused,
            locked,
            other,
            p.daemon_cpu / p.secs * 100.0,
            p.daemon_cpu / (done + p.rounds.run as u64).max(1) as f64 * 1e3,
            p.client_cpu / p.secs * 100.0,
            format!("{lo}-{hi}")
        );
        if let Some(why) = &p.first_other {
            println!("    first other failure: {why}");
        }
    }
    println!(
        "(daemon CPU in % of one core; ms/hs: daemon CPU per handshake, the legitimate rounds counted as one each)"
    );
    println!("daemon RSS: idle {idle_kib} KiB, at the end {end_kib} KiB, peak (VmHWM) {hwm_kib} KiB");
    if let Some(long) = phases.first().filter(|p| p.secs >= 30.0) {
        let marks: Vec<String> = (0..=long.secs as u64)
            .step_by(10)
            .filter_map(|s| long.rss.iter().find(|(t, _)| t.as_secs() >= s).map(|(_, kib)| format!("{s} s: {kib}")))
            .collect();
        println!("daemon RSS during the {:.0} s {} flood (KiB): {}", long.secs, long.reuse.name(), marks.join(", "));
    }
    let baseline = before.median().max(after.median());
    println!("legitimate provisioning round (connect, proto-ver, handshake, set, apply, polls until Connected):");
    println!("{:<40} {:>10} {:>8} {:>9}", "", "median ms", "ratio", "succeeded");
    let row = |name: &str, r: &Rounds| {
        let ratio = r.median().as_secs_f64() / baseline.as_secs_f64();
        println!("{name:<40} {:>10.2} {ratio:>7.2}x {:>9}", ms(r.median()), r.success());
        if let Some(why) = &r.first_error {
            println!("    first failure: {why}");
        }
    };
    row("no flood (before)", &before);
    for p in &phases {
        row(&format!("during flood, {}", p.reuse.name()), &p.rounds);
    }
    row("no flood (after)", &after);
    drop(daemon);
    phases
}

/// The load average, for the report: other programs running at the same time skew every figure.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

/// Pins every thread of this process (the runtime's included) to `cpus`.
fn pin_self(cpus: &str) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("taskset (util-linux) is needed for the pinned layout");
    assert!(status.success(), "taskset -a -p -c {cpus} failed");
}

fn main() {
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if !options.bench {
        let phases = runtime.block_on(measure(Scheme::Sec1, Layout::Shared, &options));
        for p in &phases {
            assert!(p.counts.first().is_some_and(|done| *done > 0), "no flood handshake completed: {:?}", p.counts);
            assert!(!p.rounds.ok.is_empty(), "no legitimate round succeeded: {:?}", p.rounds.first_error);
        }
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!("flood benchmark: {cpus} CPUs, daemon {}", daemon_binary());
    println!("load average at start: {}", load());
    for layout in options.layouts.clone() {
        if layout == Layout::Pinned {
            if cpus < 2 {
                println!("\npinned layout skipped: it needs 2 CPUs");
                continue;
            }
            pin_self("1");
        }
        for scheme in options.schemes.clone() {
            runtime.block_on(measure(scheme, layout, &options));
        }
        if layout == Layout::Pinned {
            pin_self(&format!("0-{}", cpus - 1));
        }
    }
    println!("\nload average at the end: {}", load());
}
