//! One module per subcommand. Each returns a [`Report`] (or an error) and never writes to stdout itself.

mod caps;
mod ctrl;
mod custom;
mod fleet;
mod gen_cred;
mod networks;
mod provision;
mod qr;
mod scan;
mod status;

use std::time::Duration;

use wifiprov_client::Client;
use wifiprov_proto::version::VersionInfo;
use zeroize::Zeroizing;

use crate::exit::{Code, classified};
use crate::flags::{Command, Flags, GlobalArgs};
use crate::output::Report;
use crate::secrets::SecretSource;
use crate::session::{self, Auth, Link, OpenLinks, Session, Target};

/// What every command may need from the global options.
pub(crate) struct Ctx {
    /// `--json`.
    pub(crate) json: bool,
    /// `--device`, as given (parsed when a command needs it, so a bad value does not stop `gen-cred`).
    device: Option<String>,
    /// `--ble`, as given.
    ble: Option<String>,
    /// `--ble-adapter`.
    ble_adapter: Option<String>,
    /// BLE links opened by the command, closed when it ends.
    links: OpenLinks,
    /// `--connect-timeout`.
    pub(crate) connect_timeout: Duration,
    /// Security scheme and credentials.
    pub(crate) auth: Auth,
}

impl Ctx {
    fn new(global: GlobalArgs) -> Self {
        let mut pop =
            SecretSource::new("proof of possession", "--pop, --pop-file or WIFIPROV_POP", Some("WIFIPROV_POP"));
        pop.value = global.pop.map(Zeroizing::new);
        pop.file = global.pop_file;
        let mut password = SecretSource::new(
            "security 2 password",
            "--sec2-password, --sec2-password-file or WIFIPROV_SEC2_PASSWORD",
            Some("WIFIPROV_SEC2_PASSWORD"),
        );
        password.value = global.sec2_password.map(Zeroizing::new);
        password.file = global.sec2_password_file;
        Self {
            json: global.json,
            device: global.device,
            ble: global.ble,
            ble_adapter: global.ble_adapter,
            links: OpenLinks::default(),
            connect_timeout: Duration::from_secs(global.connect_timeout.max(1)),
            auth: Auth { security: global.security, pop, username: global.sec2_username, password },
        }
    }

    /// The device; a usage error when none was given.
    pub(crate) fn target(&self) -> anyhow::Result<Target> {
        match (&self.ble, &self.device) {
            (Some(name), _) => Target::ble(name, self.ble_adapter.as_deref()),
            (None, Some(device)) => Target::parse(device),
            (None, None) => Err(classified(
                Code::Usage,
                "no device given: use --device HOST:PORT (or set WIFIPROV_DEVICE), or --ble NAME",
            )),
        }
    }

    /// Connects to the device and establishes a secure session.
    pub(crate) async fn open(&self) -> anyhow::Result<Session> {
        let mut session = session::open(&self.target()?, self.connect_timeout, &self.auth).await?;
        self.links.track(session.client.transport_mut());
        Ok(session)
    }

    /// Connects to the device and reads proto-ver, without a session.
    pub(crate) async fn connect(&self) -> anyhow::Result<(Client<Link>, VersionInfo)> {
        let (mut client, info) = session::connect(&self.target()?, self.connect_timeout).await?;
        self.links.track(client.transport_mut());
        Ok((client, info))
    }
}

/// Runs the command the flags name.
pub(crate) async fn run(flags: Flags) -> anyhow::Result<Box<dyn Report>> {
    let ctx = Ctx::new(flags.global);
    let result = match flags.command {
        Command::Caps => caps::run(&ctx).await,
        Command::Scan => scan::run(&ctx).await,
        Command::Provision(args) => provision::run(&ctx, args).await,
        Command::Status => status::run(&ctx).await,
        Command::Reset => ctrl::run(&ctx, ctrl::Action::Reset).await,
        Command::Reprov => ctrl::run(&ctx, ctrl::Action::Reprov).await,
        Command::Custom(args) => custom::run(&ctx, args).await,
        Command::GenCred(args) => gen_cred::run(&ctx, args).await,
        Command::Qr(args) => qr::run(&ctx, args).await,
        Command::Networks(args) => networks::run(&ctx, args.action).await,
        Command::Fleet(args) => fleet::run(&ctx, args).await,
    };
    ctx.links.close_all().await;
    result
}
