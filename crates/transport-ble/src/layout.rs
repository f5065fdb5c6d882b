//! Which characteristic carries which endpoint, seen from the device and from the client.

use wifiprov_proto::endpoint::names;

use crate::uuid::Uuid;

/// The standard endpoints with their ESP ids, in ESP's table order. Custom endpoints follow from 0xFF54.
const STANDARD: [(&str, u16); 5] = [
    (names::PROV_CTRL, 0xff4f),
    (names::PROV_SCAN, 0xff50),
    (names::PROV_SESSION, 0xff51),
    (names::PROV_CONFIG, 0xff52),
    (names::PROTO_VER, 0xff53),
];
const FIRST_CUSTOM_ID: u16 = 0xff54;

/// Endpoints a client needs before it can provision (esp_prov refuses a device without them).
const REQUIRED: [&str; 3] = [names::PROV_SESSION, names::PROV_CONFIG, names::PROTO_VER];

/// Whether `name` is one of the standard endpoints, which have fixed ids; any other is custom.
#[cfg(feature = "bluez")]
pub(crate) fn is_standard_endpoint(name: &str) -> bool {
    STANDARD.iter().any(|(n, _)| *n == name)
}

/// Why a GATT layout is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// Two characteristics claim the same endpoint name (or a custom endpoint reuses a standard name).
    #[error("endpoint {0:?} appears twice")]
    DuplicateEndpoint(String),
    /// More custom endpoints than 16-bit ids left after 0xFF54.
    #[error("too many custom endpoints")]
    TooManyEndpoints,
    /// The device lacks an endpoint every provisioning device has.
    #[error("the device has no {0:?} endpoint; is it an ESP provisioning service?")]
    MissingEndpoint(&'static str),
    /// A user-description descriptor that is not text.
    #[error("a characteristic description is not UTF-8")]
    InvalidName,
    /// A read past the end of a value.
    #[error("read offset {offset} is past the end of a {len}-byte value")]
    InvalidOffset {
        /// The offset asked for.
        offset: usize,
        /// The value's length.
        len: usize,
    },
}

/// The device's GATT layout: one characteristic per endpoint, ids assigned like wifi_prov_mgr does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLayout {
    service: Uuid,
    endpoints: Vec<(String, u16)>,
}

impl DeviceLayout {
    /// The standard endpoints, then `custom` ones in creation order.
    pub fn new(service: Uuid, custom: &[&str]) -> Result<Self, LayoutError> {
        let mut endpoints: Vec<(String, u16)> = STANDARD.iter().map(|(n, id)| ((*n).to_owned(), *id)).collect();
        for (i, name) in custom.iter().enumerate() {
            if endpoints.iter().any(|(n, _)| n == name) {
                return Err(LayoutError::DuplicateEndpoint((*name).to_owned()));
            }
            let id = u16::try_from(i)
                .ok()
                .and_then(|i| FIRST_CUSTOM_ID.checked_add(i))
                .ok_or(LayoutError::TooManyEndpoints)?;
            endpoints.push(((*name).to_owned(), id));
        }
        Ok(Self { service, endpoints })
    }

    /// The service UUID.
    pub fn service(&self) -> Uuid {
        self.service
    }

    /// Every endpoint with its characteristic UUID, in table order (each also gets a 0x2901 descriptor
    /// holding the name as ASCII without a NUL).
    pub fn characteristics(&self) -> impl Iterator<Item = (&str, Uuid)> {
        self.endpoints.iter().map(|(name, id)| (name.as_str(), self.service.with_endpoint_id(*id)))
    }

    /// The endpoint a written characteristic belongs to. Like ESP, only the 16-bit id counts.
    pub fn endpoint_for(&self, characteristic: Uuid) -> Option<&str> {
        let id = characteristic.endpoint_id();
        self.endpoints.iter().find(|(_, i)| *i == id).map(|(n, _)| n.as_str())
    }
}

/// The client's view: endpoint name to characteristic, built from the 0x2901 descriptors it read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointMap {
    endpoints: Vec<(String, Uuid)>,
}

impl EndpointMap {
    /// Builds the map from `(characteristic, user description)` pairs. Characteristics without a description
    /// are left out by the caller; trailing NULs (some stacks add one) are ignored.
    pub fn from_descriptors<'a>(descriptors: impl IntoIterator<Item = (Uuid, &'a [u8])>) -> Result<Self, LayoutError> {
        let mut endpoints: Vec<(String, Uuid)> = Vec::new();
        for (uuid, description) in descriptors {
            let trimmed = description.strip_suffix(&[0]).unwrap_or(description);
            let name = std::str::from_utf8(trimmed).map_err(|_| LayoutError::InvalidName)?;
            if endpoints.iter().any(|(n, _)| n == name) {
                return Err(LayoutError::DuplicateEndpoint(name.to_owned()));
            }
            endpoints.push((name.to_owned(), uuid));
        }
        for required in REQUIRED {
            if !endpoints.iter().any(|(n, _)| n == required) {
                return Err(LayoutError::MissingEndpoint(required));
            }
        }
        Ok(Self { endpoints })
    }

    /// The characteristic of endpoint `name`.
    pub fn characteristic(&self, name: &str) -> Option<Uuid> {
        self.endpoints.iter().find(|(n, _)| n == name).map(|(_, u)| *u)
    }

    /// Endpoint names in discovery order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(|(n, _)| n.as_str())
    }
}

/// The part of `value` a read at `offset` returns: the rest of the value, at most `mtu - 1` bytes (what fits in
/// one ATT read response). A client reads long values by asking again at the next offset until a short read.
pub fn read_at_offset(value: &[u8], offset: usize, mtu: usize) -> Result<&[u8], LayoutError> {
    let rest = value.get(offset..).ok_or(LayoutError::InvalidOffset { offset, len: value.len() })?;
    Ok(rest.get(..mtu.saturating_sub(1).min(rest.len())).unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::uuid::{ESP_EXAMPLE_SERVICE, WIFI_PROV_MGR_SERVICE};

    #[test]
    fn device_assigns_esp_ids_in_table_order() {
        let layout = DeviceLayout::new(ESP_EXAMPLE_SERVICE, &["custom-data", "other"]).unwrap();
        let got: Vec<(String, String)> =
            layout.characteristics().map(|(n, u)| (n.to_owned(), u.to_string()[..8].to_owned())).collect();
        let expected = [
            ("prov-ctrl", "021aff4f"),
            ("prov-scan", "021aff50"),
            ("prov-session", "021aff51"),
            ("prov-config", "021aff52"),
            ("proto-ver", "021aff53"),
            ("custom-data", "021aff54"),
            ("other", "021aff55"),
        ];
        assert_eq!(got, expected.map(|(n, u)| (n.to_owned(), u.to_owned())));
        // Dispatch uses the 16-bit id only, as ESP does: the same id under another service still routes.
        assert_eq!(layout.endpoint_for(WIFI_PROV_MGR_SERVICE.with_endpoint_id(0xff51)), Some("prov-session"));
        assert_eq!(layout.endpoint_for(ESP_EXAMPLE_SERVICE.with_endpoint_id(0xff60)), None);
        assert_eq!(
            DeviceLayout::new(ESP_EXAMPLE_SERVICE, &["proto-ver"]),
            Err(LayoutError::DuplicateEndpoint("proto-ver".into()))
        );
    }

    #[test]
    fn client_maps_endpoints_by_description_not_by_uuid() {
        // A device with a service UUID of its own and endpoints in another order: names decide.
        let service: Uuid = "12345678-0000-1000-8000-00805f9b34fb".parse().unwrap();
        let found = [
            (service.with_endpoint_id(0x0001), &b"proto-ver"[..]),
            (service.with_endpoint_id(0x0002), b"prov-session\0"),
            (service.with_endpoint_id(0x0003), b"prov-config"),
            (service.with_endpoint_id(0x0004), b"custom-data"),
        ];
        let map = EndpointMap::from_descriptors(found).unwrap();
        assert_eq!(map.characteristic("prov-session"), Some(service.with_endpoint_id(2)));
        assert_eq!(map.characteristic("custom-data"), Some(service.with_endpoint_id(4)));
        assert_eq!(map.characteristic("prov-scan"), None);
        assert_eq!(map.names().count(), 4);

        // A device's own layout read back through its descriptors round-trips.
        let layout = DeviceLayout::new(ESP_EXAMPLE_SERVICE, &[]).unwrap();
        let map = EndpointMap::from_descriptors(layout.characteristics().map(|(n, u)| (u, n.as_bytes()))).unwrap();
        for (name, uuid) in layout.characteristics() {
            assert_eq!(map.characteristic(name), Some(uuid));
        }
    }

    #[test]
    fn client_refuses_incomplete_or_ambiguous_devices() {
        let s = ESP_EXAMPLE_SERVICE;
        let missing = [(s.with_endpoint_id(1), &b"proto-ver"[..]), (s.with_endpoint_id(2), b"prov-session")];
        assert_eq!(EndpointMap::from_descriptors(missing), Err(LayoutError::MissingEndpoint("prov-config")));
        let twice = [(s.with_endpoint_id(1), &b"proto-ver"[..]), (s.with_endpoint_id(2), b"proto-ver")];
        assert_eq!(EndpointMap::from_descriptors(twice), Err(LayoutError::DuplicateEndpoint("proto-ver".into())));
        let binary = [(s.with_endpoint_id(1), &[0xff, 0xfe][..])];
        assert_eq!(EndpointMap::from_descriptors(binary), Err(LayoutError::InvalidName));
    }

    #[test]
    fn long_values_are_read_in_mtu_sized_pieces() {
        // A sec2 Response0 is about 416 bytes: more than one read at the default MTU of 23.
        let value: Vec<u8> = (0..416u32).map(|i| i as u8).collect();
        let mut read = Vec::new();
        let mut offset = 0;
        loop {
            let piece = read_at_offset(&value, offset, 23).unwrap();
            read.extend_from_slice(piece);
            offset += piece.len();
            if piece.len() < 22 {
                break;
            }
        }
        assert_eq!(read, value);
        assert_eq!(read_at_offset(&value, 416, 23).unwrap(), b"");
        assert_eq!(read_at_offset(&value, 0, 517).unwrap().len(), 416);
        assert_eq!(read_at_offset(&value, 417, 23), Err(LayoutError::InvalidOffset { offset: 417, len: 416 }));
    }
}
