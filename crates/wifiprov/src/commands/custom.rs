//! `custom`: one request to an application endpoint over the secure session.

use std::io::{self, Write};

use anyhow::Context as _;
use serde::Serialize;

use crate::commands::Ctx;
use crate::exit::{Code, classified};
use crate::flags::CustomArgs;
use crate::output::{Report, to_json};

#[derive(Serialize)]
struct CustomReport {
    ok: bool,
    device: String,
    security: u8,
    endpoint: String,
    /// The reply as text, when it is UTF-8.
    reply: Option<String>,
    reply_hex: String,
    #[serde(skip)]
    raw: Vec<u8>,
    #[serde(skip)]
    hex: bool,
}

pub(crate) async fn run(ctx: &Ctx, args: CustomArgs) -> anyhow::Result<Box<dyn Report>> {
    let target = ctx.target()?;
    let data = if args.hex {
        hex::decode(args.data.trim()).map_err(|e| classified(Code::Usage, format!("DATA is not hex: {e}")))?
    } else {
        args.data.into_bytes()
    };
    let mut session = ctx.open().await?;
    let reply = session
        .client
        .call(&args.endpoint, &data)
        .await
        .with_context(|| format!("{} did not answer (is the endpoint registered on the device?)", args.endpoint))?;
    Ok(Box::new(CustomReport {
        ok: true,
        device: target.to_string(),
        security: session.choice.scheme,
        endpoint: args.endpoint,
        reply: String::from_utf8(reply.clone()).ok(),
        reply_hex: hex::encode(&reply),
        raw: reply,
        hex: args.hex,
    }))
}

impl Report for CustomReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.hex {
            writeln!(out, "{}", self.reply_hex)
        } else {
            out.write_all(&self.raw)?;
            if !self.raw.ends_with(b"\n") { writeln!(out) } else { Ok(()) }
        }
    }
}
