//! SoftAP provisioning, as ESP's: the device raises its own access point (named after the service, WPA2 with the
//! service key or open) and serves protocomm over HTTP at `192.168.4.1:80` on it, where Espressif's apps and
//! esp_prov look. The access point runs on a second interface of the station's radio, so the station can scan
//! and join while phones stay connected; it goes down with the front-end (at the end of provisioning), after the
//! phone has read the outcome.

use std::net::SocketAddr;
use std::sync::Arc;

use wifiprov_backend_nm::{HotspotConfig, NetworkManager, ensure_ap_interface, remove_ap_interface};
use wifiprov_transport_http::HttpConfig;

use super::{BoxFuture, Frontend, FrontendError, HttpFrontend, Running, Serve};

/// The access point's address and port: what ESP's apps connect to.
pub const SOFTAP_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 4, 1)), 80);

/// The provisioning access point with HTTP on it.
#[derive(Debug)]
pub struct SoftApFrontend {
    nm: Arc<NetworkManager>,
    /// The access point's interface, made on the station's radio when missing.
    interface: String,
    hotspot: HotspotConfig,
    http: HttpFrontend,
}

impl SoftApFrontend {
    /// An access point `hotspot` (its interface is made beside `nm`'s station when it does not exist), serving
    /// HTTP on its address, port 80.
    pub fn new(nm: Arc<NetworkManager>, hotspot: HotspotConfig) -> Self {
        let address = SocketAddr::new(hotspot.address.into(), SOFTAP_ADDRESS.port());
        Self {
            nm,
            interface: hotspot.interface.clone(),
            hotspot,
            http: HttpFrontend::at(address, HttpConfig::default()),
        }
    }
}

impl Frontend for SoftApFrontend {
    fn describe(&self) -> String {
        format!("softap {} on {} ({})", self.hotspot.ssid, self.interface, self.http.describe())
    }

    fn start<'a>(&'a self, serve: &'a Serve) -> BoxFuture<'a, Result<Box<dyn Running>, FrontendError>> {
        Box::pin(async move {
            let made =
                ensure_ap_interface(self.nm.interface(), &self.interface).await.map_err(FrontendError::ApInterface)?;
            let hotspot = match self.nm.start_hotspot(&self.hotspot).await {
                Ok(hotspot) => hotspot,
                Err(error) => {
                    take_down(None, made.then_some(self.interface.as_str())).await;
                    return Err(FrontendError::AccessPoint(error));
                }
            };
            match self.http.start(serve).await {
                Ok(http) => {
                    let made = made.then(|| self.interface.clone());
                    Ok(Box::new(SoftApRunning { http, hotspot, made }) as Box<dyn Running>)
                }
                Err(error) => {
                    // Nothing of it is left running.
                    take_down(Some(hotspot), made.then_some(self.interface.as_str())).await;
                    Err(error)
                }
            }
        })
    }
}

struct SoftApRunning {
    http: Box<dyn Running>,
    hotspot: wifiprov_backend_nm::Hotspot,
    /// The interface, when this front-end made it (and so removes it).
    made: Option<String>,
}

/// Takes the access point down and removes its interface if this front-end made it; failures are logged (the
/// front-end is going either way).
async fn take_down(hotspot: Option<wifiprov_backend_nm::Hotspot>, made: Option<&str>) {
    if let Some(hotspot) = hotspot {
        let interface = hotspot.interface().to_owned();
        match hotspot.stop().await {
            Ok(()) => tracing::info!(%interface, "access point down"),
            Err(error) => tracing::warn!(%interface, %error, "cannot take the access point down"),
        }
    }
    if let Some(name) = made
        && let Err(error) = remove_ap_interface(name).await
    {
        tracing::warn!(interface = %name, %error, "cannot remove the access point interface");
    }
}

impl Running for SoftApRunning {
    fn address(&self) -> Option<SocketAddr> {
        self.http.address()
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        let Self { http, hotspot, made } = *self;
        Box::pin(async move {
            http.stop().await;
            take_down(Some(hotspot), made.as_deref()).await;
        })
    }
}
