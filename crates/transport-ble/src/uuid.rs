//! 128-bit UUIDs and ESP's derivation of characteristic UUIDs from the service UUID.

use core::fmt;
use core::str::FromStr;

/// A 128-bit UUID, stored as its canonical big-endian bytes (the order of the text form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

/// wifi_prov_mgr's default service UUID, used when the application sets none.
pub const WIFI_PROV_MGR_SERVICE: Uuid =
    Uuid([0x17, 0x75, 0x24, 0x4d, 0x6b, 0x43, 0x43, 0x9b, 0x87, 0x7c, 0x06, 0x0f, 0x2d, 0x9b, 0xed, 0x07]);

/// The service UUID of ESP-IDF's provisioning example, and esp_prov's fallback.
pub const ESP_EXAMPLE_SERVICE: Uuid =
    Uuid([0x02, 0x1a, 0x90, 0x04, 0x03, 0x82, 0x4a, 0xea, 0xbf, 0xf4, 0x6b, 0x3f, 0x1c, 0x5a, 0xdf, 0xb4]);

impl Uuid {
    /// The characteristic UUID of endpoint `id` under this service. ESP overwrites bytes 12 and 13 of the
    /// little-endian array with the id (low byte first); in text form those are hex digits 5 to 8, big-endian.
    pub fn with_endpoint_id(self, id: u16) -> Self {
        let mut bytes = self.0;
        let [high, low] = id.to_be_bytes();
        bytes[2] = high;
        bytes[3] = low;
        Self(bytes)
    }

    /// The 16-bit endpoint id a characteristic UUID carries (what an ESP device dispatches on).
    pub fn endpoint_id(self) -> u16 {
        u16::from_be_bytes([self.0[2], self.0[3]])
    }

    /// The bytes least significant first, as BLE stacks (and ESP's C arrays) store them.
    pub fn to_le_bytes(self) -> [u8; 16] {
        let mut bytes = self.0;
        bytes.reverse();
        bytes
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A UUID string that is not in the canonical 8-4-4-4-12 hex form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a UUID (8-4-4-4-12 hex digits)")]
pub struct UuidError(pub String);

impl FromStr for Uuid {
    type Err = UuidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UuidError(s.to_owned());
        let groups: Vec<&str> = s.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn characteristic_uuids_match_esp() {
        // Fact sheet §7.1: prov-session = 021aff51-…, proto-ver = 021aff53-….
        assert_eq!(ESP_EXAMPLE_SERVICE.with_endpoint_id(0xff51).to_string(), "021aff51-0382-4aea-bff4-6b3f1c5adfb4");
        assert_eq!(ESP_EXAMPLE_SERVICE.with_endpoint_id(0xff53).to_string(), "021aff53-0382-4aea-bff4-6b3f1c5adfb4");
        assert_eq!(ESP_EXAMPLE_SERVICE.to_string(), "021a9004-0382-4aea-bff4-6b3f1c5adfb4");
        // The default service as ESP stores it, least significant byte first.
        assert_eq!(
            WIFI_PROV_MGR_SERVICE.to_le_bytes(),
            [0x07, 0xed, 0x9b, 0x2d, 0x0f, 0x06, 0x7c, 0x87, 0x9b, 0x43, 0x43, 0x6b, 0x4d, 0x24, 0x75, 0x17]
        );
        assert_eq!(WIFI_PROV_MGR_SERVICE.to_string(), "1775244d-6b43-439b-877c-060f2d9bed07");
        // In the little-endian array the id sits at indices 12 (low byte) and 13.
        let le = WIFI_PROV_MGR_SERVICE.with_endpoint_id(0xff4f).to_le_bytes();
        assert_eq!((le[12], le[13]), (0x4f, 0xff));
        assert_eq!(WIFI_PROV_MGR_SERVICE.with_endpoint_id(0xff4f).endpoint_id(), 0xff4f);
    }

    #[test]
    fn parses_and_prints_canonical_form() {
        let uuid: Uuid = "021AFF51-0382-4aea-bff4-6b3f1c5adfb4".parse().unwrap();
        assert_eq!(uuid, ESP_EXAMPLE_SERVICE.with_endpoint_id(0xff51));
        for bad in ["", "021aff51", "021aff51-0382-4aea-bff4-6b3f1c5adfbz", "021aff510382-4aea-bff4-6b3f1c5adfb4-"] {
            assert!(bad.parse::<Uuid>().is_err(), "{bad}");
        }
    }
}
