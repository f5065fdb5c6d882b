//! What the daemon benchmarks share: the security 2 credentials of both sides and a device serving HTTP on
//! loopback.
#![allow(dead_code, reason = "each benchmark uses a part of this module")]

use std::net::SocketAddr;
use std::sync::Arc;

use wifiprov_backend_sim::SimRadio;
use wifiprov_manager::ManagerConfig;
use wifiprov_proto::secret::Password;
use wifiprov_proto::security::{ClientSecurity, DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier};
use wifiprov_store::NetworkStore;
use wifiprov_testkit::SeededRandom;
use wifiprov_transport_http::HttpConfig;
use wifiprovd::frontend::{Frontend, HttpFrontend};
use wifiprovd::service::{ProvisioningService, ServiceConfig};

pub(crate) fn security() -> DeviceSecurity {
    let creds = generate_salt_verifier(b"wifiprov", &Password::from("abcd1234"), 16, &mut SeededRandom::new(1))
        .expect("credentials");
    DeviceSecurity::sec2(
        Arc::new(Sec2Verifier::new(&creds.salt, &creds.verifier).expect("verifier")),
        Sec2Patch::Counter,
    )
}

pub(crate) fn client_security() -> ClientSecurity {
    ClientSecurity::sec2("wifiprov", Password::from("abcd1234"), Sec2Patch::Counter)
}

/// A provisioning service on `scenario`'s simulated radio, serving HTTP on a loopback port; its saved networks go
/// to `dir`.
pub(crate) async fn device(
    scenario: &str,
    manager: ManagerConfig,
    dir: &std::path::Path,
) -> (ProvisioningService, SocketAddr) {
    let radio = SimRadio::from_toml_str(scenario).expect("scenario");
    let service = ProvisioningService::new(
        ServiceConfig { manager, ..ServiceConfig::default() },
        Arc::new(radio),
        NetworkStore::open(dir),
    )
    .expect("service");
    let listener = wifiprov_transport_http::listen(([127, 0, 0, 1], 0).into()).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let http: Vec<Arc<dyn Frontend>> =
        vec![Arc::new(HttpFrontend::bound(listener, HttpConfig::default()).expect("listener"))];
    service.start_provisioning(security(), http).await.expect("start");
    (service, addr)
}
