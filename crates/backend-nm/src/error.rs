//! Why the backend could not start.

/// The NetworkManager backend could not be set up. Each variant says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NmError {
    /// The D-Bus system bus (or the address given) cannot be reached.
    #[error("cannot connect to the D-Bus system bus{}", address.as_deref().map(|a| format!(" at {a}")).unwrap_or_default())]
    Bus {
        /// The explicit address, when one was given.
        address: Option<String>,
        /// The bus error.
        #[source]
        source: zbus::Error,
    },
    /// Nothing owns `org.freedesktop.NetworkManager` on the bus.
    #[error("NetworkManager is not running (nothing answers as org.freedesktop.NetworkManager on the system bus)")]
    NotRunning(#[source] zbus::Error),
    /// The interface named with `--wifi-interface` does not exist (for NetworkManager).
    #[error("there is no network interface {interface} (NetworkManager does not know it)")]
    NoSuchInterface {
        /// The name given.
        interface: String,
    },
    /// The interface exists but is not a Wi-Fi device.
    #[error("{interface} is not a Wi-Fi device")]
    NotWifi {
        /// The name given.
        interface: String,
    },
    /// No interface was named and NetworkManager has no Wi-Fi device.
    #[error("NetworkManager has no Wi-Fi device")]
    NoWifiDevice,
    /// NetworkManager leaves the interface alone (`unmanaged-devices`, or udev rules).
    #[error("NetworkManager does not manage {interface}; remove it from unmanaged-devices")]
    Unmanaged {
        /// The interface.
        interface: String,
    },
    /// A call NetworkManager should have answered failed.
    #[error("NetworkManager failed to {operation}")]
    Call {
        /// What was being done.
        operation: &'static str,
        /// The D-Bus error.
        #[source]
        source: zbus::Error,
    },
}
