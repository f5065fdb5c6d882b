//! `reset` and `reprov` (`prov-ctrl`).

use std::io::{self, Write};

use anyhow::Context as _;
use serde::Serialize;

use crate::commands::Ctx;
use crate::output::{Report, to_json};

/// Which control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Forget a failed attempt.
    Reset,
    /// Accept new credentials after success.
    Reprov,
}

#[derive(Serialize)]
struct CtrlReport {
    ok: bool,
    device: String,
    security: u8,
    action: &'static str,
}

pub(crate) async fn run(ctx: &Ctx, action: Action) -> anyhow::Result<Box<dyn Report>> {
    let target = ctx.target()?;
    let mut session = ctx.open().await?;
    let name = match action {
        Action::Reset => {
            session.client.reset().await.context(
                "the device refused the reset (it resets only after a failed attempt, while provisioning runs)",
            )?;
            "reset"
        }
        Action::Reprov => {
            session.client.reprov().await.context(
                "the device refused to reprovision (its provisioning service must still be running after success)",
            )?;
            "reprov"
        }
    };
    Ok(Box::new(CtrlReport { ok: true, device: target.to_string(), security: session.choice.scheme, action: name }))
}

impl Report for CtrlReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        match self.action {
            "reset" => writeln!(out, "reset: the device is ready for new credentials"),
            _ => writeln!(out, "reprov: the device accepts new credentials"),
        }
    }
}
