//! `provision`: SetConfig, ApplyConfig, then poll GetStatus until the device connects or gives up.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use wifiprov_client::{Client, PollPolicy, ProvisionOutcome};
use wifiprov_proto::messages::AuthMode;
use wifiprov_proto::messages::config::{FailReason, StationState};
use wifiprov_proto::messages::scan::ScanEntry;
use wifiprov_proto::version::CAP_WIFI_SCAN;
use zeroize::Zeroizing;

use crate::commands::Ctx;
use crate::commands::scan::{Listing, Network, networks_table, scan};
use crate::exit::{Code, classified};
use crate::flags::ProvisionArgs;
use crate::output::{Report, auth_text, bssid_text, note, ssid_text, to_json};
use crate::progress::Spinner;
use crate::secrets::{Secret, SecretSource};
use crate::session::{Link, Target};

/// Longest passphrase the protocol carries (63 characters, or a 64-hex-digit PSK).
const MAX_PASSPHRASE: usize = 64;
/// SSIDs are 1 to 32 bytes.
const MAX_SSID: usize = 32;

/// What happened while waiting, for progress display.
pub(crate) enum Update {
    /// SetConfig accepted.
    Sent,
    /// ApplyConfig accepted; the device is connecting.
    Applied,
    /// A connection attempt failed and the device will retry.
    AttemptsRemaining(u32),
}

/// The final state of one provisioning, with the attempts-remaining values seen on the way.
pub(crate) struct Delivered {
    pub(crate) outcome: ProvisionOutcome,
    pub(crate) attempts_remaining: Vec<u32>,
}

/// Sends the credentials, applies them, and polls with the client's adaptive interval until a final state.
pub(crate) async fn deliver(
    client: &mut Client<Link>,
    ssid: &[u8],
    passphrase: &[u8],
    policy: PollPolicy,
    mut update: impl FnMut(Update),
) -> anyhow::Result<Delivered> {
    client.set_config(ssid, passphrase).await.context("the device refused the credentials (SetConfig)")?;
    update(Update::Sent);
    client.apply_config().await.context("the device refused to apply the credentials (ApplyConfig)")?;
    update(Update::Applied);
    let mut attempts_remaining: Vec<u32> = Vec::new();
    let outcome = client
        .wait_for_connection(policy, |report| {
            if let Some(StationState::Connecting { attempts_remaining: Some(n) }) = report.state
                && attempts_remaining.last() != Some(&n)
            {
                attempts_remaining.push(n);
                update(Update::AttemptsRemaining(n));
            }
        })
        .await
        .context("waiting for the connection result failed")?;
    Ok(Delivered { outcome, attempts_remaining })
}

/// The client's adaptive polling with `timeout_secs` as deadline, or a fixed interval of `interval_ms`.
pub(crate) fn poll_policy(timeout_secs: u64, interval_ms: Option<u64>) -> PollPolicy {
    let mut policy = PollPolicy { deadline: Duration::from_secs(timeout_secs.max(1)), ..PollPolicy::default() };
    if let Some(ms) = interval_ms {
        policy.initial = Duration::from_millis(ms);
        policy.max = policy.initial;
    }
    policy
}

/// How a final state reads: its JSON name, exit code, reason and advice.
pub(crate) struct Verdict {
    pub(crate) outcome: &'static str,
    pub(crate) code: Code,
    pub(crate) reason: Option<String>,
    pub(crate) hint: Option<String>,
}

/// Whether the network broadcasts its SSID, as the person said (`--hidden`); only the advice depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// Appears in scans.
    Broadcast,
    /// Never appears in scans.
    Hidden,
}

/// Judges a failure reason (shared with `status` and `fleet`).
pub(crate) fn judge_failure(reason: FailReason, target: &Target, visibility: Visibility) -> Verdict {
    let reset = format!("run `wifiprov {} reset`, then provision again", target.option());
    match reason {
        FailReason::AuthError => Verdict {
            outcome: "auth_error",
            code: Code::AuthError,
            reason: Some("wrong passphrase: the access point refused it".into()),
            hint: Some(format!("check the passphrase, then {reset}")),
        },
        FailReason::NetworkNotFound => Verdict {
            outcome: "network_not_found",
            code: Code::NetworkNotFound,
            reason: Some("network not found: the device cannot see it".into()),
            hint: Some(if visibility == Visibility::Hidden {
                format!(
                    "check the SSID (hidden networks never show in scans) and that the access point is in range, then {reset}"
                )
            } else {
                format!(
                    "check the SSID (see `wifiprov {} scan`) and that the access point is in range, then {reset}",
                    target.option()
                )
            }),
        },
        FailReason::Other(n) => Verdict {
            outcome: "failed",
            code: Code::DeviceFailure,
            reason: Some(format!("the connection failed (device reason {n})")),
            hint: Some(reset),
        },
    }
}

/// Judges the outcome of a provisioning.
pub(crate) fn judge(outcome: &ProvisionOutcome, target: &Target, visibility: Visibility) -> Verdict {
    match outcome {
        ProvisionOutcome::Connected(_) => {
            Verdict { outcome: "connected", code: Code::Success, reason: None, hint: None }
        }
        ProvisionOutcome::Failed(reason) => judge_failure(*reason, target, visibility),
        ProvisionOutcome::Disconnected => Verdict {
            outcome: "disconnected",
            code: Code::DeviceFailure,
            reason: Some("the device reports no connection and no attempt".into()),
            hint: Some(format!("check `wifiprov {} status`, then provision again", target.option())),
        },
    }
}

#[derive(Serialize)]
struct ProvisionReport {
    ok: bool,
    device: String,
    security: u8,
    ssid: String,
    outcome: &'static str,
    ip: Option<String>,
    bssid: Option<String>,
    channel: Option<i32>,
    auth: Option<String>,
    reason: Option<String>,
    hint: Option<String>,
    attempts_remaining: Vec<u32>,
    elapsed_ms: u64,
    #[serde(skip)]
    code: Code,
}

pub(crate) async fn run(ctx: &Ctx, args: ProvisionArgs) -> anyhow::Result<Box<dyn Report>> {
    let started = Instant::now();
    let target = ctx.target()?;
    let visibility = if args.hidden { Visibility::Hidden } else { Visibility::Broadcast };
    let mut passphrase_source = SecretSource::new(
        "Wi-Fi passphrase",
        "--passphrase, --passphrase-file or WIFIPROV_PASSPHRASE",
        Some("WIFIPROV_PASSPHRASE"),
    );
    passphrase_source.value = args.passphrase.map(Zeroizing::new);
    passphrase_source.file = args.passphrase_file;

    let mut session = ctx.open().await?;
    let (ssid, known_auth) = match args.ssid {
        Some(ssid) => (ssid.into_bytes(), None),
        None => {
            if session.info.prov.as_ref().is_some_and(|p| !p.has_cap(CAP_WIFI_SCAN)) {
                return Err(classified(Code::Usage, "the device cannot scan (no wifi_scan capability): give --ssid"));
            }
            choose_network(&mut session.client).await?
        }
    };
    if ssid.is_empty() || ssid.len() > MAX_SSID {
        return Err(classified(Code::Usage, format!("an SSID has 1 to {MAX_SSID} bytes, not {}", ssid.len())));
    }
    let shown = ssid_text(&ssid);
    let passphrase = passphrase(&passphrase_source, &shown, known_auth).await?;
    if passphrase.len() > MAX_PASSPHRASE {
        return Err(classified(Code::Usage, format!("a Wi-Fi passphrase has at most {MAX_PASSPHRASE} characters")));
    }

    let spinner = Spinner::start(format!("sending credentials for \"{shown}\""));
    let delivered = deliver(
        &mut session.client,
        &ssid,
        passphrase.as_bytes(),
        poll_policy(args.timeout, args.poll_interval),
        |update| match update {
            Update::Sent => spinner.set("applying"),
            Update::Applied => spinner.set(format!("device is connecting to \"{shown}\"")),
            Update::AttemptsRemaining(n) => {
                let plural = if n == 1 { "" } else { "s" };
                spinner.note(&format!("connection attempt failed: {n} attempt{plural} remaining"));
                spinner.set(format!("device is connecting to \"{shown}\" ({n} attempt{plural} remaining)"));
            }
        },
    )
    .await?;
    drop(spinner);

    let verdict = judge(&delivered.outcome, &target, visibility);
    let mut report = ProvisionReport {
        ok: verdict.code == Code::Success,
        device: target.to_string(),
        security: session.choice.scheme,
        ssid: shown,
        outcome: verdict.outcome,
        ip: None,
        bssid: None,
        channel: None,
        auth: None,
        reason: verdict.reason,
        hint: verdict.hint,
        attempts_remaining: delivered.attempts_remaining,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        code: verdict.code,
    };
    if let ProvisionOutcome::Connected(info) = &delivered.outcome {
        report.ip = Some(info.ip4_addr.clone());
        report.bssid = bssid_text(&info.bssid);
        report.channel = Some(info.channel);
        report.auth = Some(auth_text(info.auth_mode));
        if !info.ssid.is_empty() {
            report.ssid = ssid_text(&info.ssid);
        }
    }
    Ok(Box::new(report))
}

/// Scans, shows a numbered list on stderr and reads the choice (a number or an SSID) from one line of stdin.
async fn choose_network(client: &mut Client<Link>) -> anyhow::Result<(Vec<u8>, Option<AuthMode>)> {
    let entries: Vec<ScanEntry> = scan(client).await?;
    if entries.is_empty() {
        return Err(classified(
            Code::DeviceFailure,
            "the device found no networks: give --ssid (with --hidden for a hidden network)",
        ));
    }
    let networks: Vec<Network> = entries.iter().map(Network::from).collect();
    note(format_args!("{}", networks_table(&networks, Listing::Numbered).trim_end()));
    let line = read_line(format!("Choose a network [1-{}] or type an SSID: ", entries.len())).await?;
    let answer = line.trim();
    if answer.is_empty() {
        return Err(classified(Code::Usage, "no network chosen"));
    }
    if let Ok(n) = answer.parse::<usize>() {
        return match n.checked_sub(1).and_then(|i| entries.get(i)) {
            Some(entry) => Ok((entry.ssid.clone(), Some(entry.auth))),
            None => Err(classified(Code::Usage, format!("no network number {n}: choose 1 to {}", entries.len()))),
        };
    }
    match entries.iter().find(|e| e.ssid == answer.as_bytes()) {
        Some(entry) => Ok((entry.ssid.clone(), Some(entry.auth))),
        // Not in the list: a hidden network, typed by name.
        None => Ok((answer.as_bytes().to_vec(), None)),
    }
}

/// Prints `prompt` on stderr and reads one line of stdin (a terminal or a pipe).
async fn read_line(prompt: String) -> anyhow::Result<String> {
    let _ = write!(io::stderr().lock(), "{prompt}");
    let _ = io::stderr().flush();
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .context("the input task failed")?
    .context("cannot read the choice from stdin")?;
    if !line.ends_with('\n') {
        // EOF without a newline: end the prompt line ourselves.
        let _ = writeln!(io::stderr().lock());
    }
    Ok(line)
}

/// The passphrase: given, or asked for; an open network needs none.
async fn passphrase(source: &SecretSource, ssid: &str, auth: Option<AuthMode>) -> anyhow::Result<Secret> {
    match auth {
        Some(AuthMode::Open) if !source.is_given() => Ok(Secret::default()),
        Some(_) => source.require(&format!("Passphrase for \"{ssid}\": ")).await,
        None => Ok(source
            .resolve(&format!("Passphrase for \"{ssid}\" (empty for an open network): "))
            .await?
            .unwrap_or_default()),
    }
}

impl Report for ProvisionReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.ok {
            writeln!(out, "connected to \"{}\"", self.ssid)?;
            writeln!(out, "  ip address:  {}", self.ip.as_deref().unwrap_or("-"))?;
            writeln!(out, "  bssid:       {}", self.bssid.as_deref().unwrap_or("-"))?;
            writeln!(out, "  channel:     {}", self.channel.map_or_else(|| "-".to_owned(), |c| c.to_string()))?;
            writeln!(out, "  security:    {}", self.auth.as_deref().unwrap_or("-"))?;
            return Ok(());
        }
        writeln!(out, "not connected to \"{}\": {}", self.ssid, self.reason.as_deref().unwrap_or(self.outcome))?;
        if let Some(hint) = &self.hint {
            writeln!(out, "next: {hint}")?;
        }
        Ok(())
    }

    fn code(&self) -> Code {
        self.code
    }
}
