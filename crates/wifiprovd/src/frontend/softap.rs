//! SoftAP provisioning, as ESP's: the device raises its own access point (named after the service, WPA2 with the
//! service key or open) and serves protocomm over HTTP at `192.168.4.1:80` on it, where Espressif's apps and
//! esp_prov look. The access point runs on a second interface of the station's radio, so the station can scan
//! and join while phones stay connected; it goes down with the front-end (at the end of provisioning), after the
//! phone has read the outcome.
//!
//! A radio that cannot run an access point beside its station (its interface combinations say so), or a
//! SoftAP interface named the same as the station's, gets the access point on the station's interface instead:
//! the networks in range are scanned for first, each join takes the access point down, and one that fails
//! raises it again. Phones lose the access point during every attempt and cannot read a success; BLE suits such
//! radios better, and the log says so.

use std::net::SocketAddr;
use std::sync::Arc;

use wifiprov_backend_nm::{
    HotspotConfig, NetworkManager, ap_beside_station_supported, ensure_ap_interface, remove_ap_interface,
};
use wifiprov_transport_http::HttpConfig;

use super::{BoxFuture, Frontend, FrontendError, HttpFrontend, Running, Serve};

/// The device's address on its access point: where ESP's apps connect (port [`SOFTAP_PORT`]).
pub const SOFTAP_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 168, 4, 1);
/// The HTTP port on the access point.
pub const SOFTAP_PORT: u16 = 80;

/// The provisioning access point with HTTP on it.
#[derive(Debug)]
pub struct SoftApFrontend {
    nm: Arc<NetworkManager>,
    /// The access point; its interface is made on the station's radio when missing.
    hotspot: HotspotConfig,
    http: HttpFrontend,
}

impl SoftApFrontend {
    /// An access point `hotspot` (its interface is made beside `nm`'s station when it does not exist), serving
    /// HTTP on its address, port 80.
    pub fn new(nm: Arc<NetworkManager>, hotspot: HotspotConfig) -> Self {
        let address = SocketAddr::new(hotspot.address.into(), SOFTAP_PORT);
        Self { nm, hotspot, http: HttpFrontend::at(address, HttpConfig::default()) }
    }

    /// Where the access point runs: the configured interface, or the station's own when it is named, or when the
    /// radio cannot run an access point beside its station.
    async fn interface(&self) -> String {
        let station = self.nm.interface();
        if self.hotspot.interface == station {
            return self.hotspot.interface.clone();
        }
        match ap_beside_station_supported(station).await {
            Ok(true) => self.hotspot.interface.clone(),
            Ok(false) => {
                tracing::warn!(
                    %station,
                    "this radio cannot run an access point beside its station, so the access point runs on \
                     {station} itself; phones lose it while the device tries a network (BLE provisioning does not)"
                );
                station.to_owned()
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read what the radio allows; trying a second interface");
                self.hotspot.interface.clone()
            }
        }
    }
}

impl Frontend for SoftApFrontend {
    fn describe(&self) -> String {
        format!("softap {} on {} ({})", self.hotspot.ssid, self.hotspot.interface, self.http.describe())
    }

    fn start<'a>(&'a self, serve: &'a Serve) -> BoxFuture<'a, Result<Box<dyn Running>, FrontendError>> {
        Box::pin(async move {
            let interface = self.interface().await;
            let station = self.nm.interface();
            let made = interface != station
                && ensure_ap_interface(station, &interface).await.map_err(FrontendError::ApInterface)?;
            let config = HotspotConfig { interface: interface.clone(), ..self.hotspot.clone() };
            let hotspot = match self.nm.start_hotspot(&config).await {
                Ok(hotspot) => hotspot,
                Err(error) => {
                    take_down(None, made.then_some(interface.as_str())).await;
                    return Err(FrontendError::AccessPoint(error));
                }
            };
            match self.http.start(serve).await {
                Ok(http) => {
                    let made = made.then_some(interface);
                    Ok(Box::new(SoftApRunning { http, hotspot, made }) as Box<dyn Running>)
                }
                Err(error) => {
                    // Nothing of it is left running.
                    take_down(Some(hotspot), made.then_some(interface.as_str())).await;
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
