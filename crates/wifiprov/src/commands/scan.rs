//! `scan`: the device's view of nearby networks, strongest first.

use std::io::{self, Write};

use anyhow::Context as _;
use serde::Serialize;
use wifiprov_client::Client;
use wifiprov_proto::messages::scan::ScanEntry;

use crate::commands::Ctx;
use crate::output::{Align, Report, auth_text, bssid_text, ssid_text, table, to_json};
use crate::progress::Spinner;
use crate::session::Link;

/// Entries per `prov-scan` result request over HTTP (esp_prov uses the same).
const HTTP_PAGE: u32 = 100;
/// Entries per result request over BLE, as esp_prov: a page must fit one attribute value (ESP's Bluedroid
/// build holds 257 bytes without security 2).
const BLE_PAGE: u32 = 4;

#[derive(Serialize)]
struct ScanReport {
    ok: bool,
    device: String,
    security: u8,
    networks: Vec<Network>,
}

/// One network, as printed.
#[derive(Serialize)]
pub(crate) struct Network {
    ssid: String,
    bssid: Option<String>,
    channel: u32,
    rssi: i32,
    auth: String,
}

impl From<&ScanEntry> for Network {
    fn from(e: &ScanEntry) -> Self {
        Self {
            ssid: ssid_text(&e.ssid),
            bssid: bssid_text(&e.bssid),
            channel: e.channel,
            rssi: e.rssi,
            auth: auth_text(e.auth),
        }
    }
}

/// Runs a scan on the device and returns its results, strongest first (ties keep the device's order).
pub(crate) async fn scan(client: &mut Client<Link>) -> anyhow::Result<Vec<ScanEntry>> {
    let spinner = Spinner::start("scanning");
    let page = match client.transport_mut() {
        Link::Http(_) => HTTP_PAGE,
        Link::Ble(_) => BLE_PAGE,
    };
    let mut entries = client.scan(page).await.context("the scan failed")?;
    spinner.clear();
    entries.sort_by_key(|e| std::cmp::Reverse(e.rssi));
    Ok(entries)
}

/// Whether a network table numbers its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    /// No numbers.
    Plain,
    /// Numbered from 1, to choose from.
    Numbered,
}

/// The networks as a table.
pub(crate) fn networks_table(networks: &[Network], listing: Listing) -> String {
    let numbered = listing == Listing::Numbered;
    let rows: Vec<Vec<String>> = networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut row = vec![
                n.ssid.clone(),
                n.bssid.clone().unwrap_or_else(|| "-".into()),
                n.channel.to_string(),
                n.rssi.to_string(),
                n.auth.clone(),
            ];
            if numbered {
                row.insert(0, format!("{}", i + 1));
            }
            row
        })
        .collect();
    let mut header = vec!["SSID", "BSSID", "CH", "RSSI", "SECURITY"];
    let mut align = vec![Align::Left, Align::Left, Align::Right, Align::Right, Align::Left];
    if numbered {
        header.insert(0, "#");
        align.insert(0, Align::Right);
    }
    table(&header, &align, &rows)
}

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Box<dyn Report>> {
    let mut session = ctx.open().await?;
    let entries = scan(&mut session.client).await?;
    Ok(Box::new(ScanReport {
        ok: true,
        device: ctx.target()?.to_string(),
        security: session.choice.scheme,
        networks: entries.iter().map(Network::from).collect(),
    }))
}

impl Report for ScanReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.networks.is_empty() {
            return writeln!(out, "no networks found");
        }
        out.write_all(networks_table(&self.networks, Listing::Plain).as_bytes())
    }
}
