//! `caps`: proto-ver, parsed.

use std::io::{self, Write};

use serde::Serialize;

use crate::commands::Ctx;
use crate::output::{Report, to_json};
use crate::session;

#[derive(Serialize)]
struct CapsReport {
    ok: bool,
    device: String,
    prov_version: Option<String>,
    sec_ver: Option<u64>,
    sec_patch_ver: Option<u64>,
    /// The scheme wifiprov will use (`--security`, else chosen from proto-ver).
    security: Option<u8>,
    patch_level: u64,
    capabilities: Vec<String>,
    apps: Vec<App>,
}

#[derive(Serialize)]
struct App {
    label: String,
    version: String,
    capabilities: Vec<String>,
}

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Box<dyn Report>> {
    let target = ctx.target()?;
    let (_client, info) = ctx.connect().await?;
    let security = session::choose(ctx.auth.security, &info).ok().map(|c| c.scheme);
    let prov = info.prov.clone();
    Ok(Box::new(CapsReport {
        ok: true,
        device: target.to_string(),
        prov_version: prov.as_ref().map(|p| p.ver.clone()),
        sec_ver: prov.as_ref().and_then(|p| p.sec_ver),
        sec_patch_ver: prov.as_ref().and_then(|p| p.sec_patch_ver),
        security,
        patch_level: prov.as_ref().and_then(|p| p.sec_patch_ver).unwrap_or(0),
        capabilities: prov.map(|p| p.cap).unwrap_or_default(),
        apps: info.app_info.into_iter().map(|a| App { label: a.label, version: a.ver, capabilities: a.cap }).collect(),
    }))
}

impl Report for CapsReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "device:        {}", self.device)?;
        writeln!(out, "protocol:      {}", self.prov_version.as_deref().unwrap_or("unknown"))?;
        let security = match (self.security, self.sec_ver) {
            (Some(s), Some(_)) => format!("{s}"),
            (Some(s), None) => format!("{s} (not advertised by the device)"),
            (None, Some(v)) => format!("{v} (not supported by wifiprov)"),
            (None, None) => "unknown".to_owned(),
        };
        writeln!(out, "security:      {security}")?;
        let patch = match self.sec_patch_ver {
            Some(p) => p.to_string(),
            None => "0 (not advertised)".to_owned(),
        };
        writeln!(out, "patch level:   {patch}")?;
        let caps = if self.capabilities.is_empty() { "none".to_owned() } else { self.capabilities.join(", ") };
        writeln!(out, "capabilities:  {caps}")?;
        for app in &self.apps {
            let caps =
                if app.capabilities.is_empty() { String::new() } else { format!(" [{}]", app.capabilities.join(", ")) };
            writeln!(out, "app {}:  {}{caps}", app.label, app.version)?;
        }
        Ok(())
    }
}
