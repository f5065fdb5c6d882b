//! Typed proxies for the parts of NetworkManager's D-Bus API this backend calls, and nothing more.
//!
//! Names and signatures follow NetworkManager's introspection XML (`introspection/org.freedesktop.
//! NetworkManager*.xml`); the comments say what each call is used for here. Property caching is left on: the
//! proxies follow `PropertiesChanged`, which NetworkManager emits for every property used here.
#![allow(missing_docs, unreachable_pub)] // generated items; the module is private

use std::collections::HashMap;

use zbus::proxy;
use zbus::{OwnedObjectPath, OwnedVariant, Variant};

/// A connection profile as NetworkManager takes it: setting name → property name → value.
pub type Settings<'a> = HashMap<&'a str, HashMap<&'a str, Variant<'a>>>;

/// A connection profile as NetworkManager returns it.
pub type OwnedSettings = HashMap<String, HashMap<String, OwnedVariant>>;

#[proxy(
    interface = "org.freedesktop.NetworkManager",
    default_service = "org.freedesktop.NetworkManager",
    default_path = "/org/freedesktop/NetworkManager"
)]
pub trait Manager {
    /// The device behind an interface name (`UnknownDevice` error when there is none).
    fn get_device_by_ip_iface(&self, iface: &str) -> zbus::Result<OwnedObjectPath>;

    /// Realized devices.
    fn get_devices(&self) -> zbus::Result<Vec<OwnedObjectPath>>;

    /// Creates a profile and activates it in one call; `options` carries `persist` (since 1.16).
    fn add_and_activate_connection2(
        &self,
        connection: Settings<'_>,
        device: &zbus::ObjectPath<'_>,
        specific_object: &zbus::ObjectPath<'_>,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<(OwnedObjectPath, OwnedObjectPath, HashMap<String, OwnedVariant>)>;

    fn deactivate_connection(&self, active_connection: &zbus::ObjectPath<'_>) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn wireless_enabled(&self) -> zbus::Result<bool>;
}

#[proxy(
    interface = "org.freedesktop.NetworkManager.Settings",
    default_service = "org.freedesktop.NetworkManager",
    default_path = "/org/freedesktop/NetworkManager/Settings"
)]
pub trait Settings {
    fn list_connections(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
}

#[proxy(
    interface = "org.freedesktop.NetworkManager.Settings.Connection",
    default_service = "org.freedesktop.NetworkManager"
)]
pub trait Profile {
    /// The profile without its secrets.
    fn get_settings(&self) -> zbus::Result<OwnedSettings>;

    fn delete(&self) -> zbus::Result<()>;
}

#[proxy(interface = "org.freedesktop.NetworkManager.Device", default_service = "org.freedesktop.NetworkManager")]
pub trait Device {
    /// Every state change with its reason. The reason is only carried here: the active connection reports
    /// "device disconnected" for every Wi-Fi failure, and `StateReason` is overwritten at once when FAILED
    /// moves on to DISCONNECTED.
    #[zbus(signal)]
    fn state_changed(&self, new_state: u32, old_state: u32, reason: u32) -> zbus::Result<()>;

    #[zbus(property)]
    fn device_type(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn interface(&self) -> zbus::Result<String>;

    /// `State`; named apart from the `StateChanged` signal, whose stream would otherwise clash with this
    /// property's change stream.
    #[zbus(property, name = "State")]
    fn device_state(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn managed(&self) -> zbus::Result<bool>;

    #[zbus(property)]
    fn active_connection(&self) -> zbus::Result<OwnedObjectPath>;

    #[zbus(property)]
    fn ip4_config(&self) -> zbus::Result<OwnedObjectPath>;
}

#[proxy(
    interface = "org.freedesktop.NetworkManager.Device.Wireless",
    default_service = "org.freedesktop.NetworkManager"
)]
pub trait Wireless {
    /// Asks for a scan; returns once it is requested, not done. `options` may carry `ssids` (`aay`) to probe
    /// for hidden networks.
    fn request_scan(&self, options: HashMap<&str, Variant<'_>>) -> zbus::Result<()>;

    /// Every access point, hidden ones included (with an empty SSID).
    fn get_all_access_points(&self) -> zbus::Result<Vec<OwnedObjectPath>>;

    /// CLOCK_BOOTTIME milliseconds of the last finished scan; -1 before the first.
    #[zbus(property)]
    fn last_scan(&self) -> zbus::Result<i64>;

    #[zbus(property)]
    fn active_access_point(&self) -> zbus::Result<OwnedObjectPath>;

    #[zbus(property)]
    fn wireless_capabilities(&self) -> zbus::Result<u32>;
}

#[proxy(interface = "org.freedesktop.NetworkManager.IP4Config", default_service = "org.freedesktop.NetworkManager")]
pub trait Ip4Config {
    /// `[{"address": s, "prefix": u}, …]`.
    #[zbus(property)]
    fn address_data(&self) -> zbus::Result<Vec<HashMap<String, OwnedVariant>>>;
}

/// wpa_supplicant, which NetworkManager drives unless it is configured for iwd. Read only to see whether the
/// radio is scanning (NetworkManager does not say): an access point started on an interface that scans fails.
#[proxy(
    interface = "fi.w1.wpa_supplicant1",
    default_service = "fi.w1.wpa_supplicant1",
    default_path = "/fi/w1/wpa_supplicant1"
)]
pub trait Supplicant {
    fn get_interface(&self, ifname: &str) -> zbus::Result<OwnedObjectPath>;
}

#[proxy(interface = "fi.w1.wpa_supplicant1.Interface", default_service = "fi.w1.wpa_supplicant1")]
pub trait SupplicantInterface {
    #[zbus(property)]
    fn scanning(&self) -> zbus::Result<bool>;
}
