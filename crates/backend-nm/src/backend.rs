//! [`NetworkManager`]: the [`WifiBackend`] that drives one Wi-Fi device through NetworkManager.
//!
//! One background task (the monitor) is the only reader of the device's `StateChanged` signal. It records the
//! device state, hands every change to the join in progress (so a join sees its own failure reason, which is
//! carried by no other signal), and turns the end of an established link into [`LinkEvent::LinkLost`]. Link
//! changes (joins and disconnects) take turns; a newer one supersedes the one in flight.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::AbortHandle;
use wifiprov_backend::{
    AccessPoint, AuthMode, BackendError, BoxFuture, Channel, ConnectError, ConnectRequest, DisconnectReason, LinkEvent,
    LinkInfo, Passphrase, ScanParams, Ssid, SsidVisibility, WifiBackend,
};
use zbus::proxy::CacheProperties;
use zbus::{ObjectPath, OwnedObjectPath, OwnedVariant, Variant};

use crate::access_point::{self, Known};
use crate::error::NmError;
use crate::profile::{self, KeyMgmt, StationProfile};
use crate::proxies::{DeviceProxy, Ip4ConfigProxy, ManagerProxy, ProfileProxy, SettingsProxy, WirelessProxy};
use crate::reason::{self, state};

/// `NM_DEVICE_TYPE_WIFI`.
const DEVICE_TYPE_WIFI: u32 = 2;
const ACCESS_POINT_INTERFACE: &str = "org.freedesktop.NetworkManager.AccessPoint";
/// Scans probing for a network's name before it is joined as hidden or counts as not found. One: asking
/// NetworkManager for probing scans back to back once ended with NetworkManager gone in the lab.
const PROBE_SCANS: u32 = 1;
/// How long before a scan request an access point heard still counts as heard by that scan, in milliseconds
/// (see [`Inner::fresh_scan`]): longer than a scan takes.
const HEARD_GRACE_MS: i64 = 5_000;

/// How the backend finds NetworkManager and how long it waits for it.
#[derive(Debug, Clone)]
pub struct NmConfig {
    /// The Wi-Fi interface to drive; `None` takes NetworkManager's first Wi-Fi device.
    pub interface: Option<String>,
    /// A D-Bus address to use instead of the system bus (tests run NetworkManager on a private bus).
    pub bus_address: Option<String>,
    /// How long a scan may take before the results NetworkManager has are used. NetworkManager postpones an
    /// explicit scan while the supplicant is busy (associating, in a key handshake).
    pub scan_timeout: Duration,
    /// How long a join may take in all. NetworkManager's own timeouts (25 s for the supplicant, 45 s for DHCP)
    /// normally end a failing join first, with a better reason.
    pub join_timeout: Duration,
}

impl Default for NmConfig {
    fn default() -> Self {
        Self {
            interface: None,
            bus_address: None,
            scan_timeout: Duration::from_secs(15),
            join_timeout: Duration::from_secs(90),
        }
    }
}

/// A Wi-Fi device driven through NetworkManager's D-Bus API.
///
/// Dropping it stops the monitor; the link (if any) stays up in NetworkManager.
pub struct NetworkManager {
    inner: Arc<Inner>,
    monitor: AbortHandle,
}

struct Inner {
    interface: String,
    device_path: OwnedObjectPath,
    manager: ManagerProxy<'static>,
    device: DeviceProxy<'static>,
    wireless: WirelessProxy<'static>,
    bus: zbus::Connection,
    config: NmConfig,
    state: Mutex<State>,
    /// Joins and disconnects take turns.
    turn: tokio::sync::Mutex<()>,
    /// Bumped by every join and disconnect when it is asked for, so the one in flight sees it is superseded.
    generation: watch::Sender<u64>,
    events: broadcast::Sender<LinkEvent>,
}

#[derive(Default)]
struct State {
    /// The device state as of the last `StateChanged` the monitor read.
    device_state: u32,
    link: Option<LinkInfo>,
    /// Our active connection, while a join is in flight or its link is up.
    active: Option<OwnedObjectPath>,
    /// Set while we take our own link down, so its end is not reported as lost.
    leaving: bool,
    /// Where the monitor sends device state changes while a join is in flight: (new, old, reason).
    join: Option<mpsc::UnboundedSender<(u32, u32, u32)>>,
    /// The provisioning access point, while one is wanted.
    own_ap: Option<OwnAp>,
}

/// The provisioning access point. Beside the station (a second interface), it follows the station to the
/// channel of each network it joins: the radio runs both on one channel. On the station's own interface (radios
/// that cannot run both), each join takes it down, and a join that fails raises it again.
struct OwnAp {
    config: HotspotConfig,
    channel: Option<Channel>,
    /// Its active connection while it is up; `None` while a join has it down.
    active: Option<OwnedObjectPath>,
    /// On the station's own interface.
    shared: bool,
    /// On the station's own interface: what the scan just before it went up heard. A radio running an access
    /// point cannot scan, so scans answer with this while it is up.
    heard: Vec<AccessPoint>,
}

impl NetworkManager {
    /// Connects to NetworkManager, finds the Wi-Fi device, removes profiles an earlier run of ours left
    /// behind, and starts following the device. Fails with what to fix when NetworkManager is not running,
    /// the interface is missing, not Wi-Fi, or not managed.
    pub async fn start(config: NmConfig) -> Result<Self, NmError> {
        let bus = match &config.bus_address {
            Some(address) => zbus::connection::Builder::address(address.as_str())
                .build()
                .await
                .map_err(|source| NmError::Bus { address: Some(address.clone()), source })?,
            None => zbus::Connection::system().await.map_err(|source| NmError::Bus { address: None, source })?,
        };
        let manager = ManagerProxy::builder(&bus)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|source| NmError::Call { operation: "make a proxy", source })?;
        let version = manager.version().await.map_err(NmError::NotRunning)?;

        let (device_path, device) = find_device(&bus, &manager, config.interface.as_deref()).await?;
        let interface =
            device.interface().await.map_err(|source| NmError::Call { operation: "read the device", source })?;
        if !device.managed().await.map_err(|source| NmError::Call { operation: "read the device", source })? {
            return Err(NmError::Unmanaged { interface });
        }
        let wireless = WirelessProxy::builder(&bus)
            .path(device_path.clone())
            .build()
            .await
            .map_err(|source| NmError::Call { operation: "make a proxy", source })?;
        let device_state = device
            .device_state()
            .await
            .map_err(|source| NmError::Call { operation: "read the device state", source })?;

        remove_stale_profiles(&bus).await;
        tracing::info!(%version, %interface, "NetworkManager backend ready");

        let (events, _) = broadcast::channel(16);
        let inner = Arc::new(Inner {
            interface,
            device_path,
            manager,
            device,
            wireless,
            bus,
            config,
            state: Mutex::new(State { device_state, ..State::default() }),
            turn: tokio::sync::Mutex::new(()),
            generation: watch::Sender::new(0),
            events,
        });
        // Subscribed before anything is activated, so no state change of ours is missed.
        let changes = inner
            .device
            .receive_state_changed()
            .await
            .map_err(|source| NmError::Call { operation: "follow the device state", source })?;
        let monitor = tokio::spawn(Arc::clone(&inner).monitor(changes)).abort_handle();
        Ok(Self { inner, monitor })
    }

    /// The interface this backend drives.
    pub fn interface(&self) -> &str {
        &self.inner.interface
    }
}

/// The provisioning access point: where, called what, secured how.
#[derive(Debug, Clone)]
pub struct HotspotConfig {
    /// The interface to run it on, which NetworkManager must manage: a second interface on the station's radio
    /// ([`crate::ensure_ap_interface`]), or the station's own when the radio cannot run both
    /// ([`crate::ap_beside_station_supported`]); then joins take the access point down.
    pub interface: String,
    /// The network name phones see (ESP: the service name).
    pub ssid: Ssid,
    /// WPA2 passphrase (ESP: the service key); `None` for an open access point, as ESP without one.
    pub passphrase: Option<Passphrase>,
    /// The channel; `None` takes the station's when it is joined (a radio with one channel for both needs
    /// that), else the strongest network's in range, where the station will most likely join.
    pub channel: Option<Channel>,
    /// The device's address on it; ESP's apps look for 192.168.4.1.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
}

/// A running access point. [`Hotspot::stop`] takes it down; dropping it leaves it up.
pub struct Hotspot {
    inner: Arc<Inner>,
    interface: String,
}

impl Hotspot {
    /// The interface it runs on.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Takes the access point down (NetworkManager deletes its volatile profile).
    pub async fn stop(self) -> Result<(), BackendError> {
        // Nothing to take down when a join took it down and succeeded; and no failed join raises it again.
        let active = self.inner.lock().own_ap.take().and_then(|ap| ap.active);
        match active {
            Some(path) => self.inner.deactivate(&path).await,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Hotspot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hotspot").field("interface", &self.interface).finish_non_exhaustive()
    }
}

/// The access point's channel when nothing suggests one: ESP's. Left to NetworkManager, it may pick a channel
/// the regulatory domain forbids to start a network on (13 in the world domain, seen in the lab), and fail.
const DEFAULT_AP_CHANNEL: u8 = 1;

/// How long NetworkManager may take to bring the access point up (it starts its own dnsmasq for it).
const HOTSPOT_START: Duration = Duration::from_secs(45);

impl NetworkManager {
    /// Raises the access point and returns once it is up, with its address and DHCP server. The interface
    /// must exist; NetworkManager may need a moment to take a new one up.
    ///
    /// On the station's own interface (a radio that cannot run both), the station leaves its network first, and
    /// the networks in range are scanned for before the access point takes the radio: scans answer with them
    /// while it is up. Each join then takes the access point down, and one that fails raises it again.
    pub async fn start_hotspot(&self, config: &HotspotConfig) -> Result<Hotspot, BackendError> {
        let inner = &self.inner;
        let shared = config.interface == inner.interface;
        if !shared {
            let joined = inner.lock().link.as_ref().map(|link| link.channel);
            let channel = inner.ap_channel(config.channel.or(joined)).await;
            let active = inner.activate_hotspot(config, channel).await?;
            let ap = OwnAp { config: config.clone(), channel, active: Some(active), shared, heard: Vec::new() };
            inner.lock().own_ap = Some(ap);
            return Ok(Hotspot { inner: Arc::clone(inner), interface: config.interface.clone() });
        }
        tracing::warn!(
            interface = %config.interface,
            "the access point runs on the station's own interface: phones lose it while the device tries a network, \
             and it comes back only when the attempt fails"
        );
        // Everything NetworkManager knows after a fresh scan, not only what that scan heard: this list stands for
        // every scan while the access point is up, and a network missing from it cannot be chosen.
        if let Err(error) = inner.fresh_scan(None).await {
            tracing::warn!(%error, "no scan before the access point took the radio; answering with what is known");
        }
        let mut heard: Vec<AccessPoint> =
            inner.access_points().await.unwrap_or_default().into_iter().map(|(_, known)| known.ap).collect();
        heard.sort_by_key(|ap| core::cmp::Reverse(ap.rssi));
        let channel = inner.ap_channel(config.channel.or_else(|| heard.first().map(|ap| ap.channel))).await;
        inner.supersede();
        let _turn = inner.turn.lock().await;
        inner.take_down().await?;
        // An access point started while the interface scans fails, and NetworkManager says so only after its
        // supplicant timeout (25 s); a periodic scan of NetworkManager's can still start in between, so one
        // failure is retried.
        inner.wait_until_not_scanning().await;
        let active = match inner.activate_hotspot(config, channel).await {
            Ok(active) => active,
            Err(error) => {
                tracing::info!(%error, "the access point did not start; once more");
                inner.wait_until_not_scanning().await;
                inner.activate_hotspot(config, channel).await?
            }
        };
        inner.lock().own_ap = Some(OwnAp { config: config.clone(), channel, active: Some(active), shared, heard });
        Ok(Hotspot { inner: Arc::clone(inner), interface: config.interface.clone() })
    }
}

impl Inner {
    /// The access point's channel: `suggested`, else where the station will most likely join, else
    /// [`DEFAULT_AP_CHANNEL`].
    async fn ap_channel(&self, suggested: Option<Channel>) -> Option<Channel> {
        match suggested {
            Some(channel) => Some(channel),
            None => self.likely_channel().await.or_else(|| Channel::new(DEFAULT_AP_CHANNEL).ok()),
        }
    }

    /// Activates an access point profile for `config` on `channel` and waits until it is up.
    async fn activate_hotspot(
        &self,
        config: &HotspotConfig,
        channel: Option<Channel>,
    ) -> Result<OwnedObjectPath, BackendError> {
        let deadline = tokio::time::Instant::now() + HOTSPOT_START;
        // A freshly made interface: wait until NetworkManager knows it and has it ready.
        let (path, device) = loop {
            if let Ok(path) = self.manager.get_device_by_ip_iface(&config.interface).await {
                let device = DeviceProxy::builder(&self.bus)
                    .path(path.clone())
                    .cache_properties(CacheProperties::No)
                    .build()
                    .await
                    .map_err(platform("start the access point"))?;
                if device.device_state().await.is_ok_and(|s| s >= state::DISCONNECTED) {
                    break (path, device);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::InterfaceUnavailable { interface: config.interface.clone() });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let mut changes = device.receive_state_changed().await.map_err(platform("start the access point"))?;
        let profile = crate::profile::HotspotProfile {
            interface: &config.interface,
            ssid: &config.ssid,
            passphrase: config.passphrase.as_ref(),
            channel: channel.map(Channel::get),
            address: config.address,
            prefix: config.prefix,
        };
        let options = HashMap::from([("persist", Variant::from("volatile"))]);
        let added = self.manager.add_and_activate_connection2(profile.settings(), &path, &root_path(), options).await;
        let (_, active, _) = added.map_err(platform("start the access point"))?;
        let up = async {
            while let Some(signal) = changes.next().await {
                let Ok(args) = signal.args() else { continue };
                match args.new_state {
                    state::ACTIVATED => return Ok(()),
                    state::FAILED => return Err(reason::name(args.reason)),
                    _ => {}
                }
            }
            Err("the device signals ended")
        };
        let why = match tokio::time::timeout_at(deadline, up).await {
            Ok(Ok(())) => {
                tracing::info!(interface = %config.interface, ssid = %config.ssid, address = %config.address, ?channel, "access point up");
                return Ok(active);
            }
            Ok(Err(why)) => why,
            Err(_) => "timed out",
        };
        let _ = self.deactivate(&active).await;
        Err(BackendError::Platform { operation: "start the access point", source: why.into() })
    }

    /// Waits (up to 15 s) until the supplicant is not scanning on the station's interface. Without
    /// wpa_supplicant (NetworkManager on iwd), returns at once.
    async fn wait_until_not_scanning(&self) {
        let scanning = async {
            let supplicant = crate::proxies::SupplicantProxy::new(&self.bus).await?;
            let path = supplicant.get_interface(&self.interface).await?;
            crate::proxies::SupplicantInterfaceProxy::builder(&self.bus)
                .path(path)
                .cache_properties(CacheProperties::No)
                .build()
                .await
        };
        let interface = match scanning.await {
            Ok(interface) => interface,
            Err(error) => {
                tracing::debug!(%error, "cannot ask wpa_supplicant whether it scans");
                return;
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while interface.scanning().await.unwrap_or(false) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Takes an access point on the station's interface down for a join; returns whether one was up.
    async fn lower_shared_ap(&self) -> bool {
        let active = self.lock().own_ap.as_mut().filter(|ap| ap.shared).and_then(|ap| ap.active.take());
        let Some(active) = active else { return false };
        tracing::info!(interface = %self.interface, "taking the access point down for the join (the radio cannot run both)");
        if let Err(error) = self.deactivate(&active).await {
            tracing::warn!(%error, "cannot take the access point down");
        }
        // The join starts from a device that has left AP mode, so none of the access point's state changes is
        // taken for the join's.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.lock().device_state > state::DISCONNECTED && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    /// Moves an access point beside the station to `channel`, where the station is about to join: the radio runs
    /// both on one channel, and the join fails while the access point holds another. Phones lose the access point
    /// for a few seconds and find it on the new channel (ESP's access point follows its station the same way).
    async fn follow_channel(&self, channel: Channel, ssid: &Ssid) {
        let moving = {
            let mut state = self.lock();
            match state.own_ap.as_mut() {
                Some(ap) if !ap.shared && ap.active.is_some() && ap.channel != Some(channel) => {
                    ap.channel = Some(channel);
                    ap.active.take()
                }
                _ => None,
            }
        };
        let Some(old) = moving else { return };
        tracing::info!(%channel, %ssid, "moving the access point to the channel of the network the station joins");
        if let Err(error) = self.deactivate(&old).await {
            tracing::warn!(%error, "cannot take the access point down to move it");
        }
        self.raise_own_ap().await;
    }

    /// Raises the access point again after a join took it down (or moved it), unless it is up or was stopped
    /// meanwhile.
    async fn raise_own_ap(&self) {
        let wanted = {
            let state = self.lock();
            state.own_ap.as_ref().filter(|ap| ap.active.is_none()).map(|ap| (ap.config.clone(), ap.channel))
        };
        let Some((config, channel)) = wanted else { return };
        self.wait_until_not_scanning().await;
        match self.activate_hotspot(&config, channel).await {
            Ok(active) => {
                let stopped = {
                    let mut state = self.lock();
                    match state.own_ap.as_mut() {
                        Some(ap) => {
                            ap.active = Some(active.clone());
                            false
                        }
                        None => true,
                    }
                };
                if stopped {
                    let _ = self.deactivate(&active).await;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot raise the access point again"),
        }
    }
}

impl std::fmt::Debug for NetworkManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkManager").field("interface", &self.inner.interface).finish_non_exhaustive()
    }
}

impl Drop for NetworkManager {
    fn drop(&mut self) {
        self.monitor.abort();
    }
}

async fn find_device(
    bus: &zbus::Connection,
    manager: &ManagerProxy<'static>,
    interface: Option<&str>,
) -> Result<(OwnedObjectPath, DeviceProxy<'static>), NmError> {
    let device_at = |path: OwnedObjectPath| async move {
        let device = DeviceProxy::builder(bus)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|source| NmError::Call { operation: "make a proxy", source })?;
        let kind = device.device_type().await.map_err(|source| NmError::Call { operation: "read a device", source })?;
        Ok::<_, NmError>((path, device, kind))
    };
    match interface {
        Some(name) => {
            let path = manager.get_device_by_ip_iface(name).await.map_err(|source| {
                if error_named(&source, ".UnknownDevice") {
                    NmError::NoSuchInterface { interface: name.to_owned() }
                } else {
                    NmError::Call { operation: "look up the interface", source }
                }
            })?;
            let (path, device, kind) = device_at(path).await?;
            if kind != DEVICE_TYPE_WIFI {
                return Err(NmError::NotWifi { interface: name.to_owned() });
            }
            Ok((path, device))
        }
        None => {
            let paths =
                manager.get_devices().await.map_err(|source| NmError::Call { operation: "list devices", source })?;
            for path in paths {
                let (path, device, kind) = device_at(path).await?;
                if kind == DEVICE_TYPE_WIFI {
                    return Ok((path, device));
                }
            }
            Err(NmError::NoWifiDevice)
        }
    }
}

/// Deletes the profiles marked as ours. A run of ours that ended without cleaning up (a crash, a power cut
/// while NetworkManager kept running) can leave one; profiles of anybody else are never touched.
async fn remove_stale_profiles(bus: &zbus::Connection) {
    let result: zbus::Result<()> = async {
        let settings = SettingsProxy::new(bus).await?;
        for path in settings.list_connections().await? {
            let profile = ProfileProxy::builder(bus).path(path.clone()).build().await?;
            // A profile can vanish between listing and reading; that is not an error here.
            let Ok(found) = profile.get_settings().await else { continue };
            if profile::is_ours(&found) {
                tracing::info!(profile = %path.as_str(), "removing a profile an earlier run left behind");
                if let Err(error) = profile.delete().await {
                    tracing::warn!(%error, "cannot remove an old profile of ours");
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, "cannot list NetworkManager's profiles to remove old ones of ours");
    }
}

/// Whether a failed call was answered with an error whose name ends in `suffix` (`.UnknownDevice`, …).
fn error_named(error: &zbus::Error, suffix: &str) -> bool {
    match error {
        zbus::Error::MethodError(name, _, _) => name.as_str().ends_with(suffix),
        zbus::Error::FDO(fdo) => zbus::DBusError::name(fdo.as_ref()).as_str().ends_with(suffix),
        _ => false,
    }
}

fn platform(operation: &'static str) -> impl FnOnce(zbus::Error) -> BackendError {
    move |source| BackendError::Platform { operation, source: Box::new(source) }
}

/// What a join aims at.
struct Target {
    /// The access point NetworkManager should pick, or `/` to let it choose.
    access_point: OwnedObjectPath,
    key_mgmt: KeyMgmt,
    hidden: bool,
    /// What the scan said about it, for the link info should NetworkManager's own lookup fail.
    seen: Option<AccessPoint>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, event: LinkEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Follows the device until the bus goes away.
    async fn monitor(self: Arc<Self>, mut changes: crate::proxies::StateChangedStream) {
        while let Some(signal) = changes.next().await {
            let Ok(args) = signal.args() else { continue };
            let (new, old, why) = (args.new_state, args.old_state, args.reason);
            tracing::debug!(new, old, reason = reason::name(why), "device state");
            let lost = {
                let mut state = self.lock();
                state.device_state = new;
                if let Some(join) = &state.join {
                    // A closed receiver means the join just ended; it cleans up itself.
                    let _ = join.send((new, old, why));
                }
                if old == state::ACTIVATED && new != state::ACTIVATED && !state.leaving {
                    state.active = None;
                    state.link.take()
                } else {
                    None
                }
            };
            if let Some(link) = lost {
                let reason = reason::link_lost(why);
                tracing::info!(ssid = %link.ssid, nm_reason = reason::name(why), %reason, "link lost");
                self.emit(LinkEvent::LinkLost { reason });
            }
        }
        tracing::warn!("NetworkManager's device signals ended; link changes are no longer seen");
    }

    /// Marks a newer join or disconnect; the one in flight (if any) ends as superseded.
    fn supersede(&self) -> u64 {
        let mut mine = 0;
        self.generation.send_modify(|generation| {
            *generation += 1;
            mine = *generation;
        });
        mine
    }

    async fn scan(&self, params: ScanParams) -> Result<Vec<AccessPoint>, BackendError> {
        let shared =
            self.lock().own_ap.as_ref().filter(|ap| ap.shared && ap.active.is_some()).map(|ap| ap.heard.clone());
        if let Some(mut heard) = shared {
            tracing::debug!("the access point holds the radio; answering with what was heard before it went up");
            if let Some(channels) = &params.channels {
                heard.retain(|ap| channels.contains(&ap.channel));
            }
            return Ok(heard);
        }
        if params.mode == wifiprov_backend::ScanMode::Passive {
            tracing::debug!("NetworkManager cannot scan passively; scanning actively");
        }
        let asked_at = self.fresh_scan(None).await?;
        let mut found: Vec<AccessPoint> = self
            .access_points()
            .await?
            .into_iter()
            // Only what this scan heard: NetworkManager keeps gone networks listed for a while.
            .filter(|(_, known)| asked_at.is_none_or(|at| known.heard_since(at)))
            .map(|(_, known)| known.ap)
            .collect();
        if let Some(channels) = &params.channels {
            found.retain(|ap| channels.contains(&ap.channel));
        }
        found.sort_by_key(|ap| core::cmp::Reverse(ap.rssi));
        Ok(found)
    }

    /// Asks for a scan (probing for `ssid` when given, which finds hidden networks) and waits until it is done,
    /// or for the scan timeout. Returns since when an access point counts as heard by it (CLOCK_BOOTTIME
    /// milliseconds, the clock of `LastSeen`) once a new scan finished, `None` when none did in time.
    ///
    /// That is [`HEARD_GRACE_MS`] before it was asked for: when a scan is under way already (NetworkManager scans
    /// by itself while the station is disconnected), the supplicant folds the request into it, and what that scan
    /// heard before the request counts too.
    async fn fresh_scan(&self, ssid: Option<&Ssid>) -> Result<Option<i64>, BackendError> {
        let heard_since = boottime_ms().saturating_sub(HEARD_GRACE_MS);
        let before = self.wireless.last_scan().await.map_err(platform("scan"))?;
        let mut done = self.wireless.receive_last_scan_changed().await;
        let mut options = HashMap::new();
        if let Some(ssid) = ssid {
            options.insert("ssids", Variant::from(vec![ssid.as_bytes().to_vec()]));
        }
        if let Err(error) = self.wireless.request_scan(options).await {
            let refused = error_named(&error, ".NotAllowed");
            if !refused {
                return Err(platform("scan")(error));
            }
            let device_state = self.lock().device_state;
            if device_state < state::DISCONNECTED {
                return Err(if device_state == state::UNAVAILABLE {
                    BackendError::RadioDisabled
                } else {
                    BackendError::InterfaceUnavailable { interface: self.interface.clone() }
                });
            }
            // Refused for now (another scan runs, or the supplicant is busy): the running one or the next
            // periodic one ends the wait.
            tracing::debug!(%error, "NetworkManager postponed the scan");
        }
        let finished = async {
            while let Some(change) = done.next().await {
                if change.get().await.is_ok_and(|at| at != before) {
                    return;
                }
            }
            // The stream ends only with the connection; then there is no scan to wait for.
            std::future::pending::<()>().await;
        };
        if tokio::time::timeout(self.config.scan_timeout, finished).await.is_err() {
            tracing::info!(timeout = ?self.config.scan_timeout, "scan did not finish in time; using the access points known so far");
            return Ok(None);
        }
        Ok(Some(heard_since))
    }

    /// The channel the station will most likely join on: the one most networks in range use, the strongest
    /// network's among equals. A radio that runs its access point and its station on one channel moves the
    /// access point to each join's channel, and phones lose it meanwhile: starting where most networks are
    /// makes that rarer.
    async fn likely_channel(&self) -> Option<Channel> {
        let mut known = self.access_points().await.ok()?;
        if known.is_empty() {
            self.fresh_scan(None).await.ok()?;
            known = self.access_points().await.ok()?;
        }
        let mut channels: HashMap<Channel, (usize, Option<wifiprov_backend::Rssi>)> = HashMap::new();
        for (_, k) in &known {
            let entry = channels.entry(k.ap.channel).or_insert((0, None));
            entry.0 += 1;
            entry.1 = entry.1.max(Some(k.ap.rssi));
        }
        channels.into_iter().max_by_key(|(channel, score)| (*score, core::cmp::Reverse(channel.get()))).map(|(c, _)| c)
    }

    /// Every access point NetworkManager knows, with its object path and security.
    async fn access_points(&self) -> Result<Vec<(OwnedObjectPath, Known)>, BackendError> {
        let paths = self.wireless.get_all_access_points().await.map_err(platform("list access points"))?;
        let mut found = Vec::with_capacity(paths.len());
        for path in paths {
            // An access point can go between listing and reading it.
            let Ok(properties) = self.access_point_properties(&path).await else { continue };
            match access_point::from_properties(&properties) {
                Some(known) => found.push((path, known)),
                None => tracing::debug!(path = %path.as_str(), "access point with unusable properties"),
            }
        }
        Ok(found)
    }

    async fn access_point_properties(&self, path: &ObjectPath<'_>) -> zbus::Result<HashMap<String, OwnedVariant>> {
        let properties = zbus::fdo::PropertiesProxy::builder(&self.bus)
            .destination("org.freedesktop.NetworkManager")
            .path(path.to_owned())
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let interface = zbus::names::InterfaceName::from_static_str_unchecked(ACCESS_POINT_INTERFACE);
        Ok(properties.get_all(interface).await?)
    }

    /// Picks what to join: the strongest matching access point (NetworkManager is asked to scan, probing for
    /// the name, when none is known), or, for a hidden network nothing answered for, the name alone.
    async fn target(&self, request: &ConnectRequest) -> Result<Target, ConnectError> {
        let mut best = self.best_match(request).await?;
        // Not known yet: scan, probing for the name, as an ESP station does before it joins.
        let mut probes = 0;
        while best.is_none() && probes < PROBE_SCANS {
            let finished = self.fresh_scan(Some(&request.ssid)).await?;
            probes += 1;
            tracing::debug!(ssid = %request.ssid, probes, finished = finished.is_some(), "probed for the network");
            best = self.best_match(request).await?;
        }
        // Found only by probing for its name: a hidden network (ESP's prov-config cannot say so), which the
        // supplicant must keep probing for while it joins.
        let hidden = request.visibility == SsidVisibility::Hidden || probes > 0;
        let Some((path, Known { ap, security, .. })) = best else {
            // The probe can miss (the wait can end with a scan that was already under way). With a hidden network
            // in range the name may be its: NetworkManager keeps probing for it while it joins, and reports
            // "SSID not found" if nothing answers. With none, nothing can answer to the name.
            let hidden_in_range = self.access_points().await?.iter().any(|(_, known)| known.ap.is_hidden());
            if request.visibility != SsidVisibility::Hidden && !hidden_in_range {
                return Err(ConnectError::NetworkNotFound);
            }
            // Its security cannot be seen: `wpa-psk` also offers SAE, so it joins WPA2 and WPA3 networks.
            let key_mgmt = if request.passphrase.is_some() { KeyMgmt::WpaPsk } else { KeyMgmt::Open };
            return Ok(Target { access_point: root_path(), key_mgmt, hidden, seen: None });
        };
        let key_mgmt = match (ap.auth, security.owe_only) {
            (AuthMode::Open, true) => KeyMgmt::Owe,
            (AuthMode::Open, false) => KeyMgmt::Open,
            (AuthMode::Wpa3Sae, _) => KeyMgmt::Sae,
            (AuthMode::WpaPsk | AuthMode::Wpa2Psk | AuthMode::WpaWpa2Psk | AuthMode::Wpa2Wpa3, _) => KeyMgmt::WpaPsk,
            (auth, _) => return Err(ConnectError::UnsupportedAuth { auth }),
        };
        if key_mgmt != KeyMgmt::Open && key_mgmt != KeyMgmt::Owe && request.passphrase.is_none() {
            // What a station gets from such a network without a key.
            return Err(ConnectError::AuthFailed);
        }
        Ok(Target { access_point: path, key_mgmt, hidden, seen: Some(ap) })
    }

    async fn best_match(&self, request: &ConnectRequest) -> Result<Option<(OwnedObjectPath, Known)>, BackendError> {
        let candidates = self.access_points().await?.into_iter().filter(|(_, Known { ap, .. })| {
            let named = ap.ssid.as_ref() == Some(&request.ssid);
            match request.bssid {
                // A hidden access point asked for by its BSSID counts even before a probe named it.
                Some(bssid) => ap.bssid == bssid && (named || ap.ssid.is_none()),
                None => named,
            }
        });
        Ok(candidates.max_by_key(|(_, known)| known.ap.rssi))
    }

    async fn connect(self: Arc<Self>, request: ConnectRequest) -> Result<LinkInfo, ConnectError> {
        let mine = self.supersede();
        let mut superseded = self.generation.subscribe();
        let _turn = self.turn.lock().await;
        if *superseded.borrow_and_update() != mine {
            return Err(ConnectError::Cancelled);
        }
        // Undoes the join if this future is dropped before it ends.
        let mut cleanup = Cleanup { inner: Some(Arc::clone(&self)) };
        self.take_down().await?;
        let displaced = self.lower_shared_ap().await;

        let outcome = tokio::select! {
            outcome = self.join(&request) => outcome,
            _ = superseded.changed() => Err(ConnectError::Cancelled),
        };
        match &outcome {
            Ok(link) => {
                cleanup.inner = None;
                tracing::info!(ssid = %link.ssid, ip = %link.ip4, "joined");
            }
            Err(error) => {
                self.lock().join = None;
                self.abandon().await;
                cleanup.inner = None;
                tracing::info!(ssid = %request.ssid, %error, "join failed");
                // A newer join or disconnect decides about the access point.
                if displaced && !matches!(error, ConnectError::Cancelled) {
                    self.raise_own_ap().await;
                }
            }
        }
        outcome
    }

    async fn join(&self, request: &ConnectRequest) -> Result<LinkInfo, ConnectError> {
        let target = self.target(request).await?;
        if let Some(seen) = &target.seen {
            self.follow_channel(seen.channel, &request.ssid).await;
        }
        let (changes_tx, mut changes) = mpsc::unbounded_channel();
        self.lock().join = Some(changes_tx);
        let profile = StationProfile {
            interface: &self.interface,
            ssid: &request.ssid,
            key_mgmt: target.key_mgmt,
            passphrase: request.passphrase.as_ref(),
            hidden: target.hidden,
            bssid: request.bssid,
        };
        // `volatile`: NetworkManager deletes the profile when it goes down; in memory only, never on disk.
        let options = HashMap::from([("persist", Variant::from("volatile"))]);
        let settings = profile.settings();
        let added =
            self.manager.add_and_activate_connection2(settings, &self.device_path, &target.access_point, options).await;
        let (_, active, _) = added.map_err(|error| {
            tracing::warn!(%error, "NetworkManager refused the profile");
            platform("join")(error)
        })?;
        tracing::debug!(active = %active.as_str(), key_mgmt = ?target.key_mgmt, hidden = target.hidden, "activating");
        self.lock().active = Some(active);

        let deadline = tokio::time::sleep(self.config.join_timeout);
        tokio::pin!(deadline);
        let mut started = false;
        loop {
            let (new, _old, why) = tokio::select! {
                change = changes.recv() => change.ok_or(ConnectError::Backend(BackendError::Closed))?,
                () = &mut deadline => return Err(ConnectError::Timeout),
            };
            match new {
                state::ACTIVATED => return self.established(request, &target).await,
                state::FAILED => {
                    tracing::info!(nm_reason = reason::name(why), code = why, "NetworkManager could not join");
                    return Err(reason::join_failure(why));
                }
                state::DISCONNECTED | state::DEACTIVATING if started => {
                    tracing::info!(nm_reason = reason::name(why), code = why, "the join was called off");
                    return Err(reason::join_failure(why));
                }
                state::PREPARE..state::ACTIVATED => started = true,
                _ => {}
            }
        }
    }

    /// Reads the new link and makes it current, unless the device already left ACTIVATED again.
    async fn established(&self, request: &ConnectRequest, target: &Target) -> Result<LinkInfo, ConnectError> {
        let ip4 = self.address().await?.ok_or_else(|| {
            tracing::warn!("activated without an IPv4 address");
            ConnectError::Timeout
        })?;
        let current = match self.wireless.active_access_point().await {
            Ok(path) if path.as_str() != "/" => self
                .access_point_properties(&path)
                .await
                .ok()
                .and_then(|properties| access_point::from_properties(&properties))
                .map(|known| known.ap),
            _ => None,
        };
        let Some(ap) = current.or_else(|| target.seen.clone()) else {
            return Err(ConnectError::Backend(BackendError::Platform {
                operation: "join",
                source: "activated without an access point".into(),
            }));
        };
        let link = LinkInfo {
            ssid: request.ssid.clone(),
            bssid: ap.bssid,
            channel: ap.channel,
            auth: ap.auth,
            ip4,
            rssi: ap.rssi,
        };
        {
            let mut state = self.lock();
            state.join = None;
            if state.device_state != state::ACTIVATED {
                return Err(ConnectError::AssociationFailed);
            }
            state.link = Some(link.clone());
        }
        self.emit(LinkEvent::Connected(link.clone()));
        Ok(link)
    }

    async fn address(&self) -> Result<Option<Ipv4Addr>, ConnectError> {
        let path = self.device.ip4_config().await.map_err(platform("read the address"))?;
        if path.as_str() == "/" {
            return Ok(None);
        }
        let config = Ip4ConfigProxy::builder(&self.bus)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(platform("read the address"))?;
        let addresses = config.address_data().await.map_err(platform("read the address"))?;
        Ok(addresses.iter().find_map(|entry| {
            let text: &str = entry.get("address")?.downcast_ref().ok()?;
            text.parse().ok()
        }))
    }

    /// Takes our link (or join) down and reports the end of an established link as asked for.
    async fn take_down(&self) -> Result<(), BackendError> {
        let active = {
            let mut state = self.lock();
            state.leaving = true;
            state.active.take()
        };
        let result = match &active {
            Some(path) => self.deactivate(path).await,
            None => Ok(()),
        };
        let ended = {
            let mut state = self.lock();
            state.leaving = false;
            state.link.take()
        };
        if let Some(link) = ended {
            tracing::info!(ssid = %link.ssid, "left the network");
            self.emit(LinkEvent::Disconnected { reason: DisconnectReason::ASSOC_LEAVE });
        }
        result
    }

    async fn deactivate(&self, active: &ObjectPath<'_>) -> Result<(), BackendError> {
        match self.manager.deactivate_connection(active).await {
            Ok(()) => Ok(()),
            // Already gone: it failed, or somebody else took it down.
            Err(error) if error_named(&error, ".ConnectionNotActive") || error_named(&error, ".UnknownConnection") => {
                Ok(())
            }
            Err(error) => Err(platform("disconnect")(error)),
        }
    }

    /// Undoes a join that did not succeed.
    async fn abandon(&self) {
        let active = self.lock().active.take();
        if let Some(path) = active
            && let Err(error) = self.deactivate(&path).await
        {
            tracing::warn!(%error, "cannot call off the join");
        }
    }

    async fn disconnect(&self) -> Result<(), BackendError> {
        self.supersede();
        let _turn = self.turn.lock().await;
        let result = self.take_down().await;
        // Off its network, the station gives the radio back to an access point a join took down.
        self.raise_own_ap().await;
        result
    }
}

/// CLOCK_BOOTTIME in milliseconds: NetworkManager's clock for `LastScan` and `LastSeen`.
fn boottime_ms() -> i64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    now.tv_sec.saturating_mul(1000).saturating_add(now.tv_nsec / 1_000_000)
}

fn root_path() -> OwnedObjectPath {
    OwnedObjectPath::from(ObjectPath::from_static_str_unchecked("/"))
}

/// Calls off a join whose future was dropped half-way, so that the link stays down as the trait promises.
struct Cleanup {
    inner: Option<Arc<Inner>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        inner.lock().join = None;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { inner.abandon().await });
        }
    }
}

impl WifiBackend for NetworkManager {
    fn scan(&self, params: ScanParams) -> BoxFuture<'_, Result<Vec<AccessPoint>, BackendError>> {
        Box::pin(self.inner.scan(params))
    }

    fn connect(&self, request: ConnectRequest) -> BoxFuture<'_, Result<LinkInfo, ConnectError>> {
        Box::pin(Arc::clone(&self.inner).connect(request))
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.inner.disconnect())
    }

    fn link(&self) -> Option<LinkInfo> {
        self.inner.lock().link.clone()
    }

    fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.inner.events.subscribe()
    }
}
