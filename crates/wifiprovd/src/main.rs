//! `wifiprovd`: the wifiprov device daemon.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use wifiprov_backend::{Passphrase, Ssid, WifiBackend};
use wifiprov_backend_nm::{HotspotConfig, NetworkManager, NmConfig};
use wifiprov_backend_sim::SimRadio;
use wifiprov_manager::Event;
use wifiprov_proto::endpoint::SessionLimits;
use wifiprov_proto::rng::OsRandom;
use wifiprov_store::{Counter, NetworkStore};
use wifiprov_transport_ble::{BleConfig, bluer};
use wifiprov_transport_http::HttpConfig;
use wifiprovd::config::{
    BackendChoice, Credentials, DaemonConfig, OneOrMany, RawConfig, RawCustomEndpoint, Secret, TransportChoice,
};
use wifiprovd::frontend::{BleFrontend, Frontend, HttpFrontend, SoftApFrontend};
use wifiprovd::guessing::{self, Guessing, SecurityEvent};
use wifiprovd::mdns::{MdnsAdvertiser, MdnsConfig};
use wifiprovd::qr::{QrPayload, QrTransport};
use wifiprovd::service::{ProvisioningService, ServiceConfig};

/// ESP-compatible Wi-Fi provisioning for Linux devices.
///
/// Serves Espressif's unified provisioning protocol (esp_prov, the ESP SoftAP/BLE provisioning apps, and
/// wifiprov) over HTTP or BLE, on a simulated radio by default. Settings come from --config FILE and flags;
/// flags win.
///
/// Examples:
///   wifiprovd                                   security 2 with a generated password, on 127.0.0.1:8080
///   wifiprovd --security 1 --pop abcd1234       security 1 with a proof of possession
///   wifiprovd --transport ble                   over BLE through BlueZ, advertising PROV_xxxxxx
///   wifiprovd --transport http,ble              over both at once
///   wifiprovd --custom-endpoint custom-data=/usr/lib/vendor/custom-data
///                                               a custom endpoint served by a program
///   wifiprovd --listen 0.0.0.0:80 --state-dir /var/lib/wifiprov --config /etc/wifiprov/wifiprovd.toml
///
/// Passwords and PoPs given as flags are visible in the process list; prefer the config file (mode 0600)
/// or a generated password. The PoP or password and the QR code are printed at start only when stdout is a
/// terminal, or with --show-credentials.
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Flags {
    /// TOML configuration file (same keys as the flags, with underscores).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Provisioning transports, served at once: http (on --listen), ble (BLE GATT through BlueZ), softap (the
    /// device's own access point named --service-name, WPA2 with --service-key, HTTP at 192.168.4.1:80 on it;
    /// needs --backend networkmanager), or several as http,ble [default: http].
    #[arg(long, value_name = "http|ble|softap", value_delimiter = ',')]
    transport: Vec<String>,
    /// The SoftAP's interface, made on the station's radio when it does not exist [default: uap0]. The station's
    /// own interface (as for a radio that cannot run both) puts the access point there, down while joining.
    #[arg(long, value_name = "IF")]
    softap_interface: Option<String>,
    /// Bluetooth adapter for --transport ble [default: BlueZ's default adapter].
    #[arg(long, value_name = "hciN")]
    ble_adapter: Option<String>,
    /// Address and port to serve HTTP on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// Security scheme: 0 (none), 1 (X25519 + PoP), 2 (SRP6a) [default: 2].
    #[arg(long, value_name = "0|1|2")]
    security: Option<u8>,
    /// Security 1 proof of possession; without one, security 1 runs without PoP ("no_pop").
    #[arg(long, value_name = "STR")]
    pop: Option<Secret>,
    /// Security 2 username [default: wifiprov].
    #[arg(long, value_name = "U")]
    sec2_username: Option<String>,
    /// Security 2 password; generated and printed when neither it nor a salt and verifier are given.
    #[arg(long, value_name = "P")]
    sec2_password: Option<Secret>,
    /// Security 2 salt in hex (from `wifiprov gen-cred` or `esp_prov --sec2_gen_cred`), with --sec2-verifier.
    #[arg(long, value_name = "HEX")]
    sec2_salt: Option<String>,
    /// Security 2 verifier in hex.
    #[arg(long, value_name = "HEX")]
    sec2_verifier: Option<String>,
    /// Security 2 nonce rule: 1 (current ESP) or 0 (firmware before 2025) [default: 1].
    #[arg(long, value_name = "0|1")]
    sec2_patch: Option<u8>,
    /// Device name shown to apps, advertised over BLE and in the QR code [default: PROV_ and 6 hex digits of
    /// the machine id].
    #[arg(long, value_name = "NAME")]
    service_name: Option<String>,
    /// SoftAP passphrase to show with the device name.
    #[arg(long, value_name = "KEY")]
    service_key: Option<Secret>,
    /// Directory for the provisioned state [default: /var/lib/wifiprov as root, else ~/.local/state/wifiprov].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Wi-Fi backend: sim (a simulated radio) or networkmanager (a real Wi-Fi device through NetworkManager)
    /// [default: sim].
    #[arg(long, value_name = "sim|networkmanager")]
    backend: Option<String>,
    /// Scenario file for the simulated radio [default: the built-in demo scenario].
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Wi-Fi interface for --backend networkmanager [default: NetworkManager's first Wi-Fi device].
    #[arg(long, value_name = "IF")]
    wifi_interface: Option<String>,
    /// Keep provisioning open after success (allows `prov-ctrl` reprovisioning).
    #[arg(long)]
    no_auto_stop: bool,
    /// Connection attempts before reporting a failure; 0 keeps ESP's behaviour [default: 0].
    #[arg(long, value_name = "N")]
    connect_attempts: Option<u32>,
    /// Delay between ApplyConfig and the first connection attempt, in ms [default: 1000].
    #[arg(long, value_name = "MS")]
    connect_delay_ms: Option<u64>,
    /// Open provisioning even when networks are saved already.
    #[arg(long)]
    always_provision: bool,
    /// How many networks the device saves at most [default: 8].
    #[arg(long, value_name = "N")]
    max_networks: Option<usize>,
    /// Seconds one attempt at a saved network may take before the next is tried [default: 20].
    #[arg(long, value_name = "SECS")]
    attempt_timeout: Option<u64>,
    /// Seconds between rounds through the saved networks when none works [default: 30].
    #[arg(long, value_name = "SECS")]
    retry_interval: Option<u64>,
    /// Seconds to retry after a lost link before provisioning reopens [default: 60].
    #[arg(long, value_name = "SECS")]
    reopen_grace: Option<u64>,
    /// Never reopen provisioning by itself when the device is offline.
    #[arg(long)]
    no_reopen: bool,
    /// Advertise the service over mDNS as `_esp_wifi_prov._tcp` (ESP's historical discovery).
    #[arg(long)]
    mdns: bool,
    /// Interface to advertise on (repeatable) [default: the SoftAP's interface with --transport softap alone,
    /// else every interface].
    #[arg(long, value_name = "IF")]
    mdns_interface: Vec<String>,
    /// A custom endpoint served by a program (repeatable): it gets the decrypted request on stdin and answers
    /// with its stdout; a non-zero exit refuses the request. Arguments, timeout and size limit: config file.
    #[arg(long, value_name = "NAME=PROGRAM", value_parser = RawCustomEndpoint::from_flag)]
    custom_endpoint: Vec<RawCustomEndpoint>,
    /// Print the PoP or password and the QR code at start even when stdout is not a terminal (under systemd it
    /// is the journal).
    #[arg(long)]
    show_credentials: bool,
}

impl Flags {
    fn into_raw(self) -> (Option<PathBuf>, RawConfig) {
        let raw = RawConfig {
            transport: (!self.transport.is_empty()).then_some(OneOrMany::Many(self.transport)),
            listen: self.listen,
            ble_adapter: self.ble_adapter,
            security: self.security,
            pop: self.pop,
            sec2_username: self.sec2_username,
            sec2_password: self.sec2_password,
            sec2_salt: self.sec2_salt,
            sec2_verifier: self.sec2_verifier,
            sec2_patch: self.sec2_patch,
            service_name: self.service_name,
            service_key: self.service_key,
            state_dir: self.state_dir,
            backend: self.backend,
            scenario: self.scenario,
            wifi_interface: self.wifi_interface,
            softap_interface: self.softap_interface,
            auto_stop: self.no_auto_stop.then_some(false),
            auto_stop_timeout_secs: None,
            connect_attempts: self.connect_attempts,
            connect_delay_ms: self.connect_delay_ms,
            always_provision: self.always_provision.then_some(true),
            max_networks: self.max_networks,
            attempt_timeout_secs: self.attempt_timeout,
            retry_interval_secs: self.retry_interval,
            reopen_grace_secs: self.reopen_grace,
            reopen: self.no_reopen.then_some(false),
            max_sessions: None,
            mdns: self.mdns.then_some(true),
            mdns_interfaces: (!self.mdns_interface.is_empty()).then_some(self.mdns_interface),
            custom_endpoint: (!self.custom_endpoint.is_empty()).then_some(self.custom_endpoint),
            guess_free_failures: None,
            guess_backoff_secs: None,
            guess_max_backoff_secs: None,
            show_credentials: self.show_credentials.then_some(true),
        };
        (self.config, raw)
    }
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wifiprovd: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wifiprovd: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let (file, overrides) = flags.into_raw();
    let raw = match file {
        Some(path) => RawConfig::from_file(&path)?.overlay(overrides),
        None => overrides,
    };
    let config = DaemonConfig::validate(raw, &mut OsRandom).context("invalid configuration")?;
    // Installed before anything is served: a supervisor that sends SIGTERM as soon as the banner is out must get
    // the graceful shutdown, not the default action.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;

    // The NetworkManager backend also runs the SoftAP, so it is kept by its type too.
    let mut nm = None;
    let backend: Arc<dyn WifiBackend> = match &config.backend {
        BackendChoice::Sim { scenario: Some(path) } => {
            Arc::new(SimRadio::from_file(path).context("cannot load the radio scenario")?)
        }
        BackendChoice::Sim { scenario: None } => Arc::new(SimRadio::builtin_default()),
        BackendChoice::NetworkManager { interface } => {
            let config = NmConfig { interface: interface.clone(), ..NmConfig::default() };
            let started = Arc::new(NetworkManager::start(config).await.context("cannot use NetworkManager")?);
            nm = Some(Arc::clone(&started));
            started
        }
    };
    let store = NetworkStore::open(&config.state_dir);
    let service_config = ServiceConfig {
        manager: config.manager.clone(),
        sessions: SessionLimits { max_sessions: config.max_sessions, ..SessionLimits::default() },
        guessing: Guessing::persisted(
            config.guess_limit,
            Counter::open(&config.state_dir, guessing::FILE_NAME).context("the failed-proof counter")?,
        ),
    };
    let service =
        ProvisioningService::new(service_config, backend, store).context("cannot start the provisioning service")?;
    let mut events = service.subscribe();
    let mut security_events = service.security_events();
    for endpoint in &config.custom_endpoints {
        service.create_endpoint(&endpoint.name).await?;
        service.register_endpoint(&endpoint.name, endpoint.handler()).await?;
    }

    // Found before anything starts, so that a missing adapter or an unreachable BlueZ is a clear error at start.
    let mut ble = None;
    for transport in &config.transports {
        if let TransportChoice::Ble { adapter } = transport {
            ble = Some(ble_frontend(&config, adapter.as_deref()).await?);
        }
    }
    let mut mdns = None;
    if service.start_policy().await && !config.always_provision {
        // Provisioning opens by itself if none of them works (unless --no-reopen), binding the HTTP address then.
        tracing::info!(saved = service.networks().await.len(), "trying the saved networks");
        let frontends = frontends(&config, ble.clone(), None, nm.as_ref());
        service.set_fallback(config.security.clone(), frontends).await;
    } else {
        let listener = if config.transports.contains(&TransportChoice::Http) {
            let bound = wifiprov_transport_http::listen(config.listen);
            Some(bound.with_context(|| format!("cannot listen on {}", config.listen))?)
        } else {
            None
        };
        service
            .start_provisioning(config.security.clone(), frontends(&config, ble.clone(), listener, nm.as_ref()))
            .await?;
        let address = service.local_addr().await;
        if let Some(address) = address {
            mdns = advertise(&config, address)?;
        }
        print_banner(&config, address, ble.is_some());
    }

    // Set between the policy's reopen and the Start event that follows it.
    let mut reopened = false;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            event = events.recv() => match event {
                Ok(Event::CredSuccess(link)) => {
                    tracing::info!(ssid = %link.ssid, ip = %link.ip4, bssid = %link.bssid, "provisioned");
                }
                Ok(Event::ProvisioningReopened) => reopened = true,
                Ok(Event::Start) if reopened => {
                    reopened = false;
                    // Provisioning reopened by the connection policy: advertise and show how to reach it again.
                    let address = service.local_addr().await;
                    if let Some(address) = address && mdns.is_none() {
                        match advertise(&config, address) {
                            Ok(advertiser) => mdns = advertiser,
                            Err(error) => tracing::warn!(error = %format!("{error:#}"), "mDNS"),
                        }
                    }
                    print_banner(&config, address, ble.is_some());
                }
                Ok(Event::End) => {
                    tracing::info!("provisioning ended; the device stays on its network");
                    stop_mdns(mdns.take()).await;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            Ok(event) = security_events.recv() => if let SecurityEvent::CredentialsMismatch { failures } = event {
                tracing::info!(failures, "a client's proof of possession or password was wrong");
            },
        }
    }
    tracing::info!("shutting down");
    stop_mdns(mdns.take()).await;
    service.deinit().await;
    Ok(())
}

/// The configured front-ends, in the configured order; HTTP on `listener` when one is bound already.
fn frontends(
    config: &DaemonConfig,
    mut ble: Option<BleFrontend>,
    mut listener: Option<tokio::net::TcpListener>,
    nm: Option<&Arc<NetworkManager>>,
) -> Vec<Arc<dyn Frontend>> {
    let mut frontends: Vec<Arc<dyn Frontend>> = Vec::new();
    for transport in &config.transports {
        match transport {
            TransportChoice::Http => {
                let http = match listener.take().map(|l| HttpFrontend::bound(l, HttpConfig::default())) {
                    Some(Ok(bound)) => bound,
                    _ => HttpFrontend::at(config.listen, HttpConfig::default()),
                };
                frontends.push(Arc::new(http));
            }
            TransportChoice::Ble { .. } => {
                if let Some(ble) = ble.take() {
                    frontends.push(Arc::new(ble));
                }
            }
            TransportChoice::SoftAp { interface } => {
                // Validation allows softap only with the NetworkManager backend.
                let (Some(nm), Ok(ssid)) = (nm, Ssid::try_from(config.service_name.as_str())) else { continue };
                let passphrase =
                    config.service_key.as_ref().and_then(|key| Passphrase::new(key.expose().to_owned()).ok());
                let hotspot = HotspotConfig {
                    interface: interface.clone(),
                    ssid,
                    passphrase,
                    channel: None,
                    address: wifiprovd::frontend::SOFTAP_IP,
                    prefix: 24,
                };
                frontends.push(Arc::new(SoftApFrontend::new(Arc::clone(nm), hotspot)));
            }
        }
    }
    frontends
}

/// The BlueZ adapter to serve BLE on, found before anything starts so that a missing adapter or an unreachable
/// BlueZ is a clear error at start.
async fn ble_frontend(config: &DaemonConfig, adapter: Option<&str>) -> anyhow::Result<BleFrontend> {
    let session = bluer::Session::new().await.context("cannot reach BlueZ on the system D-Bus")?;
    let adapter = match adapter {
        Some(name) => session.adapter(name).with_context(|| format!("no Bluetooth adapter {name}"))?,
        None => session.default_adapter().await.context("no Bluetooth adapter")?,
    };
    // An adapter name that BlueZ does not know fails only here, on its first property read.
    adapter.address().await.with_context(|| format!("cannot use Bluetooth adapter {}", adapter.name()))?;
    Ok(BleFrontend { adapter, config: BleConfig::new(config.service_name.clone()) })
}

/// Starts the mDNS advertisement when configured.
fn advertise(config: &DaemonConfig, address: std::net::SocketAddr) -> anyhow::Result<Option<MdnsAdvertiser>> {
    let Some(interfaces) = &config.mdns else { return Ok(None) };
    let hostname = format!("{}.local.", config.service_name);
    let addresses: Vec<_> = Some(address.ip()).filter(|ip| !ip.is_unspecified()).into_iter().collect();
    let advertiser = MdnsAdvertiser::start(&MdnsConfig::new(hostname, interfaces.clone()), address.port(), &addresses)
        .context("cannot advertise over mDNS")?;
    tracing::info!(name = advertiser.fullname(), "advertising over mDNS");
    Ok(Some(advertiser))
}

/// Withdraws the mDNS advertisement (goodbye packets); waits for the daemon thread off the runtime.
async fn stop_mdns(advertiser: Option<MdnsAdvertiser>) {
    if let Some(advertiser) = advertiser {
        match tokio::task::spawn_blocking(move || advertiser.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(error = %error, "mDNS shutdown"),
            Err(error) => tracing::warn!(%error, "mDNS shutdown task"),
        }
    }
}

/// What a person needs at start: where to connect, how to authenticate, and a command line that works.
/// `address` is the HTTP transport's; over BLE the device is reached by its name. With both, the commands use
/// HTTP.
///
/// The PoP or password, and the QR code that holds it, are shown only on a terminal or when asked for
/// (`--show-credentials`): under systemd stdout is the journal, readable by more people than the config file.
fn print_banner(config: &DaemonConfig, address: Option<std::net::SocketAddr>, ble: bool) {
    let show = config.show_credentials || std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut out = String::new();
    let security = config.security.version().number();
    let name = &config.service_name;
    if let Some(address) = address {
        out.push_str(&format!("listening on {address}\n"));
    }
    if ble {
        out.push_str(&format!("advertising over BLE as {name}\n"));
    }
    let (ours_target, esp_target, qr_transport) = match address {
        Some(address) => {
            (format!("--device {address}"), format!("--transport httpd --service_name {address}"), QrTransport::Softap)
        }
        None => (format!("--ble {name}"), format!("--transport ble --service_name {name}"), QrTransport::Ble),
    };
    out.push_str(&format!("device name {name}, security {security}\n"));
    let (esp, ours, qr_user, qr_secret) = match &config.credentials {
        Credentials::None => (String::new(), String::new(), None, None),
        Credentials::Pop(pop) => {
            let shown = if show { pop.expose() } else { "<pop>" };
            (format!(" --pop {shown}"), format!(" --pop {shown}"), None, Some(pop.expose()))
        }
        Credentials::UserPassword { username, password, generated } => {
            if *generated {
                out.push_str(
                    "security 2 password generated for this run (set --sec2-password or a verifier to keep one)\n",
                );
                if !show {
                    tracing::warn!(
                        "a security 2 password was generated but stdout is not a terminal, so it is not shown: \
                         configure sec2_password (or a salt and verifier), or pass --show-credentials"
                    );
                }
            }
            let pwd = password.as_ref().map(Secret::expose).filter(|_| show).unwrap_or("<password>");
            (
                format!(" --sec2_username {username} --sec2_pwd {pwd}"),
                format!(" --sec2-username {username} --sec2-password {pwd}"),
                Some(username.as_str()),
                password.as_ref().map(Secret::expose),
            )
        }
    };
    if show || qr_secret.is_none() {
        let qr = QrPayload::new(&config.service_name, qr_user, qr_secret, qr_transport);
        if let Some(rendered) = wifiprovd::qr::render(&qr) {
            out.push_str(&rendered);
            out.push('\n');
        }
        out.push_str(&format!("QR payload: {}\n", qr.to_json()));
    } else {
        out.push_str("credentials and QR code not shown: stdout is not a terminal (--show-credentials shows them)\n");
    }
    out.push_str("provision it with (the simulated radio has wifiprov-demo / wifiprov-demo-pass):\n");
    out.push_str(&format!(
        "  wifiprov {ours_target} --security {security}{ours} provision --ssid wifiprov-demo --passphrase wifiprov-demo-pass\n"
    ));
    out.push_str(&format!(
        "  esp_prov.py {esp_target} --sec_ver {security}{esp} --ssid wifiprov-demo --passphrase wifiprov-demo-pass\n"
    ));
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (daemon under a supervisor) must not stop the daemon.
    let _ = stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush());
}
