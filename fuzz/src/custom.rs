//! Target `custom_endpoint`: what `wifiprovd`'s program-backed custom endpoints (`crates/wifiprovd/src/custom.rs`)
//! do with untrusted bytes, without starting a program per run: the configuration check, reading the answer
//! from stdout under its limit, keeping the tail of stderr, and picking the stderr line to log. The readers are
//! fed by a fake pipe that hands out the input in chunks of the input's choosing, with `Interrupted` errors,
//! other read errors and not-ready polls mixed in.
//!
//! Input byte 0 % 4 picks the part:
//!
//! - 0, `ProgramEndpoint::validate`: asserted to accept exactly what its documentation allows (name of 1 to 32
//!   bytes of `A-Z a-z 0-9 _ -`, not a built-in endpoint; a non-empty program; no NUL; timeout 1 ms to 60 s;
//!   answer limit 1 to 65536), and to name the first rule broken.
//! - 1, stdout: the answer is everything written when it fits the limit and "too long" otherwise, a read error
//!   fails the run, `Interrupted` is retried, and the buffer is allocated once at `limit + 1` bytes (never
//!   reallocated, so no copy of an answer is left behind).
//! - 2, stderr: the kept tail is exactly the last 4096 bytes read before the end or the first error, and the
//!   buffer never grows.
//! - 3, the logged line: the last non-blank line, trimmed, cut to 200 bytes plus `…`, invalid UTF-8 replaced,
//!   with no newline, in a string that never outgrew its first allocation.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use program::{CustomEndpointError, ProgramEndpoint, fuzzing};
use tokio::io::{AsyncRead, ReadBuf};
use zeroize::Zeroizing;

use crate::exec::block_on;
use crate::input::Input;

/// `wifiprovd`'s `custom.rs` itself, compiled into this crate. Depending on the daemon would build its whole
/// tree (BlueZ, D-Bus, mDNS, clap, ...) for one module; the module needs only tokio, tracing, zeroize, thiserror
/// and wifiprov-proto. If it ever refers to the rest of the daemon (`crate::...`), depend on `wifiprovd`
/// instead and import `wifiprovd::custom`.
#[path = "../../crates/wifiprovd/src/custom.rs"]
#[allow(dead_code)]
mod program;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 4 {
        0 => validate(&mut input),
        1 => stdout(&mut input),
        2 => stderr(&mut input),
        _ => last_line(input.rest()),
    }
}

const BUILT_IN: [&str; 6] = ["proto-ver", "prov-session", "prov-config", "prov-scan", "prov-ctrl", "prov-networks"];

fn validate(input: &mut Input<'_>) {
    let name_len = usize::from(input.u8() % 40);
    let name = String::from_utf8_lossy(input.bytes(name_len)).into_owned();
    let command: Vec<String> = (0..input.u8() % 4)
        .map(|_| {
            let len = usize::from(input.u8() % 8);
            String::from_utf8_lossy(input.bytes(len)).into_owned()
        })
        .collect();
    // Nanoseconds around the interesting bounds, up to about 73 s.
    let timeout = Duration::from_nanos(input.u64() % 73_000_000_000);
    let max_response = match input.u8() % 3 {
        0 => usize::from(input.u16()),
        1 => 65_536 + usize::from(input.u8()),
        _ => input.u64() as usize,
    };
    let endpoint = ProgramEndpoint { name: name.clone(), command: command.clone(), timeout, max_response };
    let result = endpoint.validate();
    let expected = if name.is_empty() || name.len() > ProgramEndpoint::MAX_NAME_LEN {
        "name length"
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        "name character"
    } else if BUILT_IN.contains(&name.as_str()) {
        "name reserved"
    } else if command.first().is_none_or(String::is_empty) {
        "no program"
    } else if command.iter().any(|a| a.contains('\0')) {
        "nul"
    } else if !(ProgramEndpoint::MIN_TIMEOUT..=ProgramEndpoint::MAX_TIMEOUT).contains(&timeout) {
        "timeout"
    } else if !(1..=ProgramEndpoint::MAX_MAX_RESPONSE).contains(&max_response) {
        "max_response"
    } else {
        "ok"
    };
    let got = match &result {
        Ok(()) => "ok",
        Err(CustomEndpointError::NameLength { .. }) => "name length",
        Err(CustomEndpointError::NameCharacter { .. }) => "name character",
        Err(CustomEndpointError::NameReserved { .. }) => "name reserved",
        Err(CustomEndpointError::NoProgram { .. }) => "no program",
        Err(CustomEndpointError::NulInCommand { .. }) => "nul",
        Err(CustomEndpointError::TimeoutOutOfRange { .. }) => "timeout",
        Err(CustomEndpointError::MaxResponseOutOfRange { .. }) => "max_response",
        Err(other) => panic!("validate returned a run-time error: {other}"),
    };
    assert_eq!(got, expected, "validate({endpoint:?}) = {result:?}");
    if let Err(e) = result {
        let _ = e.to_string();
    }
}

/// What the fake pipe does on one poll.
#[derive(Debug, Clone)]
enum Event {
    Data(Vec<u8>),
    Interrupted,
    Fail,
    NotReady,
}

/// A pipe scripted by the input: each event is one byte `kind` (and for data a length and the bytes).
struct Pipe {
    events: std::collections::VecDeque<Event>,
}

impl Pipe {
    fn new(input: &mut Input<'_>) -> (Self, Vec<u8>, bool) {
        let mut events = std::collections::VecDeque::new();
        let mut written = Vec::new();
        let mut failed = false;
        while !input.is_empty() && events.len() < 256 {
            match input.u8() % 8 {
                0 => events.push_back(Event::Interrupted),
                1 => events.push_back(Event::NotReady),
                2 if !failed => {
                    failed = true;
                    events.push_back(Event::Fail);
                }
                kind => {
                    // Lengths up to 4 KiB, repeated bytes, so short inputs still make long streams.
                    let len = usize::from(input.u8()) * usize::from(kind);
                    let fill = input.u8();
                    let chunk = if kind == 7 { input.bytes(len).to_vec() } else { vec![fill; len] };
                    if !failed {
                        written.extend_from_slice(&chunk);
                    }
                    events.push_back(Event::Data(chunk));
                }
            }
        }
        (Self { events }, written, failed)
    }
}

impl AsyncRead for Pipe {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.events.pop_front() {
                // The end of the stream, or after a failure the stream stays failed.
                None => return Poll::Ready(Ok(())),
                Some(Event::Interrupted) => return Poll::Ready(Err(io::ErrorKind::Interrupted.into())),
                Some(Event::Fail) => {
                    self.events.clear();
                    self.events.push_back(Event::Fail);
                    return Poll::Ready(Err(io::Error::other("broken pipe")));
                }
                Some(Event::NotReady) => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Some(Event::Data(mut chunk)) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    let n = chunk.len().min(buf.remaining());
                    buf.put_slice(&chunk[..n]);
                    if n < chunk.len() {
                        chunk.drain(..n);
                        self.events.push_front(Event::Data(chunk));
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

fn stdout(input: &mut Input<'_>) {
    let limit = 1 + usize::from(input.u16());
    let (pipe, written, failed) = Pipe::new(input);
    match block_on(fuzzing::read_limited(pipe, limit)) {
        Ok(answer) => {
            assert!(answer.len() <= limit, "an answer of {} bytes passed a limit of {limit}", answer.len());
            assert_eq!(*answer, written, "the answer is not what the program wrote");
            assert!(!failed, "a failed read produced an answer");
            assert_eq!(answer.capacity(), limit + 1, "the answer buffer was reallocated");
        }
        Err(None) => assert!(written.len() > limit, "{} bytes refused as too long for {limit}", written.len()),
        Err(Some(e)) => {
            assert!(failed, "a read error nobody injected: {e}");
            assert!(written.len() <= limit, "the limit should have stopped the read before the error");
        }
    }
}

fn stderr(input: &mut Input<'_>) {
    let (tail_len, chunk_len, _) = fuzzing::LIMITS;
    let (pipe, written, _) = Pipe::new(input);
    let mut tail = Zeroizing::new(Vec::with_capacity(tail_len + chunk_len));
    let capacity = tail.capacity();
    block_on(fuzzing::read_tail(pipe, &mut tail));
    let expected = &written[written.len().saturating_sub(tail_len)..];
    assert_eq!(tail.as_slice(), expected, "the kept stderr is not the last {tail_len} bytes");
    assert_eq!(tail.capacity(), capacity, "the stderr buffer grew");
}

/// The documented rule, written independently.
fn expected_line(stderr: &[u8], max: usize) -> Option<String> {
    let line = stderr.split(|&b| b == b'\n').map(<[u8]>::trim_ascii).rfind(|l| !l.is_empty())?;
    let cut = line.len() > max;
    let mut text = String::from_utf8_lossy(&line[..line.len().min(max)]).into_owned();
    if cut {
        text.push('…');
    }
    Some(text)
}

fn last_line(stderr: &[u8]) {
    let (_, _, max) = fuzzing::LIMITS;
    let got = fuzzing::last_line(stderr);
    let expected = expected_line(stderr, max);
    assert_eq!(got.as_deref().map(String::as_str), expected.as_deref(), "last_line differs from its documentation");
    if let Some(line) = got {
        assert!(!line.contains('\n'));
        let source = line.trim_end_matches('…');
        assert!(source.len() <= 3 * max, "a logged line of {} bytes", line.len());
        let cut_len = stderr.len().min(max);
        assert!(line.capacity() <= 3 * cut_len + '…'.len_utf8(), "the line outgrew its allocation");
    }
}
