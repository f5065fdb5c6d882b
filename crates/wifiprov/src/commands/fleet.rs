//! `fleet`: provision many devices at once from a TOML or CSV file.
//!
//! Devices run concurrently on one thread (a `LocalSet`), at most `--concurrency` at a time (a semaphore).
//! A device whose attempt fails for transport reasons is tried again, up to `--retries` more times.

use std::io::{self, Write};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use wifiprov_client::ProvisionOutcome;
use zeroize::Zeroizing;

use crate::commands::Ctx;
use crate::commands::provision::{Delivered, Update, Visibility, deliver, judge, poll_policy};
use crate::exit::{self, Code, classified};
use crate::flags::FleetArgs;
use crate::output::{Align, Report, table, to_json};
use crate::progress::Board;
use crate::secrets::{Prompt, Secret};
use crate::session::{self, Auth, Target};

/// One device of the file, as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    device: String,
    ssid: String,
    #[serde(default)]
    passphrase: Option<String>,
    #[serde(default)]
    security: Option<u8>,
    #[serde(default)]
    pop: Option<String>,
    #[serde(default)]
    sec2_username: Option<String>,
    #[serde(default)]
    sec2_password: Option<String>,
}

impl Drop for RawDevice {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.passphrase.zeroize();
        self.pop.zeroize();
        self.sec2_password.zeroize();
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    #[serde(default)]
    device: Vec<RawDevice>,
}

/// One device, checked.
struct DeviceSpec {
    target: Target,
    ssid: String,
    passphrase: Secret,
    security: Option<u8>,
    pop: Option<Secret>,
    sec2_username: Option<String>,
    sec2_password: Option<Secret>,
}

impl DeviceSpec {
    fn check(raw: &mut RawDevice, place: &str) -> anyhow::Result<Self> {
        let target = Target::parse(&raw.device).with_context(|| format!("{place}: device"))?;
        if raw.ssid.is_empty() || raw.ssid.len() > 32 {
            return Err(classified(Code::Usage, format!("{place}: an SSID has 1 to 32 bytes")));
        }
        if raw.passphrase.as_ref().is_some_and(|p| p.len() > 64) {
            return Err(classified(Code::Usage, format!("{place}: a passphrase has at most 64 characters")));
        }
        if raw.security.is_some_and(|s| s > 2) {
            return Err(classified(Code::Usage, format!("{place}: security must be 0, 1 or 2")));
        }
        Ok(Self {
            target,
            ssid: raw.ssid.clone(),
            passphrase: Zeroizing::new(raw.passphrase.take().unwrap_or_default()),
            security: raw.security,
            pop: raw.pop.take().map(Zeroizing::new),
            sec2_username: raw.sec2_username.take(),
            sec2_password: raw.sec2_password.take().map(Zeroizing::new),
        })
    }

    /// The global options with this device's values on top; never prompts.
    fn auth(&self, global: &Auth) -> Auth {
        let mut auth = global.clone();
        auth.pop.prompt = Prompt::Never;
        auth.password.prompt = Prompt::Never;
        auth.pop.how = "pop in the fleet file, or --pop, --pop-file or WIFIPROV_POP";
        auth.password.how = "sec2_password in the fleet file, or --sec2-password, --sec2-password-file or \
                             WIFIPROV_SEC2_PASSWORD";
        if let Some(security) = self.security {
            auth.security = Some(security);
        }
        if let Some(pop) = &self.pop {
            auth.pop.value = Some(pop.clone());
        }
        if let Some(username) = &self.sec2_username {
            auth.username = Some(username.clone());
        }
        if let Some(password) = &self.sec2_password {
            auth.password.value = Some(password.clone());
        }
        auth
    }
}

/// Reads the device list: TOML for `*.toml`, CSV for `*.csv`, otherwise guessed from the content.
fn load(path: &Path) -> anyhow::Result<Vec<DeviceSpec>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read the fleet file {}", path.display()))?,
    );
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let is_toml = match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("toml") => true,
        Some(e) if e.eq_ignore_ascii_case("csv") => false,
        _ => text.lines().any(|l| l.trim() == "[[device]]"),
    };
    let name = path.display();
    let specs = if is_toml {
        let mut file: FleetFile =
            toml::from_str(text).map_err(|e| classified(Code::Usage, format!("{name}: {}", e.message())))?;
        file.device
            .iter_mut()
            .enumerate()
            .map(|(i, raw)| DeviceSpec::check(raw, &format!("{name}: device {}", i + 1)))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        parse_csv(text, &name.to_string())?
    };
    if specs.is_empty() {
        return Err(classified(Code::Usage, format!("{name}: no devices")));
    }
    Ok(specs)
}

const CSV_COLUMNS: [&str; 7] = ["device", "ssid", "passphrase", "security", "pop", "sec2_username", "sec2_password"];

fn parse_csv(text: &str, name: &str) -> anyhow::Result<Vec<DeviceSpec>> {
    let mut header: Option<Vec<String>> = None;
    let mut specs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let place = format!("{name}: line {}", i + 1);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut fields = split_csv_line(line).map_err(|e| classified(Code::Usage, format!("{place}: {e}")))?;
        let Some(columns) = &header else {
            for column in &fields {
                if !CSV_COLUMNS.contains(&column.as_str()) {
                    return Err(classified(
                        Code::Usage,
                        format!("{place}: unknown column {column:?} (known: {})", CSV_COLUMNS.join(", ")),
                    ));
                }
            }
            for required in ["device", "ssid"] {
                if !fields.iter().any(|c| c == required) {
                    return Err(classified(Code::Usage, format!("{place}: the header has no {required} column")));
                }
            }
            header = Some(std::mem::take(&mut fields));
            continue;
        };
        if fields.len() != columns.len() {
            return Err(classified(
                Code::Usage,
                format!("{place}: {} fields, but the header has {}", fields.len(), columns.len()),
            ));
        }
        let mut raw = RawDevice::default();
        for (column, value) in columns.iter().zip(fields.iter_mut()) {
            let value = std::mem::take(value);
            let present = if value.is_empty() { None } else { Some(value) };
            match column.as_str() {
                "device" => raw.device = present.unwrap_or_default(),
                "ssid" => raw.ssid = present.unwrap_or_default(),
                "passphrase" => raw.passphrase = present,
                "security" => {
                    raw.security = present
                        .map(|s| s.parse::<u8>())
                        .transpose()
                        .map_err(|_| classified(Code::Usage, format!("{place}: security must be 0, 1 or 2")))?;
                }
                "pop" => raw.pop = present,
                "sec2_username" => raw.sec2_username = present,
                _ => raw.sec2_password = present,
            }
        }
        specs.push(DeviceSpec::check(&mut raw, &place)?);
    }
    if header.is_none() {
        return Err(classified(Code::Usage, format!("{name}: no header line")));
    }
    Ok(specs)
}

/// Splits one CSV line: fields separated by commas, optionally in double quotes (`""` is a quote inside
/// them). Unquoted fields are trimmed. The error never quotes the line, which may hold secrets.
fn split_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(' ' | '\t')) {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while matches!(chars.peek(), Some(' ' | '\t')) {
                chars.next();
            }
            fields.push(field);
            match chars.next() {
                None => return Ok(fields),
                Some(',') => {}
                Some(_) => return Err("text after a closing quote"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim_end().to_owned());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim_end().to_owned());
        }
    }
}

/// How one device ended.
#[derive(Serialize)]
struct DeviceResult {
    device: String,
    ssid: String,
    ok: bool,
    outcome: &'static str,
    ip: Option<String>,
    error: Option<String>,
    attempts: u32,
    elapsed_ms: u64,
}

#[derive(Serialize)]
struct FleetReport {
    ok: bool,
    devices: Vec<DeviceResult>,
    succeeded: usize,
    failed: usize,
}

/// Settings shared by all devices.
#[derive(Clone, Copy)]
struct Settings {
    retries: u32,
    timeout_secs: u64,
    connect_timeout: Duration,
}

pub(crate) async fn run(ctx: &Ctx, args: FleetArgs) -> anyhow::Result<Box<dyn Report>> {
    let specs = load(&args.file)?;
    let settings = Settings { retries: args.retries, timeout_secs: args.timeout, connect_timeout: ctx.connect_timeout };
    let board = Board::new();
    let permits = Rc::new(Semaphore::new(usize::from(args.concurrency)));
    let local = tokio::task::LocalSet::new();
    let devices = local
        .run_until(async {
            let handles: Vec<_> = specs
                .into_iter()
                .map(|spec| {
                    let bar = board.line(&spec.target.to_string());
                    let auth = spec.auth(&ctx.auth);
                    let permits = Rc::clone(&permits);
                    tokio::task::spawn_local(async move {
                        // The semaphore is never closed, so acquiring only waits.
                        let _permit = permits.acquire().await;
                        provision_device(spec, auth, settings, bar).await
                    })
                })
                .collect();
            let mut devices = Vec::with_capacity(handles.len());
            for handle in handles {
                devices.push(handle.await.context("a device task failed")?);
            }
            anyhow::Ok(devices)
        })
        .await?;
    board.clear();
    let succeeded = devices.iter().filter(|d| d.ok).count();
    let failed = devices.len() - succeeded;
    Ok(Box::new(FleetReport { ok: failed == 0, devices, succeeded, failed }))
}

async fn provision_device(spec: DeviceSpec, auth: Auth, settings: Settings, bar: ProgressBar) -> DeviceResult {
    let started = Instant::now();
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        match attempt(&spec, &auth, settings, &bar).await {
            Ok(delivered) => break Ok(delivered),
            Err(err) if exit::classify(&err) == Code::Transport && attempts <= settings.retries => {
                bar.set_message(format!("transport failure, trying again: {err:#}"));
                tokio::time::sleep(backoff(attempts)).await;
            }
            Err(err) => break Err(err),
        }
    };
    let mut device = DeviceResult {
        device: spec.target.to_string(),
        ssid: spec.ssid.clone(),
        ok: false,
        outcome: "connected",
        ip: None,
        error: None,
        attempts,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    match result {
        Ok(delivered) => {
            let verdict = judge(&delivered.outcome, &spec.target, Visibility::Broadcast);
            device.ok = verdict.code == Code::Success;
            device.outcome = verdict.outcome;
            device.error = verdict.reason;
            if let ProvisionOutcome::Connected(info) = &delivered.outcome {
                device.ip = Some(info.ip4_addr.clone());
            }
        }
        Err(err) => {
            device.outcome = match exit::classify(&err) {
                Code::Transport => "transport_error",
                Code::Security => "security_error",
                Code::Usage => "local_error",
                Code::AuthError => "auth_error",
                Code::NetworkNotFound => "network_not_found",
                Code::DeviceFailure | Code::Success => "device_error",
            };
            device.error = Some(format!("{err:#}"));
        }
    }
    let summary = match (&device.ip, &device.error) {
        (Some(ip), _) => format!("connected, {ip}"),
        (None, Some(error)) => format!("{}: {error}", device.outcome),
        (None, None) => device.outcome.to_owned(),
    };
    bar.finish_with_message(summary);
    device
}

async fn attempt(spec: &DeviceSpec, auth: &Auth, settings: Settings, bar: &ProgressBar) -> anyhow::Result<Delivered> {
    bar.set_message("connecting");
    let mut session = session::open(&spec.target, settings.connect_timeout, auth).await?;
    bar.set_message("sending credentials");
    deliver(
        &mut session.client,
        spec.ssid.as_bytes(),
        spec.passphrase.as_bytes(),
        poll_policy(settings.timeout_secs, None),
        |update| match update {
            Update::Sent => bar.set_message("applying"),
            Update::Applied => bar.set_message(format!("connecting to \"{}\"", spec.ssid)),
            Update::AttemptsRemaining(n) => bar.set_message(format!("connecting ({n} attempts remaining)")),
        },
    )
    .await
}

/// 250 ms, 500 ms, 1 s, then 2 s between tries.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.saturating_sub(1).min(3)))
}

impl Report for FleetReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        let rows: Vec<Vec<String>> = self
            .devices
            .iter()
            .map(|d| {
                vec![
                    d.device.clone(),
                    d.ssid.clone(),
                    d.outcome.to_owned(),
                    d.ip.clone().unwrap_or_else(|| "-".into()),
                    d.attempts.to_string(),
                    format!("{} ms", d.elapsed_ms),
                    d.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let align = [Align::Left, Align::Left, Align::Left, Align::Left, Align::Right, Align::Right, Align::Left];
        let header = ["DEVICE", "SSID", "RESULT", "IP", "TRIES", "TIME", "DETAIL"];
        out.write_all(table(&header, &align, &rows).as_bytes())?;
        writeln!(out, "{} succeeded, {} failed", self.succeeded, self.failed)
    }

    fn code(&self) -> Code {
        if self.failed == 0 { Code::Success } else { Code::DeviceFailure }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(split_csv_line("a, b ,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(split_csv_line(r#""a,b", "say ""hi"" ",x"#).unwrap(), ["a,b", r#"say "hi" "#, "x"]);
        assert_eq!(split_csv_line("a,,").unwrap(), ["a", "", ""]);
        assert!(split_csv_line(r#""open"#).is_err());
        assert!(split_csv_line(r#""a"b"#).is_err());
    }

    #[test]
    fn csv_files_use_their_header() {
        let text = "# fleet\nssid,device,passphrase,security\nhome,127.0.0.1:1,\"p,w\",2\n\ncafe,127.0.0.1:2,,\n";
        let specs = parse_csv(text, "f.csv").unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].target.to_string(), "127.0.0.1:1");
        assert_eq!(specs[0].passphrase.as_str(), "p,w");
        assert_eq!(specs[0].security, Some(2));
        assert_eq!(specs[1].passphrase.as_str(), "");
        assert_eq!(specs[1].security, None);
        let err = parse_csv("device,ssid,password\n", "f.csv").err().unwrap();
        assert!(err.to_string().contains("unknown column \"password\""));
        let err = parse_csv("device,ssid\nx:1,home,extra-secret\n", "f.csv").err().unwrap();
        assert!(err.to_string().contains("line 2") && !err.to_string().contains("extra-secret"));
    }

    #[test]
    fn backoff_grows_and_stops_growing() {
        let waits: Vec<u64> = (1..=6).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 2000, 2000]);
    }
}
