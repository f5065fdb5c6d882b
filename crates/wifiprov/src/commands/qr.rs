//! `qr`: the QR payload of ESP's provisioning apps, and its rendering for a terminal.

use std::io::{self, Write};

use serde::Serialize;
use wifiprov_proto::qr::{QrPayload, QrTransport};

use crate::commands::Ctx;
use crate::exit::{Code, classified};
use crate::flags::{QrArgs, QrTransportArg};
use crate::output::{Report, to_json};
use crate::progress::stderr_is_terminal;
use crate::secrets::Prompt;

/// The report carries the payload, which holds the PoP or password: that is the purpose of the command.
#[derive(Serialize)]
struct QrReport {
    ok: bool,
    payload: String,
    #[serde(skip)]
    drawing: String,
}

pub(crate) async fn run(ctx: &Ctx, args: QrArgs) -> anyhow::Result<Box<dyn Report>> {
    if args.name.is_empty() {
        return Err(classified(Code::Usage, "the device name must not be empty"));
    }
    // The secret comes from --pop (any scheme), or for security 2 from the password options; never prompted.
    let mut pop_source = ctx.auth.pop.clone();
    pop_source.prompt = Prompt::Never;
    let mut secret = pop_source.resolve("").await?;
    if secret.is_none() && args.username.is_some() {
        let mut password_source = ctx.auth.password.clone();
        password_source.prompt = Prompt::Never;
        secret = password_source.resolve("").await?;
    }
    let transport = match args.transport {
        QrTransportArg::Softap => QrTransport::Softap,
        QrTransportArg::Ble => QrTransport::Ble,
    };
    let payload =
        QrPayload::new(&args.name, args.username.as_deref(), secret.as_ref().map(|s| s.as_str()), transport).to_json();
    let code = qrcode::QrCode::new(payload.as_bytes())
        .map_err(|e| classified(Code::Usage, format!("the payload does not fit in a QR code: {e}")))?;
    let drawing = code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build();
    if ctx.json && stderr_is_terminal() {
        // With --json the drawing is for the person at the terminal, so it goes to stderr.
        crate::output::note(format_args!("{drawing}"));
    }
    Ok(Box::new(QrReport { ok: true, payload, drawing }))
}

impl Report for QrReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", self.payload)?;
        writeln!(out, "{}", self.drawing)
    }
}
