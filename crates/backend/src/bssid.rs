//! The access point's MAC address.

use core::fmt;
use core::str::FromStr;

/// The MAC address of one access point (radio), as opposed to the [`Ssid`](crate::Ssid) that several access
/// points of one network share.
///
/// Written as six colon-separated hex octets, `aa:bb:cc:dd:ee:ff`; parsing accepts either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bssid([u8; 6]);

/// Why a value is not a valid [`Bssid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BssidError {
    /// The text is not six colon-separated pairs of hex digits.
    #[error("BSSID {input:?} is not six colon-separated hex octets")]
    Syntax {
        /// The rejected text. BSSIDs are not secret, so it is kept for the message.
        input: String,
    },
    /// A binary BSSID was not exactly six bytes long.
    #[error("BSSID is {len} bytes long, expected 6")]
    Length {
        /// The rejected length in bytes.
        len: usize,
    },
}

impl Bssid {
    /// Wraps six octets. Every value is accepted: backends report what the air carries.
    pub const fn new(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    /// The six octets, most significant first.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl From<[u8; 6]> for Bssid {
    fn from(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

impl From<Bssid> for [u8; 6] {
    fn from(bssid: Bssid) -> Self {
        bssid.0
    }
}

impl TryFrom<&[u8]> for Bssid {
    type Error = BssidError;

    fn try_from(bytes: &[u8]) -> Result<Self, BssidError> {
        <[u8; 6]>::try_from(bytes).map(Self).map_err(|_| BssidError::Length { len: bytes.len() })
    }
}

impl FromStr for Bssid {
    type Err = BssidError;

    fn from_str(text: &str) -> Result<Self, BssidError> {
        let syntax = || BssidError::Syntax { input: text.to_owned() };
        let mut octets = [0u8; 6];
        let mut parts = text.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or_else(syntax)?;
            // from_str_radix alone would accept "+f" and single digits; insist on exactly two hex digits.
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(syntax());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| syntax())?;
        }
        if parts.next().is_some() {
            return Err(syntax());
        }
        Ok(Self(octets))
    }
}

impl fmt::Display for Bssid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Bssid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bssid({self})")
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Bssid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Bssid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let bssid: Bssid = "02:AB:cd:00:10:ff".parse().expect("valid BSSID");
        assert_eq!(bssid.octets(), [0x02, 0xab, 0xcd, 0x00, 0x10, 0xff]);
        assert_eq!(bssid.to_string(), "02:ab:cd:00:10:ff");
        assert_eq!(format!("{bssid:?}"), "Bssid(02:ab:cd:00:10:ff)");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "02:ab:cd:00:10",
            "02:ab:cd:00:10:ff:00",
            "02:ab:cd:00:10:f",
            "02:ab:cd:00:10:+f",
            "02-ab-cd-00-10-ff",
            "02:ab:cd:00:10:fg",
            "02:ab:cd:00:10:ff:",
        ] {
            assert!(matches!(bad.parse::<Bssid>(), Err(BssidError::Syntax { .. })), "{bad:?} was accepted");
        }
    }

    #[test]
    fn binary_length_checked() {
        assert_eq!(Bssid::try_from(&[1u8, 2, 3][..]), Err(BssidError::Length { len: 3 }));
        assert_eq!(Bssid::try_from(&[1u8, 2, 3, 4, 5, 6][..]), Ok(Bssid::new([1, 2, 3, 4, 5, 6])));
    }

    #[test]
    fn serde_as_text() {
        let bssid = Bssid::new([0x02, 0, 0, 0, 0, 0x01]);
        let json = serde_json::to_string(&bssid).expect("serializes");
        assert_eq!(json, "\"02:00:00:00:00:01\"");
        assert_eq!(serde_json::from_str::<Bssid>(&json).expect("deserializes"), bssid);
    }
}
