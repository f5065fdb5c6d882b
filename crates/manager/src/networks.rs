//! The saved networks: an ordered list of credentials the device may join, and its merge with a scan.
//!
//! The model follows the FreeRTOS BLE provisioning service (list saved and scanned together, add, reorder,
//! delete, switch) and the Matter network commissioning cluster (add-or-update by network ID, a bounded list,
//! a last result per network), with two differences from both: every operation is all-or-nothing and answers
//! with a status ([`NetworkError`] maps 1:1 onto the wire statuses), and nothing is ever dropped to make room.
//!
//! [`NetworkList`] keeps the networks in priority order, index 0 first, identified by their SSID bytes. It
//! holds at most [`NetworkList::capacity`] networks ([`NetworkList::DEFAULT_CAPACITY`] unless configured).
//! Like the rest of this crate it does no I/O and reads no clock: persistence is `wifiprov-store`'s job, and the
//! time of a [`LastResult`] is passed in by the caller.

use core::fmt;
use core::str::FromStr;

use wifiprov_backend::{
    AccessPoint, AuthMode, Bssid, ConnectRequest, DisconnectReason, LinkInfo, Passphrase, Rssi, Ssid, SsidVisibility,
};

/// How a saved network authenticates, as far as joining it is concerned.
///
/// This is narrower than [`AuthMode`]: it lists only what wifiprov can join with a passphrase. The text form
/// (used by `Display`, `FromStr` and the store's file) is the kebab-case name listed on each variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NetworkSecurity {
    /// `open`: no authentication and no passphrase.
    Open,
    /// `wpa-psk`: WPA or WPA2 personal (a pre-shared key), the `WPA-PSK` key management of wpa_supplicant.
    WpaPsk,
    /// `wpa3-sae`: WPA3 personal only (SAE).
    Wpa3Sae,
    /// `wpa2-wpa3`: WPA2/WPA3 transition mode; the station uses SAE where it can, PSK otherwise.
    Transition,
}

impl NetworkSecurity {
    /// Every variant, in declaration order.
    pub const ALL: [Self; 4] = [Self::Open, Self::WpaPsk, Self::Wpa3Sae, Self::Transition];

    /// The kebab-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::WpaPsk => "wpa-psk",
            Self::Wpa3Sae => "wpa3-sae",
            Self::Transition => "wpa2-wpa3",
        }
    }

    /// Whether joining needs a passphrase: true for every mode but [`NetworkSecurity::Open`].
    pub const fn uses_passphrase(self) -> bool {
        match self {
            Self::Open => false,
            Self::WpaPsk | Self::Wpa3Sae | Self::Transition => true,
        }
    }

    /// The ESP auth mode that describes this security, for lists sent to clients. [`NetworkSecurity::WpaPsk`]
    /// becomes [`AuthMode::WpaWpa2Psk`], since it covers both.
    pub const fn auth_mode(self) -> AuthMode {
        match self {
            Self::Open => AuthMode::Open,
            Self::WpaPsk => AuthMode::WpaWpa2Psk,
            Self::Wpa3Sae => AuthMode::Wpa3Sae,
            Self::Transition => AuthMode::Wpa2Wpa3,
        }
    }

    /// The security to save for a network that advertises `auth`, or `None` when wifiprov cannot join it with
    /// a passphrase (WEP, enterprise, or a mode this crate does not know yet).
    pub fn from_auth_mode(auth: AuthMode) -> Option<Self> {
        match auth {
            AuthMode::Open => Some(Self::Open),
            AuthMode::WpaPsk | AuthMode::Wpa2Psk | AuthMode::WpaWpa2Psk => Some(Self::WpaPsk),
            AuthMode::Wpa3Sae => Some(Self::Wpa3Sae),
            AuthMode::Wpa2Wpa3 => Some(Self::Transition),
            // `AuthMode` is non-exhaustive; a mode added later is not joinable until it is mapped here.
            _ => None,
        }
    }
}

impl fmt::Display for NetworkSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NetworkSecurity {
    type Err = NetworkError;

    fn from_str(name: &str) -> Result<Self, NetworkError> {
        Self::ALL
            .into_iter()
            .find(|security| security.name() == name)
            .ok_or(NetworkError::InvalidArgument("unknown network security name"))
    }
}

/// Whether a saved network announces its name.
///
/// The text form is `broadcast` or `hidden`. Converts into the backend's [`SsidVisibility`] for connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Visibility {
    /// The network is in beacons.
    #[default]
    Broadcast,
    /// The network hides its name; the station has to probe for it.
    Hidden,
}

impl Visibility {
    /// Both variants.
    pub const ALL: [Self; 2] = [Self::Broadcast, Self::Hidden];

    /// `broadcast` or `hidden`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Broadcast => "broadcast",
            Self::Hidden => "hidden",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Visibility {
    type Err = NetworkError;

    fn from_str(name: &str) -> Result<Self, NetworkError> {
        Self::ALL
            .into_iter()
            .find(|visibility| visibility.name() == name)
            .ok_or(NetworkError::InvalidArgument("unknown visibility name"))
    }
}

impl From<Visibility> for SsidVisibility {
    fn from(visibility: Visibility) -> Self {
        match visibility {
            Visibility::Broadcast => SsidVisibility::Broadcast,
            Visibility::Hidden => SsidVisibility::Hidden,
        }
    }
}

/// How the last attempt to join a saved network ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectOutcome {
    /// Joined and got an address.
    Connected,
    /// The network refused the credentials.
    AuthFailed,
    /// No access point of the network was found.
    NotFound,
    /// Failed for another reason, with the radio's reason code.
    OtherFailure(DisconnectReason),
}

impl ConnectOutcome {
    /// The failure an ESP disconnect reason stands for: [`DisconnectReason::AUTH_FAIL`] is
    /// [`ConnectOutcome::AuthFailed`], [`DisconnectReason::NO_AP_FOUND`] is [`ConnectOutcome::NotFound`], and
    /// every other reason is [`ConnectOutcome::OtherFailure`].
    pub fn from_failure(reason: DisconnectReason) -> Self {
        if reason == DisconnectReason::AUTH_FAIL {
            Self::AuthFailed
        } else if reason == DisconnectReason::NO_AP_FOUND {
            Self::NotFound
        } else {
            Self::OtherFailure(reason)
        }
    }

    /// The kebab-case name of the variant: `connected`, `auth-failed`, `not-found` or `other-failure`. The
    /// reason code of [`ConnectOutcome::OtherFailure`] is not part of it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::AuthFailed => "auth-failed",
            Self::NotFound => "not-found",
            Self::OtherFailure(_) => "other-failure",
        }
    }

    /// Whether the attempt succeeded.
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Connected)
    }
}

impl fmt::Display for ConnectOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherFailure(reason) => write!(f, "other-failure ({reason})"),
            other => f.write_str(other.name()),
        }
    }
}

/// The outcome of the last attempt to join a network, and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LastResult {
    /// How it ended.
    pub outcome: ConnectOutcome,
    /// Wall-clock time of the outcome in seconds since the Unix epoch, as the caller's clock read it. This
    /// crate never reads a clock.
    pub at_unix_secs: u64,
}

impl LastResult {
    /// An outcome at the given wall-clock time.
    pub const fn new(outcome: ConnectOutcome, at_unix_secs: u64) -> Self {
        Self { outcome, at_unix_secs }
    }
}

/// One saved network: what is needed to join it, and how the last attempt went.
///
/// Built with [`SavedNetwork::new`] (or [`SavedNetwork::open`]), which checks that the passphrase fits the
/// security, so every value is joinable as far as the list can tell. `Debug` shows whether there is a
/// passphrase, never its value.
#[derive(Clone)]
pub struct SavedNetwork {
    ssid: Ssid,
    security: NetworkSecurity,
    passphrase: Option<Passphrase>,
    visibility: Visibility,
    bssid: Option<Bssid>,
    last_result: Option<LastResult>,
}

impl SavedNetwork {
    /// A broadcast network with no pinned BSSID and no last result.
    ///
    /// Fails with [`NetworkError::InvalidArgument`] when the passphrase does not fit the security: an open
    /// network must have none, the personal modes need one, and WPA3-SAE cannot use a 64-hex-digit raw PSK
    /// (SAE derives its keys from the passphrase itself).
    pub fn new(ssid: Ssid, security: NetworkSecurity, passphrase: Option<Passphrase>) -> Result<Self, NetworkError> {
        match (&passphrase, security.uses_passphrase()) {
            (Some(_), false) => return Err(NetworkError::InvalidArgument("an open network takes no passphrase")),
            (None, true) => return Err(NetworkError::InvalidArgument("a personal network needs a passphrase")),
            (Some(psk), true) if psk.is_raw_psk() && security == NetworkSecurity::Wpa3Sae => {
                return Err(NetworkError::InvalidArgument("WPA3-SAE needs a passphrase, not a raw PSK"));
            }
            _ => {}
        }
        Ok(Self { ssid, security, passphrase, visibility: Visibility::Broadcast, bssid: None, last_result: None })
    }

    /// An open network.
    pub fn open(ssid: Ssid) -> Self {
        Self {
            ssid,
            security: NetworkSecurity::Open,
            passphrase: None,
            visibility: Visibility::Broadcast,
            bssid: None,
            last_result: None,
        }
    }

    /// Sets whether the network hides its name.
    #[must_use]
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Pins the network to one access point (`Some`), or lets the radio pick (`None`).
    #[must_use]
    pub fn with_bssid(mut self, bssid: Option<Bssid>) -> Self {
        self.bssid = bssid;
        self
    }

    /// The same network with another security, when its passphrase fits that security (checked as in
    /// [`SavedNetwork::new`]); otherwise the network unchanged. Used to record the security the radio actually
    /// found on a network saved with a guessed one.
    #[must_use]
    pub fn with_security_if_valid(self, security: NetworkSecurity) -> Self {
        match Self::new(self.ssid.clone(), security, self.passphrase.clone()) {
            Ok(_) => Self { security, ..self },
            Err(_) => self,
        }
    }

    /// Sets the last result.
    #[must_use]
    pub fn with_last_result(mut self, last_result: Option<LastResult>) -> Self {
        self.last_result = last_result;
        self
    }

    /// The network name; it identifies the network in the list.
    pub fn ssid(&self) -> &Ssid {
        &self.ssid
    }

    /// The security to join with.
    pub fn security(&self) -> NetworkSecurity {
        self.security
    }

    /// The passphrase; `Some` exactly when [`NetworkSecurity::uses_passphrase`].
    pub fn passphrase(&self) -> Option<&Passphrase> {
        self.passphrase.as_ref()
    }

    /// Whether the network hides its name.
    pub fn visibility(&self) -> Visibility {
        self.visibility
    }

    /// The access point the network is pinned to, if any.
    pub fn bssid(&self) -> Option<Bssid> {
        self.bssid
    }

    /// How the last attempt to join it went, if one was recorded.
    pub fn last_result(&self) -> Option<LastResult> {
        self.last_result
    }

    /// The backend request that joins this network.
    pub fn connect_request(&self) -> ConnectRequest {
        let request =
            ConnectRequest::new(self.ssid.clone(), self.passphrase.clone()).with_visibility(self.visibility.into());
        match self.bssid {
            Some(bssid) => request.with_bssid(bssid),
            None => request,
        }
    }
}

impl fmt::Debug for SavedNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedNetwork")
            .field("ssid", &self.ssid)
            .field("security", &self.security)
            .field("passphrase", &self.passphrase.as_ref().map(|_| Redacted))
            .field("visibility", &self.visibility)
            .field("bssid", &self.bssid)
            .field("last_result", &self.last_result)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a list operation was refused. The list is unchanged whenever one is returned.
///
/// Each variant maps onto one wire status of the provisioning protocols; a failed connect is reported by the
/// connection policy, not by the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// Adding a new network would exceed the capacity.
    #[error("saved-network list is full ({capacity} networks)")]
    Full {
        /// The list's capacity.
        capacity: usize,
    },
    /// A priority index outside the list.
    #[error("priority {index} is out of range for {len} saved networks")]
    OutOfRange {
        /// The rejected index.
        index: usize,
        /// The number of saved networks when it was rejected.
        len: usize,
    },
    /// No saved network has this SSID.
    #[error("no saved network \"{ssid}\"")]
    NotFound {
        /// The SSID asked for.
        ssid: Ssid,
    },
    /// A value that can never be valid, such as a passphrase on an open network or a capacity of 0.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

/// What [`NetworkList::add_or_update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddOutcome {
    /// The network was new and now sits at this priority.
    Added {
        /// Its priority index.
        index: usize,
    },
    /// A network with the same SSID was replaced and now sits at this priority.
    Updated {
        /// Its priority index.
        index: usize,
    },
}

impl AddOutcome {
    /// The network's priority index after the operation.
    pub const fn index(self) -> usize {
        match self {
            Self::Added { index } | Self::Updated { index } => index,
        }
    }
}

/// The saved networks in priority order (index 0 is tried first), at most [`NetworkList::capacity`] of them,
/// no two with the same SSID.
///
/// Every mutating method either succeeds completely or returns a [`NetworkError`] and leaves the list exactly as
/// it was.
#[derive(Debug, Clone)]
pub struct NetworkList {
    networks: Vec<SavedNetwork>,
    capacity: usize,
}

impl Default for NetworkList {
    fn default() -> Self {
        Self::new()
    }
}

impl NetworkList {
    /// The capacity of a list nobody configured: 8, as in the FreeRTOS provisioning service.
    pub const DEFAULT_CAPACITY: usize = 8;

    /// An empty list with [`NetworkList::DEFAULT_CAPACITY`].
    pub fn new() -> Self {
        Self { networks: Vec::new(), capacity: Self::DEFAULT_CAPACITY }
    }

    /// An empty list holding at most `capacity` networks; the capacity must be at least 1.
    pub fn with_capacity(capacity: usize) -> Result<Self, NetworkError> {
        check_capacity(capacity)?;
        Ok(Self { networks: Vec::new(), capacity })
    }

    /// A list of these networks in this order, as loaded from storage.
    ///
    /// Fails if the capacity is 0 ([`NetworkError::InvalidArgument`]), if there are more networks than the
    /// capacity ([`NetworkError::Full`]), or if two networks share an SSID ([`NetworkError::InvalidArgument`]).
    pub fn from_networks(capacity: usize, networks: Vec<SavedNetwork>) -> Result<Self, NetworkError> {
        check_capacity(capacity)?;
        if networks.len() > capacity {
            return Err(NetworkError::Full { capacity });
        }
        for (index, network) in networks.iter().enumerate() {
            if networks.iter().skip(index + 1).any(|other| other.ssid == network.ssid) {
                return Err(NetworkError::InvalidArgument("two saved networks have the same SSID"));
            }
        }
        Ok(Self { networks, capacity })
    }

    /// The most networks the list holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the capacity, for example to the daemon's configured value after loading a list saved under
    /// another. Fails with [`NetworkError::InvalidArgument`] if `capacity` is 0 or fewer than the networks
    /// already saved: the list never drops a network to fit.
    pub fn set_capacity(&mut self, capacity: usize) -> Result<(), NetworkError> {
        check_capacity(capacity)?;
        if capacity < self.networks.len() {
            return Err(NetworkError::InvalidArgument("capacity is below the number of saved networks"));
        }
        self.capacity = capacity;
        Ok(())
    }

    /// The number of saved networks.
    pub fn len(&self) -> usize {
        self.networks.len()
    }

    /// Whether no network is saved.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether adding a new network would fail with [`NetworkError::Full`].
    pub fn is_full(&self) -> bool {
        self.networks.len() >= self.capacity
    }

    /// The networks in priority order.
    pub fn iter(&self) -> core::slice::Iter<'_, SavedNetwork> {
        self.networks.iter()
    }

    /// The networks in priority order, as a slice.
    pub fn as_slice(&self) -> &[SavedNetwork] {
        &self.networks
    }

    /// The network with this SSID.
    pub fn get(&self, ssid: &Ssid) -> Option<&SavedNetwork> {
        self.networks.iter().find(|network| network.ssid == *ssid)
    }

    /// The network at this priority index.
    pub fn get_at(&self, index: usize) -> Option<&SavedNetwork> {
        self.networks.get(index)
    }

    /// The priority index of the network with this SSID.
    pub fn position(&self, ssid: &Ssid) -> Option<usize> {
        self.networks.iter().position(|network| network.ssid == *ssid)
    }

    /// Saves `network`, replacing a saved network with the same SSID.
    ///
    /// - A new network goes to `priority`, or to the end (lowest priority) when `None`. `priority` may be at
    ///   most [`NetworkList::len`] (equal to it means the end). The list must have room: a full list answers
    ///   [`NetworkError::Full`] and nothing is evicted.
    /// - An existing network is replaced wholesale (credentials, visibility, BSSID and last result all come
    ///   from `network`), and stays where it was when `priority` is `None` or moves to `priority`, which must
    ///   then be below [`NetworkList::len`]. An update never needs room.
    ///
    /// A priority outside those ranges is refused with [`NetworkError::OutOfRange`] rather than clamped, so a
    /// client never gets a different order than it asked for without being told. When a new network is both
    /// over capacity and out of range, [`NetworkError::Full`] wins.
    pub fn add_or_update(
        &mut self,
        network: SavedNetwork,
        priority: Option<usize>,
    ) -> Result<AddOutcome, NetworkError> {
        let len = self.networks.len();
        match self.position(&network.ssid) {
            Some(current) => {
                let index = priority.unwrap_or(current);
                if index >= len {
                    return Err(NetworkError::OutOfRange { index, len });
                }
                self.networks.remove(current);
                self.networks.insert(index, network);
                Ok(AddOutcome::Updated { index })
            }
            None => {
                if len >= self.capacity {
                    return Err(NetworkError::Full { capacity: self.capacity });
                }
                let index = priority.unwrap_or(len);
                if index > len {
                    return Err(NetworkError::OutOfRange { index, len });
                }
                self.networks.insert(index, network);
                Ok(AddOutcome::Added { index })
            }
        }
    }

    /// Forgets the network with this SSID and returns it; the networks after it move up one place.
    ///
    /// Removing the network the station is connected to is allowed; leaving it is the caller's decision.
    pub fn remove(&mut self, ssid: &Ssid) -> Result<SavedNetwork, NetworkError> {
        let index = self.position(ssid).ok_or_else(|| not_found(ssid))?;
        Ok(self.networks.remove(index))
    }

    /// Moves the network with this SSID to priority `index` (below [`NetworkList::len`]), shifting the networks
    /// in between by one place; the others keep their relative order. Returns the old index. Moving a network
    /// to where it already is succeeds and changes nothing.
    pub fn move_to(&mut self, ssid: &Ssid, index: usize) -> Result<usize, NetworkError> {
        let current = self.position(ssid).ok_or_else(|| not_found(ssid))?;
        let len = self.networks.len();
        if index >= len {
            return Err(NetworkError::OutOfRange { index, len });
        }
        if index != current {
            let network = self.networks.remove(current);
            self.networks.insert(index, network);
        }
        Ok(current)
    }

    /// Moves the network with this SSID to priority 0, as for a network that was just joined on a client's
    /// request (ESP's `SetConfig` + `ApplyConfig`). Returns the old index.
    pub fn promote_to_top(&mut self, ssid: &Ssid) -> Result<usize, NetworkError> {
        self.move_to(ssid, 0)
    }

    /// Records how the last attempt to join the network with this SSID ended.
    pub fn record_result(&mut self, ssid: &Ssid, result: LastResult) -> Result<(), NetworkError> {
        let network = self.networks.iter_mut().find(|network| network.ssid == *ssid).ok_or_else(|| not_found(ssid))?;
        network.last_result = Some(result);
        Ok(())
    }

    /// The list a client sees: the saved networks merged with the latest scan and the current link.
    ///
    /// - First every saved network in priority order. Its RSSI and BSSID are those of the strongest access
    ///   point in `scan` with its SSID (only its pinned BSSID counts when it has one); when none is in the
    ///   scan but it is the connected network, they come from `connected`; otherwise they are `None`. Its
    ///   security is the saved one.
    /// - Then every other network name in `scan`, once, with its strongest access point, strongest first
    ///   (ties by SSID bytes). Access points that hide their name are left out. If the connected network is
    ///   not saved and not in the scan, it is listed here from `connected`.
    ///
    /// `connected` is the current link, if any; the network with its SSID is flagged `connected`.
    pub fn merged_with_scan(&self, scan: &[AccessPoint], connected: Option<&LinkInfo>) -> Vec<ListedNetwork> {
        let link_for = |ssid: &Ssid| connected.filter(|link| link.ssid == *ssid);
        let mut listed = Vec::with_capacity(self.networks.len() + scan.len());

        for (priority, network) in self.networks.iter().enumerate() {
            let link = link_for(&network.ssid);
            let strongest = strongest_ap(scan, &network.ssid, network.bssid);
            let (rssi, bssid) = match (strongest, link) {
                (Some(ap), _) => (Some(ap.rssi), Some(ap.bssid)),
                (None, Some(link)) => (Some(link.rssi), Some(link.bssid)),
                (None, None) => (None, None),
            };
            listed.push(ListedNetwork {
                ssid: network.ssid.clone(),
                priority: Some(priority),
                saved: true,
                connected: link.is_some(),
                rssi,
                bssid,
                security: network.security.auth_mode(),
                visibility: network.visibility,
                last_result: network.last_result,
            });
        }

        let mut unsaved: Vec<ListedNetwork> = Vec::new();
        for ap in scan {
            let Some(ssid) = &ap.ssid else { continue };
            if self.get(ssid).is_some() {
                continue;
            }
            match unsaved.iter_mut().find(|entry| entry.ssid == *ssid) {
                Some(entry) => {
                    if Some(ap.rssi) > entry.rssi {
                        entry.rssi = Some(ap.rssi);
                        entry.bssid = Some(ap.bssid);
                        entry.security = ap.auth;
                    }
                }
                None => unsaved.push(ListedNetwork {
                    ssid: ssid.clone(),
                    priority: None,
                    saved: false,
                    connected: link_for(ssid).is_some(),
                    rssi: Some(ap.rssi),
                    bssid: Some(ap.bssid),
                    security: ap.auth,
                    visibility: Visibility::Broadcast,
                    last_result: None,
                }),
            }
        }
        if let Some(link) = connected
            && self.get(&link.ssid).is_none()
            && !unsaved.iter().any(|entry| entry.ssid == link.ssid)
        {
            unsaved.push(ListedNetwork {
                ssid: link.ssid.clone(),
                priority: None,
                saved: false,
                connected: true,
                rssi: Some(link.rssi),
                bssid: Some(link.bssid),
                security: link.auth,
                visibility: Visibility::Broadcast,
                last_result: None,
            });
        }
        unsaved.sort_by(|a, b| b.rssi.cmp(&a.rssi).then_with(|| a.ssid.cmp(&b.ssid)));
        listed.append(&mut unsaved);
        listed
    }
}

impl<'a> IntoIterator for &'a NetworkList {
    type Item = &'a SavedNetwork;
    type IntoIter = core::slice::Iter<'a, SavedNetwork>;

    fn into_iter(self) -> Self::IntoIter {
        self.networks.iter()
    }
}

/// One entry of [`NetworkList::merged_with_scan`]. It carries no secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListedNetwork {
    /// The network name.
    pub ssid: Ssid,
    /// The priority index for a saved network, `None` for one only seen in the scan.
    pub priority: Option<usize>,
    /// Whether the network is saved (the same as `priority.is_some()`).
    pub saved: bool,
    /// Whether the station is connected to it.
    pub connected: bool,
    /// Signal strength of its strongest access point, when one is visible.
    pub rssi: Option<Rssi>,
    /// That access point, when one is visible.
    pub bssid: Option<Bssid>,
    /// Its security: as saved for a saved network, as advertised for a scanned one.
    pub security: AuthMode,
    /// Whether it hides its name; scanned networks are always [`Visibility::Broadcast`], since access points
    /// that hide their name are left out of the list.
    pub visibility: Visibility,
    /// How the last attempt to join it ended, for a saved network.
    pub last_result: Option<LastResult>,
}

fn check_capacity(capacity: usize) -> Result<(), NetworkError> {
    if capacity == 0 {
        return Err(NetworkError::InvalidArgument("capacity must be at least 1"));
    }
    Ok(())
}

fn not_found(ssid: &Ssid) -> NetworkError {
    NetworkError::NotFound { ssid: ssid.clone() }
}

/// The strongest access point in `scan` with this SSID, and with this BSSID when one is pinned.
fn strongest_ap<'a>(scan: &'a [AccessPoint], ssid: &Ssid, pinned: Option<Bssid>) -> Option<&'a AccessPoint> {
    scan.iter()
        .filter(|ap| ap.ssid.as_ref() == Some(ssid))
        .filter(|ap| pinned.is_none_or(|bssid| ap.bssid == bssid))
        .max_by_key(|ap| ap.rssi)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use wifiprov_backend::Channel;

    use super::*;

    const SECRET: &str = "hunter2-but-longer";

    fn ssid(name: &str) -> Ssid {
        Ssid::try_from(name).expect("valid SSID")
    }

    fn psk(value: &str) -> Passphrase {
        Passphrase::try_from(value).expect("valid passphrase")
    }

    fn wpa(name: &str) -> SavedNetwork {
        SavedNetwork::new(ssid(name), NetworkSecurity::WpaPsk, Some(psk(SECRET))).expect("valid network")
    }

    fn names(list: &NetworkList) -> Vec<String> {
        list.iter().map(|network| network.ssid().to_string()).collect()
    }

    /// Everything about a list, secrets included, in a comparable form.
    fn snapshot(list: &NetworkList) -> (usize, Vec<String>) {
        let networks = list
            .iter()
            .map(|n| {
                format!("{n:?} {}", n.passphrase().map_or_else(|| "-".to_owned(), |p| p.expose_secret().to_owned()))
            })
            .collect();
        (list.capacity(), networks)
    }

    fn list_of(names: &[&str]) -> NetworkList {
        let mut list = NetworkList::new();
        for name in names {
            list.add_or_update(wpa(name), None).expect("room");
        }
        list
    }

    fn ap(name: Option<&str>, last_octet: u8, dbm: i8) -> AccessPoint {
        AccessPoint {
            ssid: name.map(ssid),
            bssid: Bssid::new([2, 0, 0, 0, 0, last_octet]),
            channel: Channel::new(6).expect("valid channel"),
            rssi: Rssi::new(dbm),
            auth: AuthMode::Wpa2Psk,
        }
    }

    fn link(name: &str, dbm: i8) -> LinkInfo {
        LinkInfo {
            ssid: ssid(name),
            bssid: Bssid::new([2, 0, 0, 0, 0, 0xee]),
            channel: Channel::new(11).expect("valid channel"),
            auth: AuthMode::Wpa3Sae,
            ip4: Ipv4Addr::new(192, 0, 2, 10),
            rssi: Rssi::new(dbm),
        }
    }

    #[test]
    fn new_list_is_empty_with_default_capacity() {
        let list = NetworkList::new();
        assert!(list.is_empty());
        assert_eq!(list.capacity(), 8);
        assert_eq!(NetworkList::default().capacity(), NetworkList::DEFAULT_CAPACITY);
        assert_eq!(
            NetworkList::with_capacity(0).err(),
            Some(NetworkError::InvalidArgument("capacity must be at least 1"))
        );
        assert_eq!(NetworkList::with_capacity(1).expect("valid").capacity(), 1);
    }

    #[test]
    fn validation_ties_passphrase_to_security() {
        assert!(SavedNetwork::new(ssid("a"), NetworkSecurity::Open, Some(psk(SECRET))).is_err());
        for security in [NetworkSecurity::WpaPsk, NetworkSecurity::Wpa3Sae, NetworkSecurity::Transition] {
            assert!(matches!(SavedNetwork::new(ssid("a"), security, None), Err(NetworkError::InvalidArgument(_))));
            assert!(SavedNetwork::new(ssid("a"), security, Some(psk(SECRET))).is_ok());
        }
        assert!(SavedNetwork::new(ssid("a"), NetworkSecurity::Open, None).is_ok());
        let raw = psk(&"ab".repeat(32));
        assert!(SavedNetwork::new(ssid("a"), NetworkSecurity::Wpa3Sae, Some(raw.clone())).is_err());
        assert!(SavedNetwork::new(ssid("a"), NetworkSecurity::WpaPsk, Some(raw.clone())).is_ok());
        assert!(SavedNetwork::new(ssid("a"), NetworkSecurity::Transition, Some(raw)).is_ok());
        assert_eq!(SavedNetwork::open(ssid("a")).security(), NetworkSecurity::Open);
    }

    #[test]
    fn add_appends_by_default_and_inserts_at_priority() {
        let mut list = NetworkList::new();
        assert_eq!(list.add_or_update(wpa("a"), None), Ok(AddOutcome::Added { index: 0 }));
        assert_eq!(list.add_or_update(wpa("b"), None), Ok(AddOutcome::Added { index: 1 }));
        assert_eq!(list.add_or_update(wpa("c"), Some(0)), Ok(AddOutcome::Added { index: 0 }));
        assert_eq!(list.add_or_update(wpa("d"), Some(2)), Ok(AddOutcome::Added { index: 2 }));
        // Priority equal to the length means the end.
        assert_eq!(list.add_or_update(wpa("e"), Some(4)), Ok(AddOutcome::Added { index: 4 }));
        assert_eq!(names(&list), ["c", "a", "d", "b", "e"]);
        assert_eq!(list.position(&ssid("d")), Some(2));
        assert_eq!(list.get_at(1).map(|n| n.ssid().clone()), Some(ssid("a")));
        assert!(list.get(&ssid("zz")).is_none());
    }

    #[test]
    fn add_beyond_the_end_is_out_of_range_and_changes_nothing() {
        let mut list = list_of(&["a", "b"]);
        let before = snapshot(&list);
        assert_eq!(list.add_or_update(wpa("c"), Some(3)), Err(NetworkError::OutOfRange { index: 3, len: 2 }));
        assert_eq!(snapshot(&list), before);
    }

    #[test]
    fn ninth_add_into_capacity_eight_is_full_and_changes_nothing() {
        let names8 = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"];
        let mut list = list_of(&names8);
        assert!(list.is_full());
        let before = snapshot(&list);
        for priority in [None, Some(0), Some(8), Some(100)] {
            assert_eq!(list.add_or_update(wpa("n8"), priority), Err(NetworkError::Full { capacity: 8 }));
            assert_eq!(snapshot(&list), before);
        }
        // Updates still work on a full list.
        assert_eq!(list.add_or_update(wpa("n3"), Some(0)), Ok(AddOutcome::Updated { index: 0 }));
        assert_eq!(list.len(), 8);
    }

    #[test]
    fn configured_capacity_is_enforced() {
        let mut list = NetworkList::with_capacity(2).expect("valid");
        list.add_or_update(wpa("a"), None).expect("room");
        list.add_or_update(wpa("b"), None).expect("room");
        assert_eq!(list.add_or_update(wpa("c"), None), Err(NetworkError::Full { capacity: 2 }));
        assert!(list.set_capacity(1).is_err());
        assert!(list.set_capacity(0).is_err());
        assert_eq!(list.capacity(), 2);
        list.set_capacity(3).expect("above the length");
        assert_eq!(list.add_or_update(wpa("c"), None), Ok(AddOutcome::Added { index: 2 }));
    }

    #[test]
    fn update_changes_passphrase_and_keeps_priority() {
        let mut list = list_of(&["a", "b", "c"]);
        let updated = SavedNetwork::new(ssid("b"), NetworkSecurity::Transition, Some(psk("a-new-passphrase")))
            .expect("valid")
            .with_visibility(Visibility::Hidden);
        assert_eq!(list.add_or_update(updated, None), Ok(AddOutcome::Updated { index: 1 }));
        assert_eq!(names(&list), ["a", "b", "c"]);
        let b = list.get(&ssid("b")).expect("saved");
        assert_eq!(b.passphrase().map(Passphrase::expose_secret), Some("a-new-passphrase"));
        assert_eq!(b.security(), NetworkSecurity::Transition);
        assert_eq!(b.visibility(), Visibility::Hidden);
    }

    #[test]
    fn update_replaces_the_last_result_too() {
        let mut list = list_of(&["a"]);
        list.record_result(&ssid("a"), LastResult::new(ConnectOutcome::AuthFailed, 10)).expect("saved");
        list.add_or_update(wpa("a"), None).expect("update");
        assert_eq!(list.get(&ssid("a")).and_then(SavedNetwork::last_result), None);
    }

    #[test]
    fn update_with_priority_moves_and_checks_range() {
        let mut list = list_of(&["a", "b", "c"]);
        assert_eq!(list.add_or_update(wpa("a"), Some(2)), Ok(AddOutcome::Updated { index: 2 }));
        assert_eq!(names(&list), ["b", "c", "a"]);
        let before = snapshot(&list);
        // An update cannot go to `len`: there is no slot there once the old entry is counted.
        assert_eq!(list.add_or_update(wpa("b"), Some(3)), Err(NetworkError::OutOfRange { index: 3, len: 3 }));
        assert_eq!(snapshot(&list), before);
    }

    #[test]
    fn remove_forgets_and_closes_the_gap() {
        let mut list = list_of(&["a", "b", "c"]);
        let removed = list.remove(&ssid("b")).expect("saved");
        assert_eq!(removed.ssid(), &ssid("b"));
        assert_eq!(names(&list), ["a", "c"]);
        let before = snapshot(&list);
        assert_eq!(list.remove(&ssid("b")).err(), Some(NetworkError::NotFound { ssid: ssid("b") }));
        assert_eq!(snapshot(&list), before);
        list.remove(&ssid("a")).expect("saved");
        list.remove(&ssid("c")).expect("saved");
        assert!(list.is_empty());
    }

    #[test]
    fn removing_the_connected_network_keeps_it_listed_as_unsaved() {
        let mut list = list_of(&["home", "work"]);
        let current = link("home", -50);
        let listed = list.merged_with_scan(&[], Some(&current));
        assert!(listed.first().is_some_and(|n| n.connected && n.saved));
        list.remove(&ssid("home")).expect("saved");
        let listed = list.merged_with_scan(&[], Some(&current));
        assert_eq!(listed.len(), 2);
        let home = listed.iter().find(|n| n.ssid == ssid("home")).expect("still listed");
        assert!(home.connected && !home.saved && home.priority.is_none());
        assert_eq!(home.rssi, Some(Rssi::new(-50)));
    }

    #[test]
    fn move_to_reorders_keeping_relative_order() {
        let mut list = list_of(&["a", "b", "c", "d"]);
        assert_eq!(list.move_to(&ssid("d"), 1), Ok(3));
        assert_eq!(names(&list), ["a", "d", "b", "c"]);
        assert_eq!(list.move_to(&ssid("a"), 3), Ok(0));
        assert_eq!(names(&list), ["d", "b", "c", "a"]);
    }

    #[test]
    fn move_to_the_same_index_changes_nothing() {
        let mut list = list_of(&["a", "b", "c"]);
        let before = snapshot(&list);
        assert_eq!(list.move_to(&ssid("b"), 1), Ok(1));
        assert_eq!(snapshot(&list), before);
    }

    #[test]
    fn move_to_refuses_bad_index_and_unknown_ssid() {
        let mut list = list_of(&["a", "b", "c"]);
        let before = snapshot(&list);
        assert_eq!(list.move_to(&ssid("a"), 3), Err(NetworkError::OutOfRange { index: 3, len: 3 }));
        assert_eq!(list.move_to(&ssid("x"), 0), Err(NetworkError::NotFound { ssid: ssid("x") }));
        assert_eq!(NetworkList::new().move_to(&ssid("x"), 0).err(), Some(NetworkError::NotFound { ssid: ssid("x") }));
        assert_eq!(snapshot(&list), before);
    }

    #[test]
    fn promote_to_top_moves_to_priority_zero() {
        let mut list = list_of(&["a", "b", "c"]);
        assert_eq!(list.promote_to_top(&ssid("c")), Ok(2));
        assert_eq!(names(&list), ["c", "a", "b"]);
        assert_eq!(list.promote_to_top(&ssid("c")), Ok(0));
        assert_eq!(names(&list), ["c", "a", "b"]);
        assert!(list.promote_to_top(&ssid("z")).is_err());
    }

    #[test]
    fn record_result_sets_last_result() {
        let mut list = list_of(&["a", "b"]);
        let result = LastResult::new(ConnectOutcome::OtherFailure(DisconnectReason::ASSOC_FAIL), 1_700_000_000);
        list.record_result(&ssid("b"), result).expect("saved");
        assert_eq!(list.get(&ssid("b")).and_then(SavedNetwork::last_result), Some(result));
        assert_eq!(list.get(&ssid("a")).and_then(SavedNetwork::last_result), None);
        let before = snapshot(&list);
        assert_eq!(list.record_result(&ssid("x"), result), Err(NetworkError::NotFound { ssid: ssid("x") }));
        assert_eq!(snapshot(&list), before);
    }

    #[test]
    fn from_networks_validates() {
        assert!(NetworkList::from_networks(2, vec![wpa("a"), wpa("b")]).is_ok());
        assert_eq!(
            NetworkList::from_networks(1, vec![wpa("a"), wpa("b")]).err(),
            Some(NetworkError::Full { capacity: 1 })
        );
        assert!(matches!(
            NetworkList::from_networks(3, vec![wpa("a"), wpa("b"), wpa("a")]),
            Err(NetworkError::InvalidArgument(_))
        ));
        assert!(NetworkList::from_networks(0, Vec::new()).is_err());
    }

    #[test]
    fn merged_lists_saved_first_then_scanned_by_strength() {
        let mut list = list_of(&["home", "office", "cabin"]);
        let hidden = SavedNetwork::open(ssid("secret-lab")).with_visibility(Visibility::Hidden);
        list.add_or_update(hidden, None).expect("room");
        let scan = [
            ap(Some("cafe"), 1, -70),
            ap(Some("office"), 2, -80),
            ap(None, 3, -20),
            ap(Some("office"), 4, -40),
            ap(Some("airport"), 5, -60),
            ap(Some("cafe"), 6, -50),
            ap(Some("bakery"), 7, -60),
        ];
        let current = link("home", -55);
        let listed = list.merged_with_scan(&scan, Some(&current));
        let order: Vec<String> = listed.iter().map(|n| n.ssid.to_string()).collect();
        assert_eq!(order, ["home", "office", "cabin", "secret-lab", "cafe", "airport", "bakery"]);

        let by_name = |name: &str| listed.iter().find(|n| n.ssid == ssid(name)).expect("listed");
        let home = by_name("home");
        assert_eq!((home.priority, home.saved, home.connected), (Some(0), true, true));
        assert_eq!(home.rssi, Some(Rssi::new(-55)), "connected but not in the scan: RSSI from the link");
        let office = by_name("office");
        assert_eq!((office.priority, office.connected), (Some(1), false));
        assert_eq!((office.rssi, office.bssid), (Some(Rssi::new(-40)), Some(Bssid::new([2, 0, 0, 0, 0, 4]))));
        assert_eq!(office.security, AuthMode::WpaWpa2Psk, "saved networks show the saved security");
        let cabin = by_name("cabin");
        assert_eq!((cabin.rssi, cabin.bssid, cabin.connected), (None, None, false));
        let lab = by_name("secret-lab");
        assert_eq!((lab.visibility, lab.security, lab.priority), (Visibility::Hidden, AuthMode::Open, Some(3)));
        let cafe = by_name("cafe");
        assert_eq!((cafe.priority, cafe.saved, cafe.rssi), (None, false, Some(Rssi::new(-50))));
        assert_eq!(cafe.bssid, Some(Bssid::new([2, 0, 0, 0, 0, 6])));
        assert_eq!(cafe.visibility, Visibility::Broadcast);
    }

    #[test]
    fn merged_respects_pinned_bssid() {
        let pinned = wpa("office").with_bssid(Some(Bssid::new([2, 0, 0, 0, 0, 2])));
        let mut list = NetworkList::new();
        list.add_or_update(pinned, None).expect("room");
        let scan = [ap(Some("office"), 2, -80), ap(Some("office"), 4, -40)];
        let listed = list.merged_with_scan(&scan, None);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed.first().and_then(|n| n.rssi), Some(Rssi::new(-80)));
        let listed = list.merged_with_scan(&[ap(Some("office"), 4, -40)], None);
        assert_eq!(listed.first().and_then(|n| n.rssi), None);
    }

    #[test]
    fn merged_marks_a_connected_unsaved_network() {
        let list = list_of(&["home"]);
        let scan = [ap(Some("guest"), 1, -60), ap(Some("cafe"), 2, -40)];
        let listed = list.merged_with_scan(&scan, Some(&link("guest", -61)));
        let guest = listed.iter().find(|n| n.ssid == ssid("guest")).expect("listed");
        assert!(guest.connected && !guest.saved);
        assert_eq!(guest.rssi, Some(Rssi::new(-60)), "scan RSSI wins over the link's");
        assert_eq!(listed.iter().filter(|n| n.connected).count(), 1);
        assert!(NetworkList::new().merged_with_scan(&[], None).is_empty());
    }

    #[test]
    fn connect_request_carries_everything_needed() {
        let network =
            wpa("office").with_visibility(Visibility::Hidden).with_bssid(Some(Bssid::new([2, 0, 0, 0, 0, 9])));
        let request = network.connect_request();
        assert_eq!(request.ssid, ssid("office"));
        assert_eq!(request.passphrase.as_ref().map(Passphrase::expose_secret), Some(SECRET));
        assert_eq!(request.bssid, Some(Bssid::new([2, 0, 0, 0, 0, 9])));
        assert_eq!(request.visibility, SsidVisibility::Hidden);
        let open = SavedNetwork::open(ssid("cafe")).connect_request();
        assert!(open.passphrase.is_none() && open.bssid.is_none());
        assert_eq!(open.visibility, SsidVisibility::Broadcast);
    }

    #[test]
    fn debug_never_shows_the_passphrase() {
        let mut list = list_of(&["home"]);
        list.record_result(&ssid("home"), LastResult::new(ConnectOutcome::Connected, 5)).expect("saved");
        let network = list.get(&ssid("home")).expect("saved");
        let debug = format!("{network:?} {list:?} {:#?}", list.merged_with_scan(&[], None));
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(debug.contains("home"));
        let errors = format!("{:?}", list.add_or_update(wpa("home"), Some(9)));
        assert!(!errors.contains(SECRET));
    }

    #[test]
    fn names_round_trip() {
        for security in NetworkSecurity::ALL {
            assert_eq!(security.name().parse::<NetworkSecurity>(), Ok(security));
            assert_eq!(NetworkSecurity::from_auth_mode(security.auth_mode()), Some(security));
        }
        for visibility in Visibility::ALL {
            assert_eq!(visibility.to_string().parse::<Visibility>(), Ok(visibility));
        }
        assert!("wpa2".parse::<NetworkSecurity>().is_err());
        assert!("Hidden".parse::<Visibility>().is_err());
    }

    #[test]
    fn auth_modes_map_to_joinable_security() {
        assert_eq!(NetworkSecurity::from_auth_mode(AuthMode::Wpa2Psk), Some(NetworkSecurity::WpaPsk));
        assert_eq!(NetworkSecurity::from_auth_mode(AuthMode::WpaPsk), Some(NetworkSecurity::WpaPsk));
        assert_eq!(NetworkSecurity::from_auth_mode(AuthMode::Wep), None);
        assert_eq!(NetworkSecurity::from_auth_mode(AuthMode::Wpa2Enterprise), None);
    }

    #[test]
    fn outcomes_from_reasons() {
        assert_eq!(ConnectOutcome::from_failure(DisconnectReason::AUTH_FAIL), ConnectOutcome::AuthFailed);
        assert_eq!(ConnectOutcome::from_failure(DisconnectReason::NO_AP_FOUND), ConnectOutcome::NotFound);
        let other = ConnectOutcome::from_failure(DisconnectReason::new(15));
        assert_eq!(other, ConnectOutcome::OtherFailure(DisconnectReason::new(15)));
        assert_eq!(other.name(), "other-failure");
        assert_eq!(other.to_string(), "other-failure (15)");
        assert!(ConnectOutcome::Connected.is_success() && !other.is_success());
    }
}
