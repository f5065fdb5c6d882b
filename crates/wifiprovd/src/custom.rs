//! Custom protocomm endpoints served by a program the device maker configures (config table `[[custom_endpoint]]`,
//! flag `--custom-endpoint`).
//!
//! ESP-IDF firmware registers its own endpoints next to the provisioning ones (the ESP example registers
//! `custom-data`, which `esp_prov --custom_data` talks to); requests to them are encrypted like every other
//! endpoint. wifiprovd lets a device maker do the same without writing Rust: a [`ProgramEndpoint`] names the
//! endpoint and a program, and every request runs that program once:
//!
//! - **Command:** `command[0]` with `command[1..]` as its arguments, started directly (no shell, so nothing in
//!   the configuration is subject to word splitting or globbing).
//! - **stdin:** the decrypted request, then end of input. A program that does not read it is fine.
//! - **stdout:** the plaintext answer, which protocomm encrypts. It ends when the program closes stdout (so a
//!   background process that inherits stdout keeps the answer open until the timeout). At most
//!   [`ProgramEndpoint::max_response`] bytes: a program that writes more is killed and the request fails.
//! - **stderr:** read while the program runs and kept only in its last 4 KiB; when a run fails, its last line is
//!   logged at `warn` (truncated). Request and answer are never logged: they may be secrets (cloud tokens).
//! - **Environment:** the daemon's, plus `WIFIPROV_ENDPOINT` (the endpoint name) and `WIFIPROV_SESSION` (the
//!   protocomm session id in decimal; absent for a security 0 request outside any session).
//! - **Exit status:** 0 answers with stdout; anything else (or death by a signal) refuses the request. Like every
//!   refusal on an ESP device, the client gets no answer at all (HTTP: the connection closes; BLE: an ATT
//!   error), and the daemon carries on.
//! - **Limits:** a run that outlasts [`ProgramEndpoint::timeout`] is killed. At most 4 runs of one endpoint are
//!   in progress at a time; a further request waits for one of them to end, for at most the same timeout.
//!
//! The program runs with the daemon's user and privileges, and its input comes from whoever completed the
//! security handshake (anyone in radio range under security 0): it must treat stdin as untrusted.

use std::io;
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};
use tracing::{debug, warn};
use wifiprov_proto::endpoint::{EndpointHandler, HandlerError, HandlerFuture, Plaintext, SessionId, names};
use zeroize::Zeroizing;

/// The environment variable that tells the program which endpoint it serves.
const ENV_ENDPOINT: &str = "WIFIPROV_ENDPOINT";
/// The environment variable that tells the program the request's session id (decimal).
const ENV_SESSION: &str = "WIFIPROV_SESSION";

/// Runs of one endpoint in progress at once.
///
/// Each session has at most one request in flight, but the session table holds several sessions, and under
/// security 0 requests need no session at all. Without this bound, anyone in radio range who can send requests
/// could start one process per request as fast as the transport accepts them and fork-bomb the device (processes,
/// memory, pipes); with it, extra requests queue and then fail as busy.
const MAX_CONCURRENT_RUNS: usize = 4;

/// How much of the program's stderr is kept: the last this many bytes.
const STDERR_TAIL: usize = 4096;
/// Bytes read from stderr at a time.
const STDERR_CHUNK: usize = 1024;
/// After a failed run, how long to wait for the rest of stderr (the end of the pipe), so that the last line
/// the program wrote before it died is in the log. Only a process that outlives the program and holds its stderr
/// (a background child) makes this wait run out.
const STDERR_GRACE: Duration = Duration::from_millis(100);
/// The longest piece of a stderr line that is logged, in bytes.
const STDERR_LOG_BYTES: usize = 200;

/// A custom endpoint served by a program (config table `[[custom_endpoint]]`, flag `--custom-endpoint`).
///
/// Check it with [`ProgramEndpoint::validate`] when reading the configuration, then register
/// [`ProgramEndpoint::handler`] under [`ProgramEndpoint::name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramEndpoint {
    /// The endpoint name: 1 to [`ProgramEndpoint::MAX_NAME_LEN`] bytes of `A-Z a-z 0-9 _ -`, and not a built-in
    /// endpoint's name.
    pub name: String,
    /// The program and its arguments, run directly (no shell).
    pub command: Vec<String>,
    /// How long one run may take before the program is killed and the request fails; also how long a request
    /// waits when the endpoint's runs are all taken.
    pub timeout: Duration,
    /// The longest answer the program may write to stdout, in bytes.
    pub max_response: usize,
}

impl ProgramEndpoint {
    /// [`ProgramEndpoint::timeout`] unless configured.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// [`ProgramEndpoint::max_response`] unless configured: 4096 bytes, the most an ESP device's HTTP transport
    /// carries in one message (clients such as `esp_prov` expect no more).
    ///
    /// Over BLE the limit is smaller: an attribute value is at most 512 bytes (Bluetooth Core, Vol 3, Part F,
    /// 3.2.9), and the encrypted answer is one attribute value. Security 2 adds a 16-byte AES-GCM tag (security 1's
    /// AES-CTR adds nothing), so a device maker serving BLE should keep answers at most
    /// [`ProgramEndpoint::BLE_MAX_RESPONSE`] bytes and may set `max_response` to that.
    pub const DEFAULT_MAX_RESPONSE: usize = 4096;

    /// The longest answer that fits one BLE attribute value (512 bytes) with security 2's 16-byte GCM tag.
    pub const BLE_MAX_RESPONSE: usize = 512 - 16;

    /// The longest endpoint name, in bytes. ESP endpoint names are short ASCII; over BLE a name becomes the
    /// characteristic's 0x2901 user description, which clients read to find the endpoint.
    pub const MAX_NAME_LEN: usize = 32;

    /// The shortest timeout [`ProgramEndpoint::validate`] accepts.
    pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

    /// The longest timeout [`ProgramEndpoint::validate`] accepts.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

    /// The largest `max_response` [`ProgramEndpoint::validate`] accepts.
    pub const MAX_MAX_RESPONSE: usize = 65536;

    /// An endpoint running `command`, with the default timeout and answer limit.
    pub fn new(name: impl Into<String>, command: Vec<String>) -> Self {
        Self { name: name.into(), command, timeout: Self::DEFAULT_TIMEOUT, max_response: Self::DEFAULT_MAX_RESPONSE }
    }

    /// Validation used by the config layer: the name is 1 to [`ProgramEndpoint::MAX_NAME_LEN`] bytes of
    /// `A-Z a-z 0-9 _ -` and not one of the built-in names (`proto-ver`, `prov-session`, `prov-config`,
    /// `prov-scan`, `prov-ctrl`, `prov-networks`); the command has a non-empty program and no NUL byte; the
    /// timeout is 1 ms to 60 s; `max_response` is 1 to 65536.
    pub fn validate(&self) -> Result<(), CustomEndpointError> {
        let name = &self.name;
        if name.is_empty() || name.len() > Self::MAX_NAME_LEN {
            return Err(CustomEndpointError::NameLength { name: name.clone(), len: name.len() });
        }
        if let Some(character) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
            return Err(CustomEndpointError::NameCharacter { name: name.clone(), character });
        }
        if names::BUILT_IN.contains(&name.as_str()) {
            return Err(CustomEndpointError::NameReserved { name: name.clone() });
        }
        if self.command.first().is_none_or(String::is_empty) {
            return Err(CustomEndpointError::NoProgram { endpoint: name.clone() });
        }
        if self.command.iter().any(|arg| arg.contains('\0')) {
            return Err(CustomEndpointError::NulInCommand { endpoint: name.clone() });
        }
        if !(Self::MIN_TIMEOUT..=Self::MAX_TIMEOUT).contains(&self.timeout) {
            return Err(CustomEndpointError::TimeoutOutOfRange { endpoint: name.clone(), timeout: self.timeout });
        }
        if !(1..=Self::MAX_MAX_RESPONSE).contains(&self.max_response) {
            return Err(CustomEndpointError::MaxResponseOutOfRange {
                endpoint: name.clone(),
                max_response: self.max_response,
            });
        }
        Ok(())
    }

    /// The handler to register under [`ProgramEndpoint::name`].
    ///
    /// Each call makes a handler with its own limit of concurrent runs, so register one handler per endpoint.
    /// Meant for an endpoint that passed [`ProgramEndpoint::validate`]; a timeout or answer limit outside the
    /// accepted ranges is clamped into them rather than trusted.
    pub fn handler(&self) -> Arc<dyn EndpointHandler> {
        let mut spec = self.clone();
        spec.timeout = spec.timeout.clamp(Self::MIN_TIMEOUT, Self::MAX_TIMEOUT);
        spec.max_response = spec.max_response.clamp(1, Self::MAX_MAX_RESPONSE);
        Arc::new(ProgramHandler(Arc::new(Inner { spec, permits: Semaphore::new(MAX_CONCURRENT_RUNS) })))
    }

    /// The program's name as given (`command[0]`), for messages.
    fn program(&self) -> String {
        self.command.first().cloned().unwrap_or_default()
    }
}

/// A custom endpoint's configuration is invalid, or one run of its program failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CustomEndpointError {
    /// The name is empty or longer than [`ProgramEndpoint::MAX_NAME_LEN`] bytes.
    #[error("custom endpoint name {name:?} is {len} bytes long, not 1 to 32")]
    NameLength {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name has a character other than `A-Z a-z 0-9 _ -`.
    #[error("custom endpoint name {name:?} has {character:?}; only A-Z, a-z, 0-9, '_' and '-' are allowed")]
    NameCharacter {
        /// The name.
        name: String,
        /// The first character not allowed.
        character: char,
    },
    /// The name is a built-in endpoint's.
    #[error("custom endpoint name {name:?} is taken by a built-in endpoint")]
    NameReserved {
        /// The name.
        name: String,
    },
    /// The command is empty, or its program is.
    #[error("custom endpoint {endpoint}: no program given")]
    NoProgram {
        /// The endpoint name.
        endpoint: String,
    },
    /// The program or an argument contains a NUL byte, which no program can be given.
    #[error("custom endpoint {endpoint}: the command contains a NUL byte")]
    NulInCommand {
        /// The endpoint name.
        endpoint: String,
    },
    /// The timeout is outside [`ProgramEndpoint::MIN_TIMEOUT`] to [`ProgramEndpoint::MAX_TIMEOUT`].
    #[error("custom endpoint {endpoint}: timeout {timeout:?} is not 1ms to 60s")]
    TimeoutOutOfRange {
        /// The endpoint name.
        endpoint: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// `max_response` is outside 1 to [`ProgramEndpoint::MAX_MAX_RESPONSE`].
    #[error("custom endpoint {endpoint}: max_response {max_response} is not 1 to 65536 bytes")]
    MaxResponseOutOfRange {
        /// The endpoint name.
        endpoint: String,
        /// The configured limit.
        max_response: usize,
    },
    /// The program could not be started (not found, not executable).
    #[error("custom endpoint {endpoint}: cannot start {program:?}")]
    Spawn {
        /// The endpoint name.
        endpoint: String,
        /// The program as configured.
        program: String,
        /// Why it did not start.
        #[source]
        source: io::Error,
    },
    /// Talking to the program failed (other than it not reading its input).
    #[error("custom endpoint {endpoint}: {operation} {program:?} failed")]
    Io {
        /// The endpoint name.
        endpoint: String,
        /// The program as configured.
        program: String,
        /// What failed: `writing the request to`, `reading the answer of`, `waiting for`, ...
        operation: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The program wrote more than the answer limit; it was killed.
    #[error("custom endpoint {endpoint}: {program:?} wrote more than {limit} bytes")]
    ResponseTooLong {
        /// The endpoint name.
        endpoint: String,
        /// The program as configured.
        program: String,
        /// The limit, [`ProgramEndpoint::max_response`].
        limit: usize,
    },
    /// The program did not finish in time; it was killed.
    #[error("custom endpoint {endpoint}: {program:?} did not finish within {timeout:?}")]
    TimedOut {
        /// The endpoint name.
        endpoint: String,
        /// The program as configured.
        program: String,
        /// The timeout, [`ProgramEndpoint::timeout`].
        timeout: Duration,
    },
    /// The program exited with a non-zero status or was killed by a signal: it refused the request.
    #[error("{endpoint} exited with {status}")]
    Exited {
        /// The endpoint name.
        endpoint: String,
        /// The program as configured.
        program: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// Every run of the endpoint stayed taken for the whole timeout.
    #[error("{endpoint} is busy: {limit} runs in progress")]
    Busy {
        /// The endpoint name.
        endpoint: String,
        /// How many runs may be in progress at once.
        limit: usize,
    },
}

impl CustomEndpointError {
    /// The handler error the transport sees: the program's refusals (a non-zero exit) and a busy endpoint reject
    /// the request; everything else is the device's failure, not the request's.
    fn into_handler_error(self) -> HandlerError {
        match self {
            Self::Exited { .. } | Self::Busy { .. } => HandlerError::Rejected(self.to_string()),
            other => HandlerError::Internal(Box::new(other)),
        }
    }
}

/// The handler of one [`ProgramEndpoint`].
struct ProgramHandler(Arc<Inner>);

struct Inner {
    spec: ProgramEndpoint,
    /// One permit per run in progress (see [`MAX_CONCURRENT_RUNS`]).
    permits: Semaphore,
}

impl EndpointHandler for ProgramHandler {
    fn handle(&self, session: Option<SessionId>, request: Plaintext) -> HandlerFuture {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.serve(session, request).await })
    }
}

/// What the debug line of a run reports.
#[derive(Default)]
struct Report {
    /// Bytes the program wrote to stdout, as far as they were read.
    response_len: usize,
    /// How the program ended, when known.
    status: Option<ExitStatus>,
}

/// Why the exchange with a running program stopped before it exited.
enum Exchange {
    Stdin(io::Error),
    Stdout(io::Error),
    Wait(io::Error),
    Overflow,
}

impl Inner {
    async fn serve(&self, session: Option<SessionId>, request: Plaintext) -> Result<Vec<u8>, HandlerError> {
        let spec = &self.spec;
        let _permit = match timeout(spec.timeout, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(closed)) => return Err(HandlerError::Internal(Box::new(closed))),
            Err(_elapsed) => {
                let busy = CustomEndpointError::Busy { endpoint: spec.name.clone(), limit: MAX_CONCURRENT_RUNS };
                return Err(busy.into_handler_error());
            }
        };

        let started = Instant::now();
        let mut report = Report::default();
        // The last bytes of stderr. Its capacity is never exceeded, so it is never reallocated and leaves no copy
        // behind; it is wiped when dropped.
        let mut stderr_tail = Zeroizing::new(Vec::with_capacity(STDERR_TAIL + STDERR_CHUNK));
        let result = self.run(session, &request, &mut stderr_tail, &mut report).await;

        debug!(
            endpoint = %spec.name,
            session = session.map(|s| s.0),
            request_len = request.len(),
            response_len = report.response_len,
            status = report.status.map(tracing::field::display),
            elapsed = ?started.elapsed(),
            outcome = outcome(&result),
            "custom endpoint program ran"
        );
        result.map_err(|error| {
            if let Some(line) = last_line(&stderr_tail) {
                warn!(
                    endpoint = %spec.name,
                    session = session.map(|s| s.0),
                    %error,
                    stderr = ?&*line,
                    "custom endpoint program failed"
                );
            }
            error.into_handler_error()
        })
    }

    /// One run of the program, from spawning it to its exit (or its end, when it fails).
    async fn run(
        &self,
        session: Option<SessionId>,
        request: &[u8],
        stderr_tail: &mut Zeroizing<Vec<u8>>,
        report: &mut Report,
    ) -> Result<Vec<u8>, CustomEndpointError> {
        let spec = &self.spec;
        let Some((program, args)) = spec.command.split_first() else {
            return Err(CustomEndpointError::NoProgram { endpoint: spec.name.clone() });
        };
        let mut command = Command::new(program);
        command.args(args).env(ENV_ENDPOINT, &spec.name);
        match session {
            Some(id) => command.env(ENV_SESSION, id.to_string()),
            None => command.env_remove(ENV_SESSION),
        };
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| CustomEndpointError::Spawn {
            endpoint: spec.name.clone(),
            program: program.clone(),
            source,
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            report.status = stop(&mut child).await;
            return Err(self.io_error("opening the pipes of", io::Error::other("a pipe is missing")));
        };

        // stderr is drained for the whole run, whatever the outcome, so the program never blocks on a full pipe.
        let mut stderr_reader = pin!(read_tail(stderr, stderr_tail));
        let mut stderr_done = false;
        let outcome = {
            let exchange = async {
                let ((), response) = tokio::try_join!(feed(stdin, request), read_limited(stdout, spec.max_response))?;
                let status = child.wait().await.map_err(Exchange::Wait)?;
                Ok::<_, Exchange>((response, status))
            };
            let mut exchange = pin!(timeout(spec.timeout, exchange));
            loop {
                tokio::select! {
                    outcome = &mut exchange => break outcome,
                    () = &mut stderr_reader, if !stderr_done => stderr_done = true,
                }
            }
        };

        let result = match outcome {
            Ok(Ok((mut response, status))) => {
                report.response_len = response.len();
                report.status = Some(status);
                if status.success() {
                    // Moved out, not copied: the answer goes back to protocomm to be encrypted.
                    return Ok(std::mem::take(&mut *response));
                }
                Err(CustomEndpointError::Exited { endpoint: spec.name.clone(), program: program.clone(), status })
            }
            Ok(Err(failure)) => {
                report.status = stop(&mut child).await;
                Err(match failure {
                    Exchange::Overflow => {
                        report.response_len = spec.max_response.saturating_add(1);
                        CustomEndpointError::ResponseTooLong {
                            endpoint: spec.name.clone(),
                            program: program.clone(),
                            limit: spec.max_response,
                        }
                    }
                    Exchange::Stdin(source) => self.io_error("writing the request to", source),
                    Exchange::Stdout(source) => self.io_error("reading the answer of", source),
                    Exchange::Wait(source) => self.io_error("waiting for", source),
                })
            }
            Err(_elapsed) => {
                report.status = stop(&mut child).await;
                Err(CustomEndpointError::TimedOut {
                    endpoint: spec.name.clone(),
                    program: program.clone(),
                    timeout: spec.timeout,
                })
            }
        };
        if !stderr_done {
            // The program has ended; what it wrote last is in the pipe already, and the pipe ends at once unless a
            // process it started holds it.
            let _ = timeout(STDERR_GRACE, &mut stderr_reader).await;
        }
        result
    }

    fn io_error(&self, operation: &'static str, source: io::Error) -> CustomEndpointError {
        CustomEndpointError::Io { endpoint: self.spec.name.clone(), program: self.spec.program(), operation, source }
    }
}

/// Kills the program (if it still runs), reaps it, and returns how it ended.
async fn stop(child: &mut Child) -> Option<ExitStatus> {
    if let Err(error) = child.kill().await {
        // It had exited and been reaped already.
        debug!(%error, "custom endpoint program: kill");
    }
    child.try_wait().ok().flatten()
}

/// Writes the whole request to the program's stdin, then closes it. A program that exits or closes stdin
/// without reading it all is not an error: the request is the program's to ignore.
async fn feed(mut stdin: ChildStdin, request: &[u8]) -> Result<(), Exchange> {
    match stdin.write_all(request).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(Exchange::Stdin(error)),
    }
    // `stdin` is dropped here, which closes the pipe: the program sees the end of its input.
}

/// Reads stdout to its end, failing as soon as more than `limit` bytes arrive. The buffer is allocated once at
/// its full size and wiped when dropped, so a failed run leaves no copy of a partial answer behind.
async fn read_limited(mut stdout: impl AsyncRead + Unpin, limit: usize) -> Result<Zeroizing<Vec<u8>>, Exchange> {
    let mut buffer = Zeroizing::new(vec![0; limit.saturating_add(1)]);
    let mut filled = 0;
    loop {
        let Some(free) = buffer.get_mut(filled..) else { return Err(Exchange::Overflow) };
        match stdout.read(free).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(Exchange::Stdout(error)),
        }
        if filled > limit {
            return Err(Exchange::Overflow);
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

/// Reads stderr to its end, keeping its last [`STDERR_TAIL`] bytes in `tail` (whose capacity must be at least
/// `STDERR_TAIL + STDERR_CHUNK`, so it never grows). A read error ends it quietly: stderr only feeds the log.
async fn read_tail(mut stderr: impl AsyncRead + Unpin, tail: &mut Zeroizing<Vec<u8>>) {
    let mut chunk = Zeroizing::new([0u8; STDERR_CHUNK]);
    loop {
        let n = match stderr.read(chunk.as_mut()).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let Some(read) = chunk.get(..n) else { return };
        tail.extend_from_slice(read);
        if let Some(excess) = tail.len().checked_sub(STDERR_TAIL) {
            tail.drain(..excess);
        }
    }
}

/// The last non-blank line of `stderr`, cut to [`STDERR_LOG_BYTES`] bytes (marked with `…`), invalid UTF-8
/// replaced. The copy is wiped when dropped.
fn last_line(stderr: &[u8]) -> Option<Zeroizing<String>> {
    let line = stderr.split(|&b| b == b'\n').map(<[u8]>::trim_ascii).rfind(|line| !line.is_empty())?;
    let (line, cut) = match line.get(..STDERR_LOG_BYTES) {
        Some(head) if line.len() > STDERR_LOG_BYTES => (head, true),
        _ => (line, false),
    };
    // Every byte becomes at most 3 (one U+FFFD), plus the marker: the string never grows past its capacity.
    let mut text = Zeroizing::new(String::with_capacity(line.len() * 3 + '…'.len_utf8()));
    for chunk in line.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    if cut {
        text.push('…');
    }
    Some(text)
}

/// A word for the debug line of a run.
fn outcome(result: &Result<Vec<u8>, CustomEndpointError>) -> &'static str {
    match result {
        Ok(_) => "answered",
        Err(CustomEndpointError::Exited { .. }) => "refused",
        Err(CustomEndpointError::TimedOut { .. }) => "timed out",
        Err(CustomEndpointError::ResponseTooLong { .. }) => "answer too long",
        Err(CustomEndpointError::Spawn { .. }) => "not started",
        Err(_) => "failed",
    }
}

/// What reads and limits a program's output, reachable without running a program: for the fuzz targets in
/// `fuzz/`. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{AsyncRead, Exchange, Zeroizing};

    /// How much of stderr is kept, how much is read at a time, and how much of a line is logged.
    pub const LIMITS: (usize, usize, usize) = (super::STDERR_TAIL, super::STDERR_CHUNK, super::STDERR_LOG_BYTES);

    /// The line a failed run logs from its stderr.
    pub fn last_line(stderr: &[u8]) -> Option<Zeroizing<String>> {
        super::last_line(stderr)
    }

    /// Reads an answer as from stdout: `Err(None)` when it is longer than `limit`, `Err(Some(_))` when a read fails.
    pub async fn read_limited(
        reader: impl AsyncRead + Unpin,
        limit: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Option<std::io::Error>> {
        super::read_limited(reader, limit).await.map_err(|failure| match failure {
            Exchange::Stdout(error) | Exchange::Stdin(error) | Exchange::Wait(error) => Some(error),
            Exchange::Overflow => None,
        })
    }

    /// Keeps the tail of a stream as from stderr, in `tail` (capacity at least `STDERR_TAIL + STDERR_CHUNK`).
    pub async fn read_tail(reader: impl AsyncRead + Unpin, tail: &mut Zeroizing<Vec<u8>>) {
        super::read_tail(reader, tail).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant as WallInstant;

    use tokio::task::JoinSet;

    use super::*;

    fn sh(name: &str, script: &str) -> ProgramEndpoint {
        ProgramEndpoint::new(name, vec!["/bin/sh".into(), "-c".into(), script.into()])
    }

    async fn run(
        handler: &Arc<dyn EndpointHandler>,
        session: Option<SessionId>,
        bytes: &[u8],
    ) -> Result<Vec<u8>, HandlerError> {
        handler.handle(session, Zeroizing::new(bytes.to_vec())).await
    }

    /// The `CustomEndpointError` inside an internal failure.
    fn internal(result: Result<Vec<u8>, HandlerError>) -> CustomEndpointError {
        match result {
            Err(HandlerError::Internal(source)) => match source.downcast::<CustomEndpointError>() {
                Ok(error) => *error,
                Err(other) => panic!("internal error of another type: {other}"),
            },
            other => panic!("expected an internal failure, got {other:?}"),
        }
    }

    fn rejected(result: Result<Vec<u8>, HandlerError>) -> String {
        match result {
            Err(HandlerError::Rejected(reason)) => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn answers_with_stdout_of_the_program_fed_the_request() {
        let handler = sh("custom-data", "printf got:; cat").handler();
        assert_eq!(run(&handler, Some(SessionId(7)), b"hello").await.unwrap(), b"got:hello");
        assert_eq!(run(&handler, None, b"").await.unwrap(), b"got:");
        let binary: Vec<u8> = (0..=255).collect();
        assert_eq!(run(&handler, None, &binary).await.unwrap(), [&b"got:"[..], &binary].concat());
    }

    #[tokio::test]
    async fn non_zero_exit_rejects_the_request() {
        let handler = sh("custom-data", "cat >/dev/null; echo 'token expired' >&2; exit 3").handler();
        assert_eq!(rejected(run(&handler, Some(SessionId(1)), b"x").await), "custom-data exited with exit status: 3");
    }

    #[tokio::test]
    async fn death_by_signal_rejects_the_request() {
        let handler = sh("custom-data", "kill -9 $$").handler();
        let reason = rejected(run(&handler, None, b"x").await);
        assert!(reason.starts_with("custom-data exited with signal: 9"), "{reason}");
    }

    #[tokio::test]
    async fn program_that_ignores_stdin_still_answers() {
        let handler = sh("custom-data", "printf ignored").handler();
        assert_eq!(run(&handler, None, b"small").await.unwrap(), b"ignored");
        // Larger than any pipe buffer: the write can only end with a broken pipe, which is not a failure.
        let big = vec![b'x'; 1 << 20];
        assert_eq!(run(&handler, None, &big).await.unwrap(), b"ignored");
        // Closing stdin early is the same.
        let handler = sh("custom-data", "exec 0<&-; printf closed").handler();
        assert_eq!(run(&handler, None, &big).await.unwrap(), b"closed");
    }

    #[tokio::test]
    async fn timeout_kills_the_program_and_fails_fast() {
        let mut endpoint = sh("custom-data", "sleep 5");
        endpoint.timeout = Duration::from_millis(200);
        let handler = endpoint.handler();
        let started = WallInstant::now();
        let error = internal(run(&handler, None, b"x").await);
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        assert!(
            matches!(error, CustomEndpointError::TimedOut { ref endpoint, timeout, .. }
                if endpoint == "custom-data" && timeout == Duration::from_millis(200)),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn oversized_answer_fails() {
        let mut endpoint = sh("custom-data", "head -c 10000 /dev/zero");
        endpoint.max_response = 4096;
        let error = internal(run(&endpoint.handler(), None, b"x").await);
        assert!(matches!(error, CustomEndpointError::ResponseTooLong { limit: 4096, .. }), "{error:?}");

        // A program that never stops writing is cut off too, not waited for.
        let mut endpoint = sh("custom-data", "cat /dev/zero");
        endpoint.max_response = 4096;
        let error = internal(run(&endpoint.handler(), None, b"x").await);
        assert!(matches!(error, CustomEndpointError::ResponseTooLong { limit: 4096, .. }), "{error:?}");

        // Exactly the limit is fine.
        let mut endpoint = sh("custom-data", "head -c 4096 /dev/zero");
        endpoint.max_response = 4096;
        assert_eq!(run(&endpoint.handler(), None, b"x").await.unwrap(), vec![0; 4096]);
    }

    #[tokio::test]
    async fn missing_program_is_an_internal_failure() {
        let endpoint = ProgramEndpoint::new("custom-data", vec!["/nonexistent/wifiprov-custom".into()]);
        let error = internal(run(&endpoint.handler(), None, b"x").await);
        match error {
            CustomEndpointError::Spawn { endpoint, program, source } => {
                assert_eq!(endpoint, "custom-data");
                assert_eq!(program, "/nonexistent/wifiprov-custom");
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        // Not executable.
        let endpoint = ProgramEndpoint::new("custom-data", vec!["/dev/null".into()]);
        assert!(matches!(internal(run(&endpoint.handler(), None, b"x").await), CustomEndpointError::Spawn { .. }));
    }

    #[tokio::test]
    async fn environment_names_endpoint_and_session() {
        let handler = sh("cloud-token", r#"printf '%s/%s' "$WIFIPROV_ENDPOINT" "${WIFIPROV_SESSION-unset}""#).handler();
        assert_eq!(run(&handler, Some(SessionId(3_000_000_000)), b"").await.unwrap(), b"cloud-token/3000000000");
        assert_eq!(run(&handler, None, b"").await.unwrap(), b"cloud-token/unset");
        // The daemon's own environment is inherited.
        let handler = sh("custom-data", r#"printf '%s' "${PATH:+has-path}""#).handler();
        assert_eq!(run(&handler, None, b"").await.unwrap(), b"has-path");
    }

    #[tokio::test]
    async fn stderr_is_drained_while_the_program_runs() {
        // Far more than a pipe buffer: a program blocked on stderr would time out instead.
        let handler = sh("custom-data", "head -c 300000 /dev/zero >&2; printf ok").handler();
        assert_eq!(run(&handler, None, b"x").await.unwrap(), b"ok");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_queue_and_are_all_answered() {
        let handler = sh("custom-data", "printf got:; cat").handler();
        let mut tasks = JoinSet::new();
        for i in 0..8u32 {
            let handler = Arc::clone(&handler);
            tasks.spawn(async move {
                let request = format!("request {i}");
                let answer = run(&handler, Some(SessionId(i)), request.as_bytes()).await;
                (request, answer)
            });
        }
        let mut answered = 0;
        while let Some(joined) = tasks.join_next().await {
            let (request, answer) = joined.unwrap();
            assert_eq!(answer.unwrap(), format!("got:{request}").into_bytes());
            answered += 1;
        }
        assert_eq!(answered, 8);
    }

    #[tokio::test]
    async fn requests_beyond_the_run_limit_fail_busy_after_the_timeout() {
        let mut endpoint = sh("custom-data", "printf never");
        endpoint.timeout = Duration::from_millis(50);
        let inner = Arc::new(Inner { spec: endpoint, permits: Semaphore::new(MAX_CONCURRENT_RUNS) });
        let handler: Arc<dyn EndpointHandler> = Arc::new(ProgramHandler(Arc::clone(&inner)));
        let held = inner.permits.acquire_many(MAX_CONCURRENT_RUNS as u32).await.unwrap();
        assert_eq!(rejected(run(&handler, None, b"x").await), "custom-data is busy: 4 runs in progress");
        drop(held);
        assert_eq!(run(&handler, None, b"x").await.unwrap(), b"never");
    }

    #[tokio::test]
    async fn failed_runs_give_their_permit_back() {
        let mut endpoint = sh("custom-data", "case $(cat) in t) sleep 5;; big) cat /dev/zero;; *) exit 1;; esac");
        endpoint.timeout = Duration::from_millis(200);
        endpoint.max_response = 16;
        let inner = Arc::new(Inner { spec: endpoint, permits: Semaphore::new(MAX_CONCURRENT_RUNS) });
        let handler: Arc<dyn EndpointHandler> = Arc::new(ProgramHandler(Arc::clone(&inner)));
        internal(run(&handler, None, b"t").await);
        internal(run(&handler, None, b"big").await);
        rejected(run(&handler, None, b"x").await);
        assert_eq!(inner.permits.available_permits(), MAX_CONCURRENT_RUNS);
    }

    #[test]
    fn validate_accepts_good_endpoints() {
        let mut endpoint = sh("custom-data", "cat");
        endpoint.validate().unwrap();
        for name in ["a", "A-Z_a-z_0-9", &"x".repeat(32)] {
            endpoint.name = name.to_owned();
            endpoint.validate().unwrap();
        }
        for timeout in [Duration::from_millis(1), Duration::from_secs(60)] {
            endpoint.timeout = timeout;
            endpoint.validate().unwrap();
        }
        for max_response in [1, ProgramEndpoint::BLE_MAX_RESPONSE, 65536] {
            endpoint.max_response = max_response;
            endpoint.validate().unwrap();
        }
    }

    #[test]
    fn validate_checks_the_name() {
        let with_name = |name: &str| sh(name, "cat").validate();
        assert!(matches!(with_name(""), Err(CustomEndpointError::NameLength { len: 0, .. })));
        assert!(matches!(with_name(&"x".repeat(33)), Err(CustomEndpointError::NameLength { len: 33, .. })));
        assert!(matches!(with_name("custom data"), Err(CustomEndpointError::NameCharacter { character: ' ', .. })));
        assert!(matches!(with_name("café"), Err(CustomEndpointError::NameCharacter { character: 'é', .. })));
        assert!(matches!(with_name("a/b"), Err(CustomEndpointError::NameCharacter { character: '/', .. })));
        assert!(matches!(with_name("a\0"), Err(CustomEndpointError::NameCharacter { character: '\0', .. })));
        for name in ["proto-ver", "prov-session", "prov-config", "prov-scan", "prov-ctrl", "prov-networks"] {
            assert!(matches!(with_name(name), Err(CustomEndpointError::NameReserved { .. })), "{name}");
        }
        assert_eq!(
            with_name("prov-config").unwrap_err().to_string(),
            r#"custom endpoint name "prov-config" is taken by a built-in endpoint"#
        );
    }

    #[test]
    fn validate_checks_command_and_limits() {
        let mut endpoint = ProgramEndpoint::new("custom-data", vec![]);
        assert!(matches!(endpoint.validate(), Err(CustomEndpointError::NoProgram { .. })));
        endpoint.command = vec![String::new(), "arg".into()];
        assert!(matches!(endpoint.validate(), Err(CustomEndpointError::NoProgram { .. })));
        endpoint.command = vec!["/bin/echo".into(), "a\0b".into()];
        assert!(matches!(endpoint.validate(), Err(CustomEndpointError::NulInCommand { .. })));

        let mut endpoint = sh("custom-data", "cat");
        for timeout in [Duration::ZERO, Duration::from_micros(999), Duration::from_secs(60) + Duration::from_nanos(1)] {
            endpoint.timeout = timeout;
            let error = endpoint.validate().unwrap_err();
            assert!(
                matches!(error, CustomEndpointError::TimeoutOutOfRange { timeout: t, .. } if t == timeout),
                "{error}"
            );
        }
        endpoint.timeout = ProgramEndpoint::DEFAULT_TIMEOUT;
        for limit in [0, 65537, usize::MAX] {
            endpoint.max_response = limit;
            match endpoint.validate() {
                Err(CustomEndpointError::MaxResponseOutOfRange { max_response, .. }) => assert_eq!(max_response, limit),
                other => panic!("{limit}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn handler_clamps_limits_it_was_not_meant_to_get() {
        let mut endpoint = sh("custom-data", "printf ok");
        endpoint.timeout = Duration::MAX;
        endpoint.max_response = usize::MAX;
        assert_eq!(run(&endpoint.handler(), None, b"").await.unwrap(), b"ok");
    }

    #[test]
    fn last_line_of_stderr_is_trimmed_and_cut() {
        assert_eq!(last_line(b""), None);
        assert_eq!(last_line(b"\n \n"), None);
        assert_eq!(
            last_line(b"first\nerror: token expired\r\n\n").as_deref().map(String::as_str),
            Some("error: token expired")
        );
        assert_eq!(last_line(b"bad \xff byte").as_deref().map(String::as_str), Some("bad \u{fffd} byte"));
        let long = last_line(&[b'e'; 1000]).unwrap();
        assert_eq!(*long, format!("{}…", "e".repeat(STDERR_LOG_BYTES)));
    }

    #[test]
    fn errors_name_their_subject() {
        let error = CustomEndpointError::ResponseTooLong {
            endpoint: "custom-data".into(),
            program: "/usr/lib/acme/token".into(),
            limit: 4096,
        };
        assert_eq!(
            error.to_string(),
            r#"custom endpoint custom-data: "/usr/lib/acme/token" wrote more than 4096 bytes"#
        );
        assert!(matches!(error.into_handler_error(), HandlerError::Internal(_)));
    }
}
