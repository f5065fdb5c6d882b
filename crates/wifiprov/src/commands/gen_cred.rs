//! `gen-cred`: a security 2 salt and verifier, for ESP-IDF firmware or wifiprovd.

use std::fmt::Write as _;
use std::io::{self, IsTerminal as _, Write};

use serde::Serialize;
use wifiprov_proto::rng::OsRandom;
use wifiprov_proto::secret::Password;
use wifiprov_proto::security::generate_salt_verifier;

use crate::commands::Ctx;
use crate::exit::{Code, classified};
use crate::flags::{CredFormat, GenCredArgs};
use crate::output::{Report, to_json};
use crate::secrets::{Secret, ask};
use crate::session::DEFAULT_USERNAME;

#[derive(Serialize)]
struct GenCredReport {
    ok: bool,
    username: String,
    salt: String,
    verifier: String,
    #[serde(skip)]
    format: CredFormat,
    #[serde(skip)]
    salt_bytes: Vec<u8>,
    #[serde(skip)]
    verifier_bytes: Vec<u8>,
}

/// The keys of wifiprovd's configuration file (`RawConfig`) that hold these credentials.
#[derive(Serialize)]
struct DaemonKeys<'a> {
    sec2_username: &'a str,
    sec2_salt: &'a str,
    sec2_verifier: &'a str,
}

pub(crate) async fn run(ctx: &Ctx, args: GenCredArgs) -> anyhow::Result<Box<dyn Report>> {
    let username = ctx.auth.username.clone().unwrap_or_else(|| DEFAULT_USERNAME.to_owned());
    if username.is_empty() {
        return Err(classified(Code::Usage, "the security 2 username must not be empty"));
    }
    let password = password(ctx, &username).await?;
    if password.is_empty() {
        return Err(classified(Code::Usage, "the security 2 password must not be empty"));
    }
    let creds = generate_salt_verifier(
        username.as_bytes(),
        &Password::from(password.as_str()),
        usize::from(args.salt_len),
        &mut OsRandom,
    )
    .map_err(|e| classified(Code::Usage, format!("cannot generate credentials: {e}")))?;
    Ok(Box::new(GenCredReport {
        ok: true,
        username,
        salt: hex::encode(&creds.salt),
        verifier: hex::encode(&creds.verifier),
        format: args.format,
        salt_bytes: creds.salt.clone(),
        verifier_bytes: creds.verifier.clone(),
    }))
}

/// The password from the usual sources; typed twice when it comes from the prompt.
async fn password(ctx: &Ctx, username: &str) -> anyhow::Result<Secret> {
    let source = &ctx.auth.password;
    if source.is_given() || !io::stdin().is_terminal() {
        return source.require("").await;
    }
    let first = ask(format!("Security 2 password for {username}: ")).await?;
    let second = ask("Repeat the password: ".to_owned()).await?;
    if first != second {
        return Err(classified(Code::Usage, "the passwords differ"));
    }
    Ok(first)
}

/// `static const char name[] = { 0x.., … };` with eight bytes a line, as in ESP-IDF's examples.
fn c_array(name: &str, bytes: &[u8]) -> String {
    let mut out = format!("static const char {name}[] = {{\n");
    for chunk in bytes.chunks(8) {
        out.push_str("   ");
        for b in chunk {
            let _ = write!(out, " 0x{b:02x},");
        }
        out.push('\n');
    }
    out.push_str("};\n");
    out
}

impl Report for GenCredReport {
    fn json(&self) -> serde_json::Result<String> {
        to_json(self)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        match self.format {
            CredFormat::Hex => {
                writeln!(out, "username: {}", self.username)?;
                writeln!(out, "salt:     {}", self.salt)?;
                writeln!(out, "verifier: {}", self.verifier)
            }
            CredFormat::C => {
                // The username is shown in a comment; keep it from closing the comment.
                let username = self.username.replace("*/", "* /");
                writeln!(out, "/* Security 2 credentials for username \"{username}\" (wifiprov gen-cred) */")?;
                out.write_all(c_array("sec2_salt", &self.salt_bytes).as_bytes())?;
                writeln!(out)?;
                out.write_all(c_array("sec2_verifier", &self.verifier_bytes).as_bytes())
            }
            CredFormat::Toml => {
                let keys =
                    DaemonKeys { sec2_username: &self.username, sec2_salt: &self.salt, sec2_verifier: &self.verifier };
                let text = toml::to_string(&keys).map_err(io::Error::other)?;
                out.write_all(text.as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_arrays_have_eight_bytes_a_line() {
        let text = c_array("sec2_salt", &(0u8..10).collect::<Vec<_>>());
        assert_eq!(
            text,
            "static const char sec2_salt[] = {\n    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,\n    0x08, 0x09,\n};\n"
        );
    }
}
