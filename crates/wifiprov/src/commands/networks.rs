//! `networks list|add|remove|move|connect`: a wifiprov device's saved networks (`prov-networks`).

use std::io::{self, Write};

use anyhow::Context as _;
use serde::Serialize;
use wifiprov_proto::messages::networks::{
    AddRequest, ConnectFailure, Connected, LastAttempt, NetStatus, Request, Response,
};
use zeroize::Zeroizing;

use crate::commands::Ctx;
use crate::exit::{Code, classified};
use crate::flags::NetworksAction;
use crate::output::{Align, Report, auth_text, bssid_text, ssid_text, table, to_json};
use crate::progress::Spinner;
use crate::secrets::SecretSource;

#[derive(Serialize)]
struct ListReport {
    ok: bool,
    device: String,
    security: u8,
    capacity: u32,
    networks: Vec<ListedNetwork>,
}

#[derive(Serialize)]
struct ListedNetwork {
    ssid: String,
    priority: Option<u32>,
    saved: bool,
    connected: bool,
    rssi: Option<i32>,
    bssid: Option<String>,
    auth: String,
    hidden: bool,
    /// `connected`, a failure reason, or null when the device has not tried it since it started.
    last_result: Option<&'static str>,
}

/// The outcome of add, remove, move or connect.
#[derive(Serialize)]
struct ChangeReport {
    ok: bool,
    device: String,
    security: u8,
    action: &'static str,
    ssid: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bssid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip)]
    code: Code,
}

pub(crate) async fn run(ctx: &Ctx, action: NetworksAction) -> anyhow::Result<Box<dyn Report>> {
    let target = ctx.target()?;
    // The passphrase is resolved before connecting, so a prompt does not hold a session open.
    let request = request(&action).await?;
    let mut session = ctx.open().await?;
    if !session.info.app_info.iter().any(|app| app.label == wifiprov_proto::messages::networks::APP_LABEL) {
        return Err(classified(
            Code::DeviceFailure,
            format!(
                "{target} does not keep saved networks (its proto-ver has no \"networks\" app; ESP-IDF devices keep one network: use `provision`)"
            ),
        ));
    }
    let joins = matches!(request, Request::Connect { .. } | Request::Add(AddRequest { connect: true, .. }));
    let spinner = joins.then(|| Spinner::start("the device is joining the network"));
    let response = session.client.networks(&request).await.context("the prov-networks request failed");
    if let Some(spinner) = spinner {
        spinner.clear();
    }
    let response = response?;
    let (device, security) = (target.to_string(), session.choice.scheme);
    if let Response::List { status, networks, capacity } = response {
        if !status.is_success() {
            return Err(classified(Code::DeviceFailure, format!("the device could not list: {}", status_text(status))));
        }
        let networks = networks
            .into_iter()
            .map(|n| ListedNetwork {
                ssid: ssid_text(&n.ssid),
                priority: n.priority,
                saved: n.saved,
                connected: n.connected,
                rssi: n.rssi,
                bssid: n.bssid.and_then(|b| bssid_text(&b)),
                auth: auth_text(n.auth_mode),
                hidden: n.hidden,
                last_result: n.last_attempt.map(|a| match a {
                    LastAttempt::Connected => "connected",
                    LastAttempt::Failed(failure) => failure_name(failure),
                }),
            })
            .collect();
        return Ok(Box::new(ListReport { ok: true, device, security, capacity, networks }));
    }
    Ok(Box::new(change_report(device, security, &action, response)))
}

async fn request(action: &NetworksAction) -> anyhow::Result<Request> {
    Ok(match action {
        NetworksAction::List { scan } => Request::List { scan: *scan },
        NetworksAction::Add(args) => {
            let mut source = SecretSource::new(
                "Wi-Fi passphrase",
                "--passphrase, --passphrase-file or WIFIPROV_PASSPHRASE",
                Some("WIFIPROV_PASSPHRASE"),
            );
            source.value = args.passphrase.clone().map(Zeroizing::new);
            source.file = args.passphrase_file.clone();
            let passphrase = source
                .resolve(&format!("Passphrase for \"{}\" (empty for an open network): ", args.ssid))
                .await?
                .unwrap_or_default();
            let mut add = AddRequest::new(args.ssid.as_bytes(), passphrase.as_bytes());
            add.priority = args.priority;
            add.hidden = args.hidden;
            add.connect = !args.no_connect;
            Request::Add(add)
        }
        NetworksAction::Remove { ssid } => Request::Remove { ssid: ssid.as_bytes().to_vec() },
        NetworksAction::Move { ssid, to } => Request::Move { ssid: ssid.as_bytes().to_vec(), to: *to },
        NetworksAction::Connect { ssid } => Request::Connect { ssid: ssid.as_bytes().to_vec() },
    })
}

fn change_report(device: String, security: u8, action: &NetworksAction, response: Response) -> ChangeReport {
    let (name, ssid) = match action {
        NetworksAction::Add(args) => ("add", args.ssid.clone()),
        NetworksAction::Remove { ssid } => ("remove", ssid.clone()),
        NetworksAction::Move { ssid, .. } => ("move", ssid.clone()),
        NetworksAction::Connect { ssid } => ("connect", ssid.clone()),
        NetworksAction::List { .. } => ("list", String::new()),
    };
    let status = response.status();
    let mut report = ChangeReport {
        ok: status.is_success(),
        device,
        security,
        action: name,
        ssid,
        status: status_name(status),
        priority: None,
        updated: None,
        from: None,
        to: None,
        ip: None,
        bssid: None,
        channel: None,
        reason: None,
        code: code_of(status, None),
    };
    let link = |report: &mut ChangeReport, link: Option<Connected>| {
        if let Some(link) = link {
            report.ip = Some(link.ip4.to_string());
            report.bssid = bssid_text(&link.bssid);
            report.channel = Some(link.channel);
        }
    };
    match response {
        Response::Add { priority, updated, failure, connected, .. } => {
            if status.is_success() {
                report.priority = Some(priority);
                report.updated = Some(updated);
            }
            link(&mut report, connected);
            report.code = code_of(status, failure);
            report.reason = reason(status, failure);
        }
        Response::Connect { failure, connected, .. } => {
            link(&mut report, connected);
            report.code = code_of(status, failure);
            report.reason = reason(status, failure);
        }
        Response::Move { from, .. } => {
            if let NetworksAction::Move { to, .. } = action
                && status.is_success()
            {
                report.from = Some(from);
                report.to = Some(*to);
            }
            report.reason = reason(status, None);
        }
        Response::Remove { .. } | Response::List { .. } => report.reason = reason(status, None),
    }
    report
}

fn code_of(status: NetStatus, failure: Option<ConnectFailure>) -> Code {
    match (status, failure) {
        (NetStatus::Success, _) => Code::Success,
        (NetStatus::NotFound, _) | (NetStatus::ConnectFailed, Some(ConnectFailure::NotFound)) => Code::NetworkNotFound,
        (NetStatus::ConnectFailed, Some(ConnectFailure::Auth)) => Code::AuthError,
        _ => Code::DeviceFailure,
    }
}

fn reason(status: NetStatus, failure: Option<ConnectFailure>) -> Option<String> {
    match (status, failure) {
        (NetStatus::Success, _) => None,
        (NetStatus::ConnectFailed, Some(failure)) => {
            Some(format!("could not join: {}; nothing was saved", failure.describe()))
        }
        (status, _) => Some(status_text(status).to_owned()),
    }
}

fn status_name(status: NetStatus) -> &'static str {
    match status {
        NetStatus::Success => "success",
        NetStatus::Full => "full",
        NetStatus::OutOfRange => "out_of_range",
        NetStatus::NotFound => "not_found",
        NetStatus::InvalidArgument => "invalid_argument",
        NetStatus::ConnectFailed => "connect_failed",
        NetStatus::Busy => "busy",
        NetStatus::InternalError => "internal_error",
        NetStatus::Other(_) => "unknown",
    }
}

fn status_text(status: NetStatus) -> &'static str {
    match status {
        NetStatus::Success => "done",
        NetStatus::Full => "the device's list of saved networks is full: remove one first",
        NetStatus::OutOfRange => "that priority is outside the list (see `networks list`)",
        NetStatus::NotFound => "no saved network has that name",
        NetStatus::InvalidArgument => "the device refused the values (SSID 1-32 bytes, passphrase 8-63 characters)",
        NetStatus::ConnectFailed => "the device could not join the network; nothing was saved",
        NetStatus::Busy => "the device is busy joining another network; try again",
        NetStatus::InternalError => "the device failed to carry it out (storage?)",
        NetStatus::Other(_) => "the device answered with a status this wifiprov does not know",
    }
}

fn failure_name(failure: ConnectFailure) -> &'static str {
    match failure {
        ConnectFailure::Auth => "auth_error",
        ConnectFailure::NotFound => "network_not_found",
        ConnectFailure::Timeout => "timeout",
        ConnectFailure::Other => "failed",
    }
}

impl Report for ListReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        let saved = self.networks.iter().filter(|n| n.saved).count();
        writeln!(out, "{saved} of {} saved networks", self.capacity)?;
        if self.networks.is_empty() {
            return Ok(());
        }
        let rows: Vec<Vec<String>> = self
            .networks
            .iter()
            .map(|n| {
                vec![
                    n.priority.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                    n.ssid.clone(),
                    if n.connected { "connected".to_owned() } else { String::new() },
                    n.rssi.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                    n.auth.clone(),
                    n.last_result.unwrap_or("-").to_owned(),
                ]
            })
            .collect();
        let header = ["PRIO", "SSID", "STATE", "RSSI", "SECURITY", "LAST"];
        let align = [Align::Right, Align::Left, Align::Left, Align::Right, Align::Left, Align::Left];
        out.write_all(table(&header, &align, &rows).as_bytes())
    }
}

impl Report for ChangeReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(reason) = &self.reason {
            return writeln!(out, "{} \"{}\": {reason}", self.action, self.ssid);
        }
        match self.action {
            "add" => {
                let verb = if self.updated == Some(true) { "updated" } else { "saved" };
                writeln!(out, "{verb} \"{}\" at priority {}", self.ssid, self.priority.unwrap_or_default())?;
            }
            "remove" => writeln!(out, "removed \"{}\"", self.ssid)?,
            "move" => writeln!(
                out,
                "moved \"{}\" from priority {} to {}",
                self.ssid,
                self.from.unwrap_or_default(),
                self.to.unwrap_or_default()
            )?,
            _ => writeln!(out, "connected to \"{}\"", self.ssid)?,
        }
        if let Some(ip) = &self.ip {
            writeln!(out, "  ip address:  {ip}")?;
        }
        Ok(())
    }

    fn code(&self) -> Code {
        self.code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_documented_exit_codes() {
        assert_eq!(code_of(NetStatus::Success, None), Code::Success);
        assert_eq!(code_of(NetStatus::NotFound, None), Code::NetworkNotFound);
        assert_eq!(code_of(NetStatus::ConnectFailed, Some(ConnectFailure::Auth)), Code::AuthError);
        assert_eq!(code_of(NetStatus::ConnectFailed, Some(ConnectFailure::NotFound)), Code::NetworkNotFound);
        assert_eq!(code_of(NetStatus::ConnectFailed, Some(ConnectFailure::Timeout)), Code::DeviceFailure);
        for status in [NetStatus::Full, NetStatus::OutOfRange, NetStatus::Busy, NetStatus::InvalidArgument] {
            assert_eq!(code_of(status, None), Code::DeviceFailure);
        }
    }
}
