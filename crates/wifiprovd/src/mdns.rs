//! mDNS (DNS-SD) advertisement of the HTTP provisioning transport, the way ESP-IDF ≤ 4.4 did it.
//!
//! ESP devices advertised the instance `"Wi-Fi Provisioning Service"` of type `_esp_wifi_prov._tcp` on the
//! httpd port, with one TXT record per protocomm endpoint path. Current ESP-IDF no longer advertises anything
//! and no Espressif client needs it (esp_prov and the phone apps use a fixed IP and port), so this is a
//! convenience for clients that browse; the daemon decides whether to start it.
//!
//! [`MdnsAdvertiser`] owns an `mdns-sd` [`ServiceDaemon`], which runs its own thread and needs no async
//! runtime. [`MdnsAdvertiser::shutdown`] blocks for at most [`SHUTDOWN_TIMEOUT`]; call it from
//! `spawn_blocking` when inside the runtime.
//!
//! Caveat on interface selection: `mdns-sd` 0.21 joins the mDNS multicast group on *every* interface that is up
//! when the daemon thread starts, before any restriction can be applied, and leaves the unselected ones as soon as
//! [`MdnsAdvertiser::start`] restricts it. The kernel announces such joins and leaves with IGMP/MLD reports, so
//! the unselected interfaces see a few membership reports (never mDNS packets). Tests therefore run in a network
//! namespace of their own.

use std::fmt;
use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use mdns_sd::{DaemonEvent, DaemonStatus, IfKind, RecvTimeoutError, ServiceDaemon, ServiceInfo};
use wifiprov_proto::endpoint::names;

/// The service type ESP devices advertised, fully qualified as `mdns-sd` wants it.
pub const SERVICE_TYPE: &str = "_esp_wifi_prov._tcp.local.";

/// The instance name ESP devices advertised.
pub const DEFAULT_INSTANCE: &str = "Wi-Fi Provisioning Service";

/// TXT key naming the path of the `proto-ver` endpoint.
pub const TXT_VERSION_ENDPOINT: &str = "version_endpoint";
/// TXT key naming the path of the `prov-session` endpoint.
pub const TXT_SESSION_ENDPOINT: &str = "session_endpoint";
/// TXT key naming the path of the `prov-config` endpoint.
pub const TXT_CONFIG_ENDPOINT: &str = "config_endpoint";

/// How long [`MdnsAdvertiser::shutdown`] waits for the daemon thread to confirm that it sent its goodbyes.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// The suffix every mDNS host name must carry, including the root label.
const LOCAL_SUFFIX: &str = ".local.";

/// Which interfaces the advertisement is sent (and answered) on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interfaces {
    /// IPv4 loopback only. For tests: nothing leaves the host.
    Loopback,
    /// Only the named interfaces, for example the SoftAP interface. Production default: provisioning clients sit
    /// on the SoftAP, and the device's uplink should not learn about the provisioning service.
    Named(Vec<String>),
    /// Every interface that is up, loopback included (the `mdns-sd` default).
    All,
}

/// What to advertise besides the port and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsConfig {
    /// The service instance name; [`DEFAULT_INSTANCE`] matches ESP.
    pub instance: String,
    /// The host name the SRV record points at. Must end in `.local.`; `.local` without the root dot is
    /// accepted and completed.
    pub hostname: String,
    /// Where to advertise.
    pub interfaces: Interfaces,
}

impl MdnsConfig {
    /// A config with ESP's instance name.
    pub fn new(hostname: impl Into<String>, interfaces: Interfaces) -> Self {
        Self { instance: DEFAULT_INSTANCE.to_owned(), hostname: hostname.into(), interfaces }
    }
}

/// Why advertising could not start or stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MdnsError {
    /// The host name does not end in `.local.`, or has nothing before it.
    #[error("mdns host name {hostname:?} must be a non-empty name ending in \".local.\"")]
    InvalidHostname {
        /// The host name as configured.
        hostname: String,
    },
    /// The instance name is empty.
    #[error("mdns instance name is empty")]
    EmptyInstance,
    /// [`Interfaces::Named`] with no names would advertise nowhere.
    #[error("mdns interface list is empty")]
    NoInterfaces,
    /// The `mdns-sd` daemon thread could not be created.
    #[error("failed to start the mdns daemon")]
    Daemon {
        /// The underlying `mdns-sd` error.
        #[source]
        source: mdns_sd::Error,
    },
    /// The daemon refused an interface selection or socket option.
    #[error("failed to restrict the mdns daemon to {interfaces:?}")]
    SelectInterfaces {
        /// The selection that was being applied.
        interfaces: Interfaces,
        /// The underlying `mdns-sd` error.
        #[source]
        source: mdns_sd::Error,
    },
    /// The service record could not be built or queued, for example an over-long TXT record.
    #[error("failed to register mdns service {instance:?} ({service_type}) on port {port}")]
    Register {
        /// The instance name.
        instance: String,
        /// The service type.
        service_type: &'static str,
        /// The advertised port.
        port: u16,
        /// The underlying `mdns-sd` error.
        #[source]
        source: mdns_sd::Error,
    },
    /// The daemon could not be asked to shut down.
    #[error("failed to shut down the mdns daemon for {fullname}")]
    Shutdown {
        /// The full service name that was advertised.
        fullname: String,
        /// The underlying `mdns-sd` error.
        #[source]
        source: mdns_sd::Error,
    },
    /// The daemon did not confirm the shutdown in time, so the goodbye packets may not have gone out.
    #[error("mdns daemon for {fullname} did not confirm shutdown within {timeout:?}")]
    ShutdownTimeout {
        /// The full service name that was advertised.
        fullname: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The daemon thread went away without confirming the shutdown.
    #[error("mdns daemon for {fullname} exited without confirming shutdown")]
    ShutdownUnconfirmed {
        /// The full service name that was advertised.
        fullname: String,
    },
}

/// An advertised `_esp_wifi_prov._tcp` service. Dropping it shuts the daemon down without waiting; prefer
/// [`MdnsAdvertiser::shutdown`], which confirms that the goodbye packets went out.
pub struct MdnsAdvertiser {
    /// `None` once [`shutdown`](Self::shutdown) has taken it, so `Drop` does not shut down twice.
    daemon: Option<ServiceDaemon>,
    fullname: String,
}

impl fmt::Debug for MdnsAdvertiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `ServiceDaemon` has no `Debug`; whether it is still running is what matters.
        f.debug_struct("MdnsAdvertiser")
            .field("fullname", &self.fullname)
            .field("running", &self.daemon.is_some())
            .finish_non_exhaustive()
    }
}

impl MdnsAdvertiser {
    /// Starts an `mdns-sd` daemon restricted to `config.interfaces` and registers the ESP service on `port`.
    ///
    /// `addresses` are the A/AAAA records; they should belong to the selected interfaces, since `mdns-sd` only
    /// announces an address on an interface whose subnet contains it. An empty slice lets `mdns-sd` fill in
    /// (and keep up to date) the addresses of the selected interfaces.
    ///
    /// Returns once the registration is queued; probing and announcing run on the daemon thread, and their
    /// failures (and name-conflict renames) are logged through `tracing`.
    pub fn start(config: &MdnsConfig, port: u16, addresses: &[IpAddr]) -> Result<Self, MdnsError> {
        let hostname = normalize_hostname(&config.hostname)?;
        if config.instance.is_empty() {
            return Err(MdnsError::EmptyInstance);
        }
        if matches!(&config.interfaces, Interfaces::Named(names) if names.is_empty()) {
            return Err(MdnsError::NoInterfaces);
        }

        let register_error = |source| MdnsError::Register {
            instance: config.instance.clone(),
            service_type: SERVICE_TYPE,
            port,
            source,
        };
        // Built before the daemon exists so a bad record cannot leave a daemon thread behind.
        let mut info =
            ServiceInfo::new(SERVICE_TYPE, &config.instance, &hostname, addresses, port, txt_records().as_slice())
                .map_err(register_error)?;
        if addresses.is_empty() {
            info = info.enable_addr_auto();
        }
        let fullname = info.get_fullname().to_owned();

        let daemon = ServiceDaemon::new().map_err(|source| MdnsError::Daemon { source })?;
        // `ServiceDaemon` is a cloneable handle. From here on `advertiser` owns one, so every early return shuts
        // the daemon thread down through `Drop`.
        let advertiser = Self { daemon: Some(daemon.clone()), fullname };

        restrict_interfaces(&daemon, &config.interfaces)
            .map_err(|source| MdnsError::SelectInterfaces { interfaces: config.interfaces.clone(), source })?;
        // Subscribed before registering so a failure of this registration cannot be missed.
        match daemon.monitor() {
            Ok(events) => spawn_event_logger(events, advertiser.fullname.clone()),
            Err(e) => tracing::warn!(error = %e, "mdns daemon events will not be logged"),
        }
        daemon.register(info).map_err(register_error)?;
        tracing::info!(
            service = %advertiser.fullname,
            host = %hostname,
            port,
            interfaces = ?config.interfaces,
            "advertising provisioning service over mdns"
        );
        Ok(advertiser)
    }

    /// The full DNS-SD name being advertised, e.g. `Wi-Fi Provisioning Service._esp_wifi_prov._tcp.local.`.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Withdraws the service: the daemon sends goodbye packets (TTL 0) on every selected interface and exits.
    /// Blocks for at most [`SHUTDOWN_TIMEOUT`].
    pub fn shutdown(mut self) -> Result<(), MdnsError> {
        let Some(daemon) = self.daemon.take() else {
            return Ok(());
        };
        let fullname = std::mem::take(&mut self.fullname);
        let confirmation =
            daemon.shutdown().map_err(|source| MdnsError::Shutdown { fullname: fullname.clone(), source })?;
        // The daemon sends its goodbyes before it reports `Shutdown`, so waiting for it means they went out.
        match confirmation.recv_timeout(SHUTDOWN_TIMEOUT) {
            Ok(DaemonStatus::Shutdown) => {
                tracing::info!(service = %fullname, "withdrew mdns advertisement");
                Ok(())
            }
            Ok(_) | Err(RecvTimeoutError::Disconnected) => Err(MdnsError::ShutdownUnconfirmed { fullname }),
            Err(RecvTimeoutError::Timeout) => Err(MdnsError::ShutdownTimeout { fullname, timeout: SHUTDOWN_TIMEOUT }),
        }
    }
}

impl Drop for MdnsAdvertiser {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            // Drop must not block; the daemon thread still sends the goodbyes on its own.
            if let Err(e) = daemon.shutdown() {
                tracing::warn!(service = %self.fullname, error = %e, "mdns daemon did not take the shutdown");
            }
        }
    }
}

/// ESP's three TXT records: each endpoint's HTTP path.
fn txt_records() -> Vec<(&'static str, String)> {
    vec![
        (TXT_VERSION_ENDPOINT, format!("/{}", names::PROTO_VER)),
        (TXT_SESSION_ENDPOINT, format!("/{}", names::PROV_SESSION)),
        (TXT_CONFIG_ENDPOINT, format!("/{}", names::PROV_CONFIG)),
    ]
}

/// Checks the host name the way `mdns-sd` will, so the caller gets a typed error instead of a string one.
fn normalize_hostname(hostname: &str) -> Result<String, MdnsError> {
    let full = if hostname.ends_with(LOCAL_SUFFIX) { hostname.to_owned() } else { format!("{hostname}.") };
    let label = full.strip_suffix(LOCAL_SUFFIX).unwrap_or_default();
    // 255 is the DNS limit on a whole name, which `mdns-sd` enforces too.
    if label.is_empty() || label.ends_with('.') || full.len() > 255 {
        return Err(MdnsError::InvalidHostname { hostname: hostname.to_owned() });
    }
    Ok(full)
}

/// Applies `interfaces` to a fresh daemon. Commands are processed in order, so the restriction is in force
/// before any later `register` or `browse` sends a packet.
fn restrict_interfaces(daemon: &ServiceDaemon, interfaces: &Interfaces) -> Result<(), mdns_sd::Error> {
    match interfaces {
        Interfaces::All => Ok(()),
        Interfaces::Loopback => {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::LoopbackV4)?;
            // Sender and receiver share the host, so our own multicast must loop back to us.
            daemon.set_multicast_loop_v4(true)
        }
        Interfaces::Named(names) => {
            daemon.disable_interface(IfKind::All)?;
            let kinds: Vec<IfKind> = names.iter().map(|name| IfKind::Name(name.clone())).collect();
            daemon.enable_interface(kinds)
        }
    }
}

/// Forwards the daemon's events to the log. The thread ends when the daemon exits and drops its sender.
fn spawn_event_logger(events: mdns_sd::Receiver<DaemonEvent>, fullname: String) {
    let spawned = thread::Builder::new().name("mdns-events".to_owned()).spawn(move || {
        while let Ok(event) = events.recv() {
            match event {
                DaemonEvent::Error(e) => tracing::warn!(service = %fullname, error = %e, "mdns daemon error"),
                DaemonEvent::NameChange(change) => tracing::warn!(
                    service = %fullname,
                    original = %change.original,
                    new_name = %change.new_name,
                    "mdns name conflict; renamed"
                ),
                DaemonEvent::Announce(name, addrs) => {
                    tracing::debug!(service = %name, addrs = %addrs, "mdns announced")
                }
                other => tracing::trace!(service = %fullname, event = ?other, "mdns daemon event"),
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "mdns daemon events will not be logged");
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::process::Command;
    use std::time::Instant;

    use mdns_sd::{Receiver, ResolvedService, ServiceEvent};

    use super::*;

    const PORT: u16 = 18_080;
    const HOSTNAME: &str = "wifiprov-mdns-test.local.";
    /// Generous: resolution takes about a second (mdns-sd probes before it announces).
    const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
    /// A goodbye sets the record's TTL to one second, so the browser reports the removal about a second later.
    const REMOVAL_TIMEOUT: Duration = Duration::from_secs(5);
    /// Set for the re-executed test binary, so that it refuses to recurse.
    const NETNS_MARKER: &str = "WIFIPROVD_MDNS_TEST_IN_PRIVATE_NETNS";

    #[test]
    fn hostname_needs_local_suffix() {
        assert_eq!(normalize_hostname("prov.local.").ok().as_deref(), Some("prov.local."));
        assert_eq!(normalize_hostname("prov.local").ok().as_deref(), Some("prov.local."));
        for bad in ["prov", "prov.lan.", ".local.", "local.", "prov..local.", ""] {
            assert!(matches!(normalize_hostname(bad), Err(MdnsError::InvalidHostname { .. })), "{bad:?} was accepted");
        }
    }

    // These fail before a daemon exists, so they are safe outside a network namespace.
    #[test]
    fn rejects_bad_config_before_starting_a_daemon() {
        let no_names = MdnsConfig::new(HOSTNAME, Interfaces::Named(Vec::new()));
        assert!(matches!(MdnsAdvertiser::start(&no_names, PORT, &[]), Err(MdnsError::NoInterfaces)));

        let bad_host = MdnsConfig::new("prov.lan", Interfaces::Loopback);
        assert!(matches!(
            MdnsAdvertiser::start(&bad_host, PORT, &[]),
            Err(MdnsError::InvalidHostname { hostname }) if hostname == "prov.lan"
        ));

        let mut no_instance = MdnsConfig::new(HOSTNAME, Interfaces::Loopback);
        no_instance.instance.clear();
        assert!(matches!(MdnsAdvertiser::start(&no_instance, PORT, &[]), Err(MdnsError::EmptyInstance)));
    }

    #[test]
    fn txt_records_are_esp_endpoint_paths() {
        let records = txt_records();
        let expected = [
            ("version_endpoint", "/proto-ver"),
            ("session_endpoint", "/prov-session"),
            ("config_endpoint", "/prov-config"),
        ];
        assert_eq!(records.len(), expected.len());
        for ((key, value), (want_key, want_value)) in records.iter().zip(expected) {
            assert_eq!((*key, value.as_str()), (want_key, want_value));
        }
    }

    /// Advertises and browses over real multicast on `lo`.
    ///
    /// `mdns-sd` joins the mDNS group on every interface that is up before it can be restricted (see the module
    /// docs), which would put IGMP/MLD reports on the host's real interfaces. So the scenario runs only where `lo`
    /// is the sole interface: directly if the test already runs in such a namespace, otherwise in this test binary
    /// re-executed under `unshare --net`.
    #[test]
    fn advertises_esp_service_on_loopback() {
        let others = non_loopback_interfaces();
        if others.is_empty() {
            resolve_and_withdraw(Interfaces::Loopback);
            // The production selection, by name, on the only interface there is.
            resolve_and_withdraw(Interfaces::Named(vec!["lo".to_owned()]));
            return;
        }
        assert!(
            std::env::var_os(NETNS_MARKER).is_none(),
            "re-executed for a private network namespace but still see {others:?}; refusing to start mdns"
        );
        rerun_in_private_netns("advertises_esp_service_on_loopback");
    }

    /// Interfaces other than `lo` in this process's network namespace.
    fn non_loopback_interfaces() -> Vec<String> {
        let dev = std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev is readable on Linux");
        // Two header lines, then `name: counters…` per interface.
        dev.lines()
            .skip(2)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, _)| name.trim().to_owned())
            .filter(|name| name != "lo")
            .collect()
    }

    /// Runs the test `name` of this module again in a new network namespace with `lo` up. Plain `--net` needs
    /// root; `--map-root-user` adds a user namespace so that it also works unprivileged where the kernel allows.
    fn rerun_in_private_netns(name: &str) {
        let exe = std::env::current_exe().expect("the test binary knows its path");
        let module = module_path!().split_once("::").map_or(module_path!(), |(_, rest)| rest);
        let test = format!("{module}::{name}");
        let mut refusals = Vec::new();
        for unshare in [&["--net"][..], &["--net", "--map-root-user"][..]] {
            let output = Command::new("unshare")
                .args(unshare)
                .args(["sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
                .arg(&exe)
                .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                .env(NETNS_MARKER, "1")
                .output()
                .expect("util-linux `unshare` is installed");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            // The test harness prints this; its absence means we never got into the namespace.
            if !stdout.contains("running 1 test") {
                refusals.push(format!("unshare {unshare:?}: {}", stderr.trim()));
                continue;
            }
            eprintln!("{stderr}");
            assert!(
                output.status.success() && stdout.contains("1 passed"),
                "{test} failed in a private network namespace:\n{stdout}\n{stderr}"
            );
            return;
        }
        panic!("cannot create a private network namespace for {test}, refusing to use the host's: {refusals:#?}");
    }

    fn resolve_and_withdraw(interfaces: Interfaces) {
        let browser = ServiceDaemon::new().expect("browser daemon starts");
        restrict_interfaces(&browser, &Interfaces::Loopback).expect("browser restricted to loopback");
        let events = browser.browse(SERVICE_TYPE).expect("browse starts");

        let config = MdnsConfig::new(HOSTNAME, interfaces.clone());
        let started = Instant::now();
        let advertiser =
            MdnsAdvertiser::start(&config, PORT, &[IpAddr::V4(Ipv4Addr::LOCALHOST)]).expect("advertiser starts");
        let fullname = format!("{DEFAULT_INSTANCE}.{SERVICE_TYPE}");
        assert_eq!(advertiser.fullname(), fullname);

        let resolved: Box<ResolvedService> = wait_for(&events, RESOLVE_TIMEOUT, "resolution", |event| match event {
            ServiceEvent::ServiceResolved(service) if service.fullname == fullname => Some(service),
            _ => None,
        });
        eprintln!("{interfaces:?}: resolved after {:?}", started.elapsed());
        assert_eq!(resolved.ty_domain, SERVICE_TYPE);
        assert_eq!(resolved.host, HOSTNAME);
        assert_eq!(resolved.port, PORT);
        let addresses: Vec<IpAddr> = resolved.addresses.iter().map(|a| a.to_ip_addr()).collect();
        assert_eq!(addresses, [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let txt = &resolved.txt_properties;
        assert_eq!(txt.len(), 3, "{txt:?}");
        assert_eq!(txt.get_property_val_str("version_endpoint"), Some("/proto-ver"));
        assert_eq!(txt.get_property_val_str("session_endpoint"), Some("/prov-session"));
        assert_eq!(txt.get_property_val_str("config_endpoint"), Some("/prov-config"));

        let withdrawn = Instant::now();
        advertiser.shutdown().expect("advertiser shuts down");
        wait_for(&events, REMOVAL_TIMEOUT, "removal", |event| match event {
            ServiceEvent::ServiceRemoved(_, name) if name == fullname => Some(()),
            _ => None,
        });
        eprintln!("{interfaces:?}: removal seen {:?} after shutdown", withdrawn.elapsed());

        let stopped = browser.shutdown().expect("browser takes the shutdown");
        assert_eq!(stopped.recv_timeout(SHUTDOWN_TIMEOUT), Ok(DaemonStatus::Shutdown));
    }

    /// Returns the first event `pick` accepts, failing the test if none arrives within `timeout`.
    fn wait_for<T>(
        events: &Receiver<ServiceEvent>,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(ServiceEvent) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(event) => {
                    seen.push(format!("{event:?}"));
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                Err(e) => panic!("no {what} within {timeout:?} ({e}); events seen: {seen:#?}"),
            }
        }
    }
}
