//! `status`: the device's station state (GetStatus).

use std::io::{self, Write};

use anyhow::Context as _;
use serde::Serialize;
use wifiprov_proto::messages::config::StationState;

use crate::commands::Ctx;
use crate::commands::provision::{Visibility, judge_failure};
use crate::exit::{Code, classified};
use crate::output::{Report, auth_text, bssid_text, ssid_text, to_json};

#[derive(Serialize)]
struct StatusReport {
    ok: bool,
    device: String,
    security: u8,
    state: &'static str,
    ip: Option<String>,
    ssid: Option<String>,
    bssid: Option<String>,
    channel: Option<i32>,
    auth: Option<String>,
    attempts_remaining: Option<u32>,
    reason: Option<String>,
    hint: Option<String>,
    #[serde(skip)]
    code: Code,
}

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Box<dyn Report>> {
    let target = ctx.target()?;
    let mut session = ctx.open().await?;
    let status = session.client.status().await.context("GetStatus failed")?;
    if !status.status.is_success() {
        return Err(classified(Code::DeviceFailure, format!("the device answered {:?} to GetStatus", status.status)));
    }
    let mut report = StatusReport {
        ok: true,
        device: target.to_string(),
        security: session.choice.scheme,
        state: "connected",
        ip: None,
        ssid: None,
        bssid: None,
        channel: None,
        auth: None,
        attempts_remaining: None,
        reason: None,
        hint: None,
        code: Code::Success,
    };
    match status.state {
        // Connected without details (old firmware).
        None => {}
        Some(StationState::Connected(info)) => {
            report.ip = Some(info.ip4_addr);
            report.ssid = Some(ssid_text(&info.ssid));
            report.bssid = bssid_text(&info.bssid);
            report.channel = Some(info.channel);
            report.auth = Some(auth_text(info.auth_mode));
        }
        Some(StationState::Connecting { attempts_remaining }) => {
            report.state = "connecting";
            report.attempts_remaining = attempts_remaining;
        }
        Some(StationState::Disconnected) => report.state = "disconnected",
        Some(StationState::Failed(reason)) => {
            let verdict = judge_failure(reason, &target, Visibility::Broadcast);
            report.ok = false;
            report.state = "failed";
            report.reason = verdict.reason;
            report.hint = verdict.hint;
            report.code = verdict.code;
        }
    }
    Ok(Box::new(report))
}

impl Report for StatusReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        match self.state {
            "connected" => {
                match &self.ssid {
                    Some(ssid) => writeln!(out, "connected to \"{ssid}\"")?,
                    None => writeln!(out, "connected")?,
                }
                if let Some(ip) = &self.ip {
                    writeln!(out, "  ip address:  {ip}")?;
                }
                if let Some(bssid) = &self.bssid {
                    writeln!(out, "  bssid:       {bssid}")?;
                }
                if let Some(channel) = self.channel {
                    writeln!(out, "  channel:     {channel}")?;
                }
                if let Some(auth) = &self.auth {
                    writeln!(out, "  security:    {auth}")?;
                }
                Ok(())
            }
            "connecting" => match self.attempts_remaining {
                Some(n) => writeln!(out, "connecting ({n} attempts remaining)"),
                None => writeln!(out, "connecting"),
            },
            "failed" => {
                writeln!(out, "failed: {}", self.reason.as_deref().unwrap_or("unknown reason"))?;
                if let Some(hint) = &self.hint {
                    writeln!(out, "next: {hint}")?;
                }
                Ok(())
            }
            other => writeln!(out, "{other}"),
        }
    }

    fn code(&self) -> Code {
        self.code
    }
}
