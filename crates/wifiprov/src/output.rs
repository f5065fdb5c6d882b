//! Everything written to stdout: reports as text or as one JSON object, the error object of `--json`, and the
//! small formatting helpers the reports share. Diagnostics go to stderr through [`diag`].

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;
use wifiprov_proto::messages::AuthMode;

use crate::exit::{self, Code};

/// The result of a command, printable both ways.
pub(crate) trait Report {
    /// The JSON object, on one line.
    fn json(&self) -> serde_json::Result<String>;
    /// The text for people.
    fn human(&self, out: &mut dyn Write) -> io::Result<()>;
    /// The exit code this result means.
    fn code(&self) -> Code {
        Code::Success
    }
}

/// Serialises a report struct (field order is kept).
pub(crate) fn to_json<T: Serialize>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string(value)
}

/// Prints `report` on stdout and returns the exit code. A closed stdout counts as success.
pub(crate) fn emit(report: &dyn Report, json: bool) -> Code {
    match write_stdout(|out| {
        if json {
            let text = report.json().map_err(io::Error::other)?;
            writeln!(out, "{text}")
        } else {
            report.human(out)
        }
    }) {
        Ok(()) => report.code(),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Code::Success,
        Err(e) => {
            diag(format_args!("cannot write the output: {e}"));
            Code::Usage
        }
    }
}

#[derive(Serialize)]
struct ErrorReport<'a> {
    ok: bool,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    kind: &'a str,
    message: String,
    exit_code: u8,
}

/// Reports a failed run: `wifiprov: {err:#}` once on stderr and, with `--json`, the error object on stdout.
pub(crate) fn fail(err: &anyhow::Error, json: bool) -> Code {
    if exit::is_broken_pipe(err) {
        return Code::Success;
    }
    let code = exit::classify(err);
    diag(format_args!("{err:#}"));
    if json {
        let report = ErrorReport {
            ok: false,
            error: ErrorBody { kind: code.kind(), message: format!("{err:#}"), exit_code: code.number() },
        };
        let written = write_stdout(|out| {
            let text = serde_json::to_string(&report).map_err(io::Error::other)?;
            writeln!(out, "{text}")
        });
        if let Err(e) = written
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            diag(format_args!("cannot write the output: {e}"));
        }
    }
    code
}

/// Reports what clap found: help and version on stdout (exit 0), a usage error on stderr (exit 2) and, when
/// `--json` is on the command line, also as the JSON error object on stdout.
pub(crate) fn usage(err: &clap::Error) -> u8 {
    let _ = err.print();
    let code = u8::try_from(err.exit_code()).unwrap_or(Code::Usage.number());
    if err.use_stderr() && std::env::args_os().any(|a| a == "--json") {
        let message = err.kind().as_str().map_or_else(|| "invalid command line".to_owned(), str::to_owned);
        let report = ErrorReport { ok: false, error: ErrorBody { kind: Code::Usage.kind(), message, exit_code: code } };
        let _ = write_stdout(|out| {
            let text = serde_json::to_string(&report).map_err(io::Error::other)?;
            writeln!(out, "{text}")
        });
    }
    code
}

fn write_stdout(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    f(&mut out)?;
    out.flush()
}

/// One diagnostic line on stderr, prefixed `wifiprov: `. Failing to write it is ignored (stderr is gone).
pub(crate) fn diag(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "wifiprov: {message}");
}

/// A line of human text on stderr (prompts, lists, notes), without prefix.
pub(crate) fn note(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{message}");
}

/// An SSID for display: lossy UTF-8 with control characters escaped, so a hostile network name cannot send
/// escape sequences to the terminal.
pub(crate) fn ssid_text(ssid: &[u8]) -> String {
    let mut out = String::new();
    for c in String::from_utf8_lossy(ssid).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `aa:bb:cc:dd:ee:ff`; an empty BSSID is `None`.
pub(crate) fn bssid_text(bssid: &[u8]) -> Option<String> {
    if bssid.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(bssid.len() * 3);
    for (i, b) in bssid.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02x}");
    }
    Some(out)
}

/// The name of an authentication mode.
pub(crate) fn auth_text(mode: AuthMode) -> String {
    match mode {
        AuthMode::Open => "open".to_owned(),
        AuthMode::Wep => "wep".to_owned(),
        AuthMode::WpaPsk => "wpa-psk".to_owned(),
        AuthMode::Wpa2Psk => "wpa2-psk".to_owned(),
        AuthMode::WpaWpa2Psk => "wpa/wpa2-psk".to_owned(),
        AuthMode::Wpa2Enterprise => "wpa2-enterprise".to_owned(),
        AuthMode::Wpa3Psk => "wpa3-psk".to_owned(),
        AuthMode::Wpa2Wpa3Psk => "wpa2/wpa3-psk".to_owned(),
        AuthMode::Other(n) => format!("other({n})"),
        // AuthMode is non-exhaustive: a mode the proto crate learns later.
        _ => "unknown".to_owned(),
    }
}

/// Alignment of a table column.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A plain text table: a header row, then rows, columns padded to the widest cell.
pub(crate) fn table(header: &[&str], align: &[Align], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(columns) {
            let width = widths.get(i).copied().unwrap_or(0);
            let right = align.get(i) == Some(&Align::Right);
            if i > 0 {
                line.push_str("  ");
            }
            let pad = width.saturating_sub(cell.chars().count());
            if right {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_helpers() {
        assert_eq!(ssid_text(b"caf\xc3\xa9\x1b[2J"), "café\\u{1b}[2J");
        assert_eq!(bssid_text(&[2, 0, 0, 0, 0, 0xab]).as_deref(), Some("02:00:00:00:00:ab"));
        assert_eq!(bssid_text(&[]), None);
        assert_eq!(auth_text(AuthMode::WpaWpa2Psk), "wpa/wpa2-psk");
        let t = table(
            &["A", "BB"],
            &[Align::Left, Align::Right],
            &[vec!["long".into(), "1".into()], vec!["x".into(), "22".into()]],
        );
        assert_eq!(t, "A     BB\nlong   1\nx     22\n");
    }
}
