//! The manager's task on a real runtime (multi-threaded, where orderings are not fixed) and the simulated radio:
//! radio actions in order, clients that cannot see each other's credentials, answers that wait for the disk.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use wifiprov_backend::{
    AccessPoint, BackendError, BoxFuture, ConnectError, ConnectRequest, LinkEvent, LinkInfo, Passphrase, ScanParams,
    Ssid, WifiBackend,
};
use wifiprov_backend_sim::SimRadio;
use wifiprov_manager::networks::{NetworkList, NetworkSecurity, SavedNetwork};
use wifiprov_manager::{
    ClientId, Credentials, Event, FailReason, JoinFirst, ManagerConfig, ProvisioningStatus, RequestError, WifiState,
};
use wifiprov_service::{NetworksFailure, Provisioner};
use wifiprov_store::NetworkStore;

/// Every wait in these tests is for an event, bounded by this.
const PATIENCE: Duration = Duration::from_secs(20);

/// The simulated radio, with every connect and disconnect written down as it starts and ends. A disconnect
/// takes a while, as on a real radio (deauthentication, the supplicant's state change), which is when a
/// connect issued after it could overtake it if the two were not queued.
#[derive(Clone)]
struct Recording {
    radio: SimRadio,
    log: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn note(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl WifiBackend for Recording {
    fn scan(&self, params: ScanParams) -> BoxFuture<'_, Result<Vec<AccessPoint>, BackendError>> {
        self.radio.scan(params)
    }

    fn connect(&self, request: ConnectRequest) -> BoxFuture<'_, Result<LinkInfo, ConnectError>> {
        Box::pin(async move {
            self.note(format!("connect {}", request.ssid));
            self.radio.connect(request).await
        })
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.note("disconnect begins".into());
            tokio::time::sleep(Duration::from_millis(30)).await;
            let result = self.radio.disconnect().await;
            self.note("disconnect ends".into());
            result
        })
    }

    fn link(&self) -> Option<LinkInfo> {
        self.radio.link()
    }

    fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.radio.subscribe()
    }
}

fn fast() -> ManagerConfig {
    ManagerConfig {
        connect_delay: Duration::from_millis(10),
        cleanup_delay: Duration::from_millis(100),
        auto_stop: wifiprov_manager::AutoStop::Disabled,
        ..ManagerConfig::default()
    }
}

fn saved(ssid: &str, passphrase: &str) -> SavedNetwork {
    let passphrase = Passphrase::new(passphrase.to_owned()).unwrap();
    SavedNetwork::new(Ssid::try_from(ssid).unwrap(), NetworkSecurity::WpaPsk, Some(passphrase)).unwrap()
}

fn credentials(ssid: &str, passphrase: &str) -> Credentials {
    Credentials {
        ssid: Ssid::try_from(ssid).unwrap(),
        passphrase: Some(Passphrase::new(passphrase.to_owned()).unwrap()),
    }
}

struct Service {
    provisioner: Provisioner,
    backend: Recording,
    dir: tempfile::TempDir,
}

fn service(saved_networks: Vec<SavedNetwork>) -> Service {
    let dir = tempfile::tempdir().unwrap();
    if !saved_networks.is_empty() {
        NetworkStore::open(dir.path()).save(&NetworkList::from_networks(8, saved_networks).unwrap()).unwrap();
    }
    let radio = SimRadio::from_toml_str(wifiprov_testkit::FAST_SCENARIO).unwrap();
    let backend = Recording { radio, log: Arc::default() };
    // No front-ends here: the requests to run them are dropped, which lets the events through at once.
    let (provisioner, _) =
        Provisioner::spawn(fast(), Arc::new(backend.clone()), NetworkStore::open(dir.path())).unwrap();
    Service { provisioner, backend, dir }
}

async fn on(provisioner: &Provisioner, ssid: &str) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let WifiState::Connected(link) = provisioner.wifi_state().await
                && link.ssid.as_bytes() == ssid.as_bytes()
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never joined {ssid}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_never_overtakes_the_connect_that_follows_it() {
    for _ in 0..5 {
        let s = service(vec![saved("home", "correct-horse"), saved("office", "office-secret")]);
        assert!(s.provisioner.start_policy().await);
        on(&s.provisioner, "home").await;
        // Removing the network the station is on: leave it, then join the next saved one.
        s.provisioner.remove_network(Ssid::try_from("home").unwrap()).await.unwrap();
        on(&s.provisioner, "office").await;
        assert_eq!(s.backend.link().unwrap().ssid.as_bytes(), b"office", "the disconnect did not undo the join");
        let log = s.backend.log();
        assert_eq!(log, ["connect home", "disconnect begins", "disconnect ends", "connect office"]);

        // Reprovisioning leaves the network; the new credentials' connect comes 10 ms later, well inside the
        // disconnect's 30 ms.
        s.provisioner.start().await.unwrap();
        s.provisioner.reprovision().await.unwrap();
        s.provisioner.set_credentials(ClientId(1), credentials("home", "correct-horse")).await.unwrap();
        s.provisioner.apply(ClientId(1)).await.unwrap();
        on(&s.provisioner, "home").await;
        let log = s.backend.log();
        assert_eq!(log[4..], ["disconnect begins", "disconnect ends", "connect home"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_in_lock_step_keep_their_credentials_apart() {
    let s = service(Vec::new());
    let (alice, bob) = (ClientId(10), ClientId(20));
    s.provisioner.start().await.unwrap();
    // Alice sends the right passphrase, Bob a wrong one, then Alice applies: the device must join with Alice's.
    s.provisioner.set_credentials(alice, credentials("home", "correct-horse")).await.unwrap();
    s.provisioner.set_credentials(bob, credentials("home", "wrong-horse")).await.unwrap();
    s.provisioner.apply(alice).await.unwrap();
    assert_eq!(s.provisioner.apply(bob).await, Err(RequestError::Busy), "one attempt at a time");
    let status = tokio::time::timeout(PATIENCE, async {
        loop {
            match s.provisioner.status(alice).await {
                ProvisioningStatus::Connecting { .. } => tokio::task::yield_now().await,
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(status, ProvisioningStatus::Connected(ref link) if link.ssid.as_bytes() == b"home"), "{status:?}");
    // Bob sees the device's station, not a result of his own.
    assert!(matches!(s.provisioner.status(bob).await, ProvisioningStatus::Connected(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_change_is_on_disk_when_it_is_answered() {
    let s = service(Vec::new());
    let added = s.provisioner.add_network(saved("attic", "attic-pass"), None, JoinFirst::No).await.unwrap();
    assert_eq!((added.index, added.updated), (0, false));
    let stored = NetworkStore::open(s.dir.path()).load().unwrap();
    assert_eq!(stored.get_at(0).unwrap().ssid().as_bytes(), b"attic");
    // A join first: answered with the link, and saved.
    let added = s.provisioner.add_network(saved("home", "correct-horse"), Some(0), JoinFirst::Yes).await.unwrap();
    assert_eq!(added.link.unwrap().ssid.as_bytes(), b"home");
    let stored = NetworkStore::open(s.dir.path()).load().unwrap();
    assert_eq!(stored.get_at(0).unwrap().ssid().as_bytes(), b"home");
    assert!(s.provisioner.flush().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_is_awaited_not_polled() {
    let s = service(Vec::new());
    assert_eq!(s.provisioner.start_scan(ScanParams::default()).await, Err(RequestError::NotServing));
    s.provisioner.start().await.unwrap();
    s.provisioner.start_scan(ScanParams::default()).await.unwrap();
    assert!(s.provisioner.wait_scan().await);
    let scan = s.provisioner.scan().await;
    assert!(scan.finished && !scan.running);
    let names: Vec<&[u8]> = scan.results.iter().map(|ap| ap.ssid.as_ref().unwrap().as_bytes()).collect();
    assert_eq!(names, [&b"home"[..], b"office", b"flaky", b"cafe", b"attic"]);
}

/// Polls `client`'s status until the attempt is no longer under way; fails the test if it is ever reported
/// connected before `saved` says the network is on disk.
async fn outcome(provisioner: &Provisioner, client: ClientId, saved: impl Fn() -> bool) -> ProvisioningStatus {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match provisioner.status(client).await {
                ProvisioningStatus::Connecting { .. } => tokio::task::yield_now().await,
                connected @ ProvisioningStatus::Connected(_) => {
                    assert!(saved(), "reported connected before the network was on disk");
                    return connected;
                }
                other => return other,
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioning_is_reported_connected_only_once_its_network_is_on_disk() {
    for _ in 0..5 {
        let s = service(Vec::new());
        let mut events = s.provisioner.subscribe();
        s.provisioner.start().await.unwrap();
        s.provisioner.set_credentials(ClientId(1), credentials("home", "correct-horse")).await.unwrap();
        s.provisioner.apply(ClientId(1)).await.unwrap();
        let on_disk = || NetworkStore::open(s.dir.path()).load().is_ok_and(|list| list.len() == 1);
        let status = outcome(&s.provisioner, ClientId(1), on_disk).await;
        assert!(matches!(status, ProvisioningStatus::Connected(_)), "{status:?}");
        // CredSuccess too comes only after the write.
        loop {
            match events.recv().await.unwrap() {
                Event::CredSuccess(_) => break,
                Event::CredFail(reason) => panic!("failed: {reason:?}"),
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioning_whose_network_cannot_be_saved_is_reported_as_failed() {
    // A state the store refuses to write over (here, a directory where networks.json belongs).
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("networks.json")).unwrap();
    let radio = SimRadio::from_toml_str(wifiprov_testkit::FAST_SCENARIO).unwrap();
    let (provisioner, _) = Provisioner::spawn(fast(), Arc::new(radio), NetworkStore::open(dir.path())).unwrap();
    let mut events = provisioner.subscribe();
    provisioner.start().await.unwrap();
    provisioner.set_credentials(ClientId(1), credentials("home", "correct-horse")).await.unwrap();
    provisioner.apply(ClientId(1)).await.unwrap();
    let status = outcome(&provisioner, ClientId(1), || false).await;
    assert_eq!(status, ProvisioningStatus::Failed(FailReason::NotSaved));
    loop {
        match events.recv().await.unwrap() {
            Event::CredFail(FailReason::NotSaved) => break,
            Event::CredSuccess(_) => panic!("success announced for a network that was not saved"),
            _ => {}
        }
    }
    // Nothing is kept that the disk does not hold, and the directory is as it was.
    assert!(provisioner.networks().await.is_empty());
    assert!(dir.path().join("networks.json").is_dir());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // The saved-network operations are answered as failures too.
    let added = provisioner.add_network(saved("attic", "attic-pass"), None, JoinFirst::No).await;
    assert_eq!(added, Err(NetworksFailure::NotPersisted));
    let removed = provisioner.remove_network(Ssid::try_from("attic").unwrap()).await;
    assert_eq!(removed, Err(NetworksFailure::NotPersisted));
    assert!(!provisioner.flush().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_starts_failing_later_fails_the_provisioning_and_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let radio = SimRadio::from_toml_str(wifiprov_testkit::FAST_SCENARIO).unwrap();
    let (provisioner, _) = Provisioner::spawn(fast(), Arc::new(radio), NetworkStore::open(&state)).unwrap();
    provisioner.add_network(saved("attic", "attic-pass"), None, JoinFirst::No).await.unwrap();
    provisioner.add_network(saved("cafe", "cafe-pass-1"), None, JoinFirst::No).await.unwrap();
    assert_eq!(NetworkStore::open(&state).load().unwrap().len(), 2);
    // The directory goes away and a file takes its place: every write fails from now on.
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::write(&state, b"in the way").unwrap();

    let moved = provisioner.move_network(Ssid::try_from("cafe").unwrap(), 0).await;
    assert_eq!(moved, Err(NetworksFailure::NotPersisted));
    provisioner.start().await.unwrap();
    provisioner.set_credentials(ClientId(1), credentials("home", "correct-horse")).await.unwrap();
    provisioner.apply(ClientId(1)).await.unwrap();
    let status = outcome(&provisioner, ClientId(1), || false).await;
    assert_eq!(status, ProvisioningStatus::Failed(FailReason::NotSaved));
    assert_eq!(std::fs::read(&state).unwrap(), b"in the way");
}
