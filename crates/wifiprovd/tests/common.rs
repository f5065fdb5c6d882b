//! A daemon in the test process and a client for it.

/// Declares a daemon test that runs twice: on the current-thread runtime and on the multi-threaded one, where
/// tasks really run in parallel and orderings that a single thread always runs one way can come out the other.
macro_rules! daemon_test {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() $body

            #[tokio::test]
            async fn current_thread() {
                body().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multi_thread() {
                body().await
            }
        }
    };
}
pub(crate) use daemon_test;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use wifiprov_backend_sim::SimRadio;
use wifiprov_client::{Client, HttpClient, PollPolicy};
use wifiprov_manager::{Event, ManagerConfig};
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{ClientSecurity, DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier};
use wifiprov_store::NetworkStore;
use wifiprov_testkit::SeededRandom;
use wifiprov_transport_http::HttpConfig;
use wifiprovd::frontend::{Frontend, HttpFrontend};
use wifiprovd::service::{ProvisioningService, ServiceConfig};

/// Fast radio: every duration is a few milliseconds of real time.
pub(crate) const SCENARIO: &str = wifiprov_testkit::FAST_SCENARIO;

pub(crate) const USER: &str = "wifiprov";
pub(crate) const PASSWORD: &str = "abcd1234";
pub(crate) const POP: &str = "abcd1234";

pub(crate) fn fast_manager() -> ManagerConfig {
    ManagerConfig {
        connect_delay: Duration::from_millis(10),
        cleanup_delay: Duration::from_millis(100),
        ..ManagerConfig::default()
    }
}

pub(crate) fn sec2(patch: Sec2Patch) -> DeviceSecurity {
    let creds =
        generate_salt_verifier(USER.as_bytes(), &Password::from(PASSWORD), 16, &mut SeededRandom::new(9)).unwrap();
    DeviceSecurity::sec2(Arc::new(Sec2Verifier::new(&creds.salt, &creds.verifier).unwrap()), patch)
}

pub(crate) fn sec1() -> DeviceSecurity {
    DeviceSecurity::sec1(ProofOfPossession::from(POP))
}

pub(crate) fn client_security(device: &DeviceSecurity) -> ClientSecurity {
    match device.version().number() {
        0 => ClientSecurity::sec0(),
        1 => ClientSecurity::sec1(ProofOfPossession::from(POP)),
        _ => ClientSecurity::sec2(
            USER,
            Password::from(PASSWORD),
            if device.patch_level() == 1 { Sec2Patch::Counter } else { Sec2Patch::Legacy },
        ),
    }
}

pub(crate) struct Daemon {
    pub(crate) service: ProvisioningService,
    /// Subscribed before the service started, so it sees every event.
    pub(crate) events: tokio::sync::broadcast::Receiver<Event>,
    pub(crate) addr: SocketAddr,
    pub(crate) radio: SimRadio,
    pub(crate) security: DeviceSecurity,
    pub(crate) state_dir: tempfile::TempDir,
}

pub(crate) struct Setup {
    pub(crate) manager: ManagerConfig,
    pub(crate) custom_endpoint: Option<&'static str>,
    pub(crate) state_dir: Option<tempfile::TempDir>,
    /// Networks in the store before the service starts: (SSID, passphrase), highest priority first.
    pub(crate) saved: Vec<(&'static str, &'static str)>,
    /// Start provisioning at once (otherwise only the connection policy runs, with a loopback fallback).
    pub(crate) open: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self { manager: fast_manager(), custom_endpoint: None, state_dir: None, saved: Vec::new(), open: true }
    }
}

fn save_networks(dir: &std::path::Path, saved: &[(&str, &str)]) {
    use wifiprov_backend::{Passphrase, Ssid};
    use wifiprov_manager::networks::{NetworkList, NetworkSecurity, SavedNetwork};
    let networks = saved
        .iter()
        .map(|(ssid, pass)| {
            let ssid = Ssid::try_from(*ssid).unwrap();
            if pass.is_empty() {
                SavedNetwork::open(ssid)
            } else {
                let pass = Passphrase::new((*pass).to_owned()).unwrap();
                SavedNetwork::new(ssid, NetworkSecurity::WpaPsk, Some(pass)).unwrap()
            }
        })
        .collect();
    NetworkStore::open(dir).save(&NetworkList::from_networks(8, networks).unwrap()).unwrap();
}

pub(crate) async fn start(security: DeviceSecurity, setup: Setup) -> Daemon {
    let radio = SimRadio::from_toml_str(SCENARIO).unwrap();
    let state_dir = setup.state_dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    if !setup.saved.is_empty() {
        save_networks(state_dir.path(), &setup.saved);
    }
    let config = ServiceConfig { manager: setup.manager, ..ServiceConfig::default() };
    let service =
        ProvisioningService::new(config, Arc::new(radio.clone()), NetworkStore::open(state_dir.path())).unwrap();
    let events = service.subscribe();
    if let Some(name) = setup.custom_endpoint {
        service.create_endpoint(name).await.unwrap();
    }
    let addr = if setup.open {
        let listener = wifiprov_transport_http::listen(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        service.start_provisioning(security.clone(), http(listener)).await.unwrap();
        addr
    } else {
        // Port 0: a reopen binds a fresh loopback port; `service.local_addr()` finds it.
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let fallback: Vec<Arc<dyn Frontend>> = vec![Arc::new(HttpFrontend::at(addr, HttpConfig::default()))];
        service.set_fallback(security.clone(), fallback).await;
        addr
    };
    Daemon { service, events, addr, radio, security, state_dir }
}

impl Daemon {
    /// A client with an established session.
    pub(crate) async fn client(&self) -> Client<HttpClient> {
        self.client_at(self.addr).await
    }

    /// A client with an established session to the transport at `addr`.
    pub(crate) async fn client_at(&self, addr: SocketAddr) -> Client<HttpClient> {
        let mut client = Client::new(HttpClient::connect(addr).await.unwrap());
        client.version().await.unwrap();
        client.establish(client_security(&self.security), &mut SeededRandom::new(rand_seed())).await.unwrap();
        client
    }
}

/// HTTP on `listener`, as the only front-end.
pub(crate) fn http(listener: tokio::net::TcpListener) -> Vec<Arc<dyn Frontend>> {
    vec![Arc::new(HttpFrontend::bound(listener, HttpConfig::default()).unwrap())]
}

pub(crate) fn rand_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(100);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(crate) fn poll() -> PollPolicy {
    PollPolicy { initial: Duration::from_millis(5), max: Duration::from_millis(50), deadline: Duration::from_secs(20) }
}

/// Waits for an event matching `want`, failing after a deadline.
pub(crate) async fn wait_event(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    want: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = events.recv().await.unwrap();
            if want(&event) {
                return event;
            }
        }
    })
    .await
    .expect("event did not arrive in time")
}
