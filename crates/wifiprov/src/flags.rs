//! Every flag and subcommand, defined once with clap derive. Help text is generated from these definitions.

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

const AFTER_LONG_HELP: &str = "\
Exit codes:
  0  success
  1  the device reported a failure: a request refused with a non-success status, a connection
     attempt that ended without a known reason, or no final state before --timeout
  2  usage or local error: bad flags, unreadable file, missing secret, nothing chosen
  3  transport failure: cannot connect, the device closed the connection or stopped answering
  4  security failure: the device refused the handshake (wrong PoP, wrong sec2 username or
     password, or a security scheme mismatch)
  5  the device could not find the Wi-Fi network
  6  the access point refused the Wi-Fi passphrase
  fleet exits 0 when every device connected, 1 otherwise.

Secrets:
  Values given as flags (--pop, --sec2-password, --passphrase) are visible to every user of this
  machine in the process list (ps, /proc/PID/cmdline). Prefer the environment, a file
  (--pop-file, --sec2-password-file, --passphrase-file) or the no-echo prompt, which is used when
  a secret is needed, none was given and stdin is a terminal. Secrets are never printed or logged.

Environment:
  WIFIPROV_DEVICE          default for --device (--ble overrides it)
  WIFIPROV_POP             security 1 proof of possession
  WIFIPROV_SEC2_USERNAME   default for --sec2-username
  WIFIPROV_SEC2_PASSWORD   security 2 password
  WIFIPROV_PASSPHRASE      Wi-Fi passphrase for `provision`
  RUST_LOG                 log filter (overrides -v)

--json prints exactly one JSON object on stdout, also on failure ({\"ok\":false,\"error\":{\"kind\",
\"message\",\"exit_code\"}}); human text, progress and logs go to stderr. The schemas are in the
README of the wifiprov crate.";

/// Provision ESP-compatible Wi-Fi devices (ESP-IDF unified provisioning, like esp_prov.py).
///
/// Talks to a device over HTTP (SoftAP provisioning, --device HOST:PORT) or Bluetooth LE through BlueZ (--ble
/// NAME) with security 0, 1 or 2. The security scheme is chosen from the device's proto-ver unless --security
/// is given.
// No `Debug`: the flags hold secrets (--pop, --sec2-password, --passphrase).
#[derive(Parser)]
#[command(
    name = "wifiprov",
    version,
    after_help = "Exit codes: 0 success, 1 device failure, 2 usage, 3 transport, 4 security, 5 network not found, \
                  6 wrong passphrase.\nFlags holding secrets are visible in the process list. More: --help",
    after_long_help = AFTER_LONG_HELP
)]
pub(crate) struct Flags {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every subcommand accepts.
#[derive(Args)]
pub(crate) struct GlobalArgs {
    /// The device: HOST:PORT of its HTTP provisioning service (port 80 when omitted).
    #[arg(long, global = true, env = "WIFIPROV_DEVICE", value_name = "HOST:PORT")]
    pub(crate) device: Option<String>,
    /// The device over Bluetooth LE: the name it advertises (ESP: PROV_ and 6 hex digits), instead of --device
    /// (it overrides WIFIPROV_DEVICE). Uses BlueZ's default adapter; --connect-timeout bounds the scan and the
    /// connection.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) ble: Option<String>,
    /// The Bluetooth adapter for --ble [default: BlueZ's default adapter].
    #[arg(long, global = true, value_name = "hciN", requires = "ble")]
    pub(crate) ble_adapter: Option<String>,
    /// Security scheme: 0, 1 or 2 [default: from proto-ver: no_sec → 0, else sec_ver, else 1].
    #[arg(long, global = true, value_name = "0|1|2", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub(crate) security: Option<u8>,
    /// Security 1 proof of possession (visible in the process list; see --pop-file, WIFIPROV_POP).
    #[arg(long, global = true, value_name = "POP", conflicts_with = "pop_file")]
    pub(crate) pop: Option<String>,
    /// Read the proof of possession from the first line of FILE.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) pop_file: Option<PathBuf>,
    /// Security 2 username [default: wifiprov].
    #[arg(long, global = true, env = "WIFIPROV_SEC2_USERNAME", value_name = "USER")]
    pub(crate) sec2_username: Option<String>,
    /// Security 2 password (visible in the process list; see --sec2-password-file, WIFIPROV_SEC2_PASSWORD).
    #[arg(long, global = true, value_name = "PASSWORD", conflicts_with = "sec2_password_file")]
    pub(crate) sec2_password: Option<String>,
    /// Read the security 2 password from the first line of FILE.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) sec2_password_file: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log to stderr: -v for debug, -vv for trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Seconds allowed to open the connection to the device.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10)]
    pub(crate) connect_timeout: u64,
}

/// What to do.
// New subcommands (saved networks, BLE discovery) are added here and dispatched in `commands::run`.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Show the device's protocol version, security scheme, patch level and capabilities (proto-ver).
    #[command(after_help = "\
Examples:
  wifiprov --device 192.168.4.1:80 caps
  wifiprov --device 192.168.4.1:80 caps --json

JSON: {ok, device, prov_version, sec_ver, sec_patch_ver, security, patch_level, capabilities, apps:[{label, version, capabilities}]}")]
    Caps,
    /// Let the device scan for Wi-Fi networks and list them, strongest first.
    #[command(after_help = "\
Examples:
  wifiprov --device 192.168.4.1:80 --pop abcd1234 scan
  WIFIPROV_SEC2_PASSWORD=... wifiprov --device 192.168.4.1:80 scan --json

JSON: {ok, device, security, networks:[{ssid, bssid, channel, rssi, auth}]}")]
    Scan,
    /// Send Wi-Fi credentials to the device and wait until it connects or gives up.
    #[command(after_help = "\
Without --ssid, the device scans and you choose a network by number (or SSID) from stdin; a pipe
works too (`echo 2 | wifiprov provision`). Without a passphrase, wifiprov asks for one when stdin
is a terminal, and otherwise provisions an open network.

Examples:
  wifiprov --device 192.168.4.1:80 --pop abcd1234 provision --ssid home --passphrase-file pass.txt
  WIFIPROV_PASSPHRASE=... wifiprov --device 192.168.4.1:80 provision --ssid home --json
  wifiprov --device 192.168.4.1:80 provision            (scan, then choose)
  wifiprov --device 192.168.4.1:80 provision --ssid guest   (open network, non-interactive)

Exit: 0 connected, 5 network not found, 6 wrong passphrase, 1 other failure.
JSON: {ok, device, security, ssid, outcome: connected|auth_error|network_not_found|failed|disconnected,
       ip, bssid, channel, auth, reason, hint, attempts_remaining:[n…], elapsed_ms}")]
    Provision(ProvisionArgs),
    /// Show the device's Wi-Fi station state.
    #[command(after_help = "\
Examples:
  wifiprov --device 192.168.4.1:80 status

Exit: 0 when the device is connected, connecting or idle; 5, 6 or 1 when its last attempt failed.
JSON: {ok, device, security, state: connected|connecting|disconnected|failed, ip, ssid, bssid, channel,
       auth, attempts_remaining, reason}")]
    Status,
    /// Reset the device's provisioning state after a failed attempt, so new credentials can be sent.
    #[command(after_help = "\
Examples:
  wifiprov --device 192.168.4.1:80 reset

JSON: {ok, device, security, action: \"reset\"}")]
    Reset,
    /// Ask a provisioned device to accept new credentials (its provisioning must still be running).
    #[command(after_help = "\
Examples:
  wifiprov --device 192.168.4.1:80 reprov && wifiprov --device 192.168.4.1:80 provision --ssid new

JSON: {ok, device, security, action: \"reprov\"}")]
    Reprov,
    /// Send DATA to an application endpoint over the secure session and print the reply.
    #[command(after_help = "\
Examples:
  wifiprov --device 192.168.4.1:80 custom custom-data 'hello'
  wifiprov --device 192.168.4.1:80 custom custom-data 01ff00 --hex

JSON: {ok, device, security, endpoint, reply (text, or null when not UTF-8), reply_hex}")]
    Custom(CustomArgs),
    /// Generate a security 2 salt and verifier for a username and password (no device needed).
    #[command(after_help = "\
Examples:
  wifiprov gen-cred --sec2-username wifiprov --sec2-password-file pw.txt
  wifiprov gen-cred --sec2-username wifiprov --format c        (ESP-IDF sec2_salt[]/sec2_verifier[])
  wifiprov gen-cred --sec2-username wifiprov --format toml >> /etc/wifiprov/wifiprovd.toml

JSON: {ok, username, salt, verifier} (hex)")]
    GenCred(GenCredArgs),
    /// Print the QR payload of ESP's provisioning apps and draw it on the terminal (no device needed).
    #[command(after_help = "\
The payload carries the PoP (security 1) or password (security 2) given with --pop: that is its
purpose, and the one place where wifiprov prints a secret.

Examples:
  wifiprov qr --name PROV_123456 --pop abcd1234
  wifiprov qr --name PROV_123456 --username wifiprov --pop-file pw.txt --transport ble

JSON: {ok, payload} where payload is the exact text encoded in the QR code")]
    Qr(QrArgs),
    /// Manage the networks a wifiprov device remembers: list, add, remove, reorder, switch.
    #[command(after_help = "\
wifiprov devices keep up to 8 networks (configurable) and join them in priority order (0 first) at
start and whenever the link is lost. This uses the device's prov-networks endpoint, which ESP-IDF
devices do not have (`caps` lists it as the \"networks\" app).

Examples:
  wifiprov --device 192.168.4.1:80 networks list --scan
  wifiprov --device 192.168.4.1:80 networks add --ssid home --passphrase-file pass.txt --priority 0
  wifiprov --device 192.168.4.1:80 networks add --ssid lab --passphrase ... --no-connect
  wifiprov --device 192.168.4.1:80 networks move --ssid lab --to 0
  wifiprov --device 192.168.4.1:80 networks connect --ssid lab
  wifiprov --device 192.168.4.1:80 networks remove --ssid lab

Exit: 0 done; 5 no such saved network, or the network was not found when joining; 6 wrong passphrase;
1 any other refusal (list full, priority out of range, device busy).")]
    Networks(NetworksArgs),
    /// Provision many devices concurrently from a TOML or CSV file.
    #[command(after_help = "\
File formats (passphrases in the file stay out of the process list):
  TOML:  [[device]]
         device = \"192.168.4.1:80\"
         ssid = \"home\"
         passphrase = \"...\"
         security = 2               (optional; also pop, sec2_username, sec2_password)
  CSV:   device,ssid,passphrase,security,pop,sec2_username,sec2_password   (header line; any column
         order; only device and ssid are required; unquoted fields are trimmed)
Per-device values override the global --security/--pop/--sec2-* options.

Examples:
  wifiprov fleet devices.toml --concurrency 8 --retries 2
  wifiprov fleet devices.csv --json > report.json

Exit: 0 when every device connected, 1 otherwise.
JSON: {ok, devices:[{device, ssid, ok, outcome, ip, error, attempts, elapsed_ms}], succeeded, failed}")]
    Fleet(FleetArgs),
}

/// `provision`.
#[derive(Args)]
pub(crate) struct ProvisionArgs {
    /// Network name; without it, scan and choose interactively.
    #[arg(long, value_name = "SSID")]
    pub(crate) ssid: Option<String>,
    /// Wi-Fi passphrase (visible in the process list; see --passphrase-file, WIFIPROV_PASSPHRASE).
    #[arg(long, value_name = "PASS", conflicts_with = "passphrase_file")]
    pub(crate) passphrase: Option<String>,
    /// Read the Wi-Fi passphrase from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// The network does not broadcast its SSID (it will not appear in scans; the device probes for it).
    #[arg(long, requires = "ssid")]
    pub(crate) hidden: bool,
    /// Give up waiting for the connection result after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) timeout: u64,
    /// Poll the device's status every MS milliseconds instead of the adaptive 50 ms, doubling up to 1 s.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) poll_interval: Option<u64>,
}

/// `networks`.
#[derive(Args)]
pub(crate) struct NetworksArgs {
    #[command(subcommand)]
    pub(crate) action: NetworksAction,
}

/// `networks` subcommands.
#[derive(Subcommand)]
pub(crate) enum NetworksAction {
    /// Saved networks in priority order, then the networks of the device's last scan.
    #[command(after_help = "\
JSON: {ok, device, security, capacity, networks:[{ssid, priority, saved, connected, rssi, bssid, auth, hidden,
       last_result}]} (priority and rssi are null when unknown)")]
    List {
        /// Let the device scan first, so the list shows which networks are in range.
        #[arg(long)]
        scan: bool,
    },
    /// Save a network (or update a saved one). The device joins it first and saves it only if that works.
    #[command(after_help = "\
JSON: {ok, device, security, action: \"add\", ssid, status, priority, updated, ip, bssid, channel, reason}")]
    Add(NetworkAddArgs),
    /// Forget a saved network; if the device is on it, it leaves and joins the next one.
    #[command(after_help = "JSON: {ok, device, security, action: \"remove\", ssid, status}")]
    Remove {
        /// The network.
        #[arg(long, value_name = "SSID")]
        ssid: String,
    },
    /// Give a saved network another priority (0 is tried first).
    #[command(after_help = "JSON: {ok, device, security, action: \"move\", ssid, status, from, to}")]
    Move {
        /// The network.
        #[arg(long, value_name = "SSID")]
        ssid: String,
        /// Its new priority index.
        #[arg(long, value_name = "N")]
        to: u32,
    },
    /// Switch to a saved network now.
    #[command(
        after_help = "JSON: {ok, device, security, action: \"connect\", ssid, status, ip, bssid, channel, reason}"
    )]
    Connect {
        /// The network.
        #[arg(long, value_name = "SSID")]
        ssid: String,
    },
}

/// `networks add`.
#[derive(Args)]
pub(crate) struct NetworkAddArgs {
    /// The network name.
    #[arg(long, value_name = "SSID")]
    pub(crate) ssid: String,
    /// Wi-Fi passphrase (visible in the process list; see --passphrase-file, WIFIPROV_PASSPHRASE). Without
    /// one, an open network is saved.
    #[arg(long, value_name = "PASS", conflicts_with = "passphrase_file")]
    pub(crate) passphrase: Option<String>,
    /// Read the Wi-Fi passphrase from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Priority index (0 is tried first) [default: last for a new network, unchanged for a saved one].
    #[arg(long, value_name = "N")]
    pub(crate) priority: Option<u32>,
    /// The network does not broadcast its SSID.
    #[arg(long)]
    pub(crate) hidden: bool,
    /// Save without joining first.
    #[arg(long)]
    pub(crate) no_connect: bool,
}

/// `custom`.
#[derive(Debug, Args)]
pub(crate) struct CustomArgs {
    /// The endpoint name, as the device registered it.
    pub(crate) endpoint: String,
    /// The request (text, or hex with --hex).
    pub(crate) data: String,
    /// DATA is hex, and the reply is printed as hex.
    #[arg(long)]
    pub(crate) hex: bool,
}

/// Output formats of `gen-cred`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CredFormat {
    /// `salt:` and `verifier:` lines in hex.
    Hex,
    /// C arrays `sec2_salt[]` and `sec2_verifier[]`, as in ESP-IDF's examples.
    C,
    /// `sec2_username`, `sec2_salt`, `sec2_verifier` lines for wifiprovd's configuration file.
    Toml,
}

/// `gen-cred`.
#[derive(Debug, Args)]
pub(crate) struct GenCredArgs {
    /// Salt length in bytes.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub(crate) salt_len: u8,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CredFormat::Hex)]
    pub(crate) format: CredFormat,
}

/// The transport named in a QR payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum QrTransportArg {
    /// Wi-Fi SoftAP (HTTP).
    Softap,
    /// Bluetooth LE.
    Ble,
}

/// `qr`.
#[derive(Debug, Args)]
pub(crate) struct QrArgs {
    /// Device name (SoftAP SSID or BLE name), e.g. PROV_123456.
    #[arg(long, value_name = "NAME")]
    pub(crate) name: String,
    /// Security 2 username.
    #[arg(long, value_name = "USER")]
    pub(crate) username: Option<String>,
    /// Transport the phone app should use.
    #[arg(long, value_enum, default_value_t = QrTransportArg::Softap)]
    pub(crate) transport: QrTransportArg,
}

/// `fleet`.
#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    /// The device list: *.toml ([[device]] tables) or *.csv (header line).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// Devices provisioned at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) concurrency: u16,
    /// Extra tries for a device after a transport failure.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(crate) retries: u32,
    /// Per device: give up waiting for the connection result after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) timeout: u64,
}

/// Parses the command line. `Err` is clap's verdict: help, version, or a usage error.
pub(crate) fn parse() -> Result<Flags, clap::Error> {
    parse_from(std::env::args_os())
}

fn parse_from<I, T>(args: I) -> Result<Flags, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = Flags::command();
    let matches = command.try_get_matches_from_mut(args)?;
    // Not a clap conflict: that would also refuse --ble while WIFIPROV_DEVICE is set, which is a default for
    // many runs that --ble simply overrides. Both on one command line name two devices.
    if matches.value_source("ble").is_some() && matches.value_source("device") == Some(ValueSource::CommandLine) {
        return Err(command.error(ErrorKind::ArgumentConflict, "--ble and --device name two devices; give one"));
    }
    Flags::from_arg_matches(&matches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Flags::command().debug_assert();
    }

    #[test]
    fn ble_overrides_the_environment_but_not_the_command_line() {
        let flags = parse_from(["wifiprov", "--ble", "PROV_1", "caps"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(flags.global.ble.as_deref(), Some("PROV_1"));
        let both = parse_from(["wifiprov", "--ble", "PROV_1", "caps", "--device", "h:1"]);
        assert_eq!(both.err().map(|e| e.kind()), Some(ErrorKind::ArgumentConflict));
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let flags =
            Flags::try_parse_from(["wifiprov", "provision", "--device", "h:1", "--security", "2", "--ssid", "x"])
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(flags.global.device.as_deref(), Some("h:1"));
        assert_eq!(flags.global.security, Some(2));
        assert!(Flags::try_parse_from(["wifiprov", "caps", "--security", "3"]).is_err());
        assert!(Flags::try_parse_from(["wifiprov", "provision", "--hidden"]).is_err(), "--hidden needs --ssid");
        assert!(Flags::try_parse_from(["wifiprov", "gen-cred", "--salt-len", "65"]).is_err());
        assert!(Flags::try_parse_from(["wifiprov", "scan", "--pop", "a", "--pop-file", "b"]).is_err());
    }

    #[test]
    fn help_warns_about_the_process_list_and_lists_exit_codes() {
        let help = Flags::command().render_long_help().to_string();
        assert!(help.contains("process list"));
        assert!(help.contains("6  the access point refused"));
    }
}
