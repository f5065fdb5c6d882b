//! The network name.

use core::fmt;

/// A Wi-Fi network name: 1 to 32 arbitrary bytes.
///
/// 802.11 puts no encoding on SSIDs; most are UTF-8 but some devices broadcast Latin-1 or raw bytes, so the
/// bytes are kept exactly as given. `Display` shows the UTF-8 parts as text and escapes everything that would
/// make the text ambiguous or unprintable: a backslash becomes `\\`, an ASCII control character or a byte that
/// is not valid UTF-8 becomes `\xNN`, and any other control character becomes `\u{NNNN}`. The escaped form is
/// for people and logs; use [`Ssid::as_bytes`] when the exact value matters.
///
/// The empty SSID is not representable: on the air it means "any network" in a probe, or "name withheld" in a
/// beacon, and neither is a network one can be asked to join.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssid(Vec<u8>);

/// Why bytes are not a valid [`Ssid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SsidError {
    /// The SSID is empty or longer than 32 bytes.
    #[error("SSID is {len} bytes long, expected 1 to {max}", max = Ssid::MAX_LEN)]
    Length {
        /// The rejected length in bytes.
        len: usize,
    },
}

impl Ssid {
    /// The longest SSID 802.11 allows, in bytes.
    pub const MAX_LEN: usize = 32;

    /// Checks the length and wraps the bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SsidError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN {
            return Err(SsidError::Length { len: bytes.len() });
        }
        Ok(Self(bytes))
    }

    /// The exact bytes of the name.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name as text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes, always between 1 and [`Ssid::MAX_LEN`].
    #[expect(clippy::len_without_is_empty, reason = "an SSID is never empty")]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Consumes the SSID, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl TryFrom<Vec<u8>> for Ssid {
    type Error = SsidError;

    fn try_from(bytes: Vec<u8>) -> Result<Self, SsidError> {
        Self::new(bytes)
    }
}

impl TryFrom<&[u8]> for Ssid {
    type Error = SsidError;

    fn try_from(bytes: &[u8]) -> Result<Self, SsidError> {
        Self::new(bytes)
    }
}

impl TryFrom<&str> for Ssid {
    type Error = SsidError;

    fn try_from(text: &str) -> Result<Self, SsidError> {
        Self::new(text.as_bytes())
    }
}

impl TryFrom<String> for Ssid {
    type Error = SsidError;

    fn try_from(text: String) -> Result<Self, SsidError> {
        Self::new(text.into_bytes())
    }
}

impl core::str::FromStr for Ssid {
    type Err = SsidError;

    fn from_str(text: &str) -> Result<Self, SsidError> {
        Self::new(text.as_bytes())
    }
}

impl AsRef<[u8]> for Ssid {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Ssid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    c if c.is_ascii_control() => write!(f, "\\x{:02x}", u32::from(c))?,
                    c if c.is_control() => write!(f, "\\u{{{:04x}}}", u32::from(c))?,
                    c => fmt::Write::write_char(f, c)?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Ssid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ssid(\"{self}\")")
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! Text when the SSID is UTF-8 (so JSON output stays readable), otherwise a byte sequence; both forms are
    //! accepted back.

    use core::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Ssid;

    impl Serialize for Ssid {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self.as_str() {
                Some(text) => serializer.serialize_str(text),
                None => serializer.serialize_bytes(self.as_bytes()),
            }
        }
    }

    struct SsidVisitor;

    impl<'de> Visitor<'de> for SsidVisitor {
        type Value = Ssid;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an SSID of 1 to 32 bytes, as a string or a byte sequence")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Ssid, E> {
            Ssid::new(text.as_bytes()).map_err(E::custom)
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Ssid, E> {
            Ssid::new(bytes).map_err(E::custom)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ssid, A::Error> {
            let mut bytes = Vec::with_capacity(Ssid::MAX_LEN);
            while let Some(byte) = seq.next_element::<u8>()? {
                // Stop early so a hostile input cannot make us buffer an unbounded sequence.
                if bytes.len() == Ssid::MAX_LEN {
                    return Err(de::Error::invalid_length(Ssid::MAX_LEN + 1, &self));
                }
                bytes.push(byte);
            }
            Ssid::new(bytes).map_err(de::Error::custom)
        }
    }

    impl<'de> Deserialize<'de> for Ssid {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(SsidVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bounds() {
        assert_eq!(Ssid::new(Vec::new()), Err(SsidError::Length { len: 0 }));
        assert_eq!(Ssid::new(vec![b'a'; 33]), Err(SsidError::Length { len: 33 }));
        assert!(Ssid::new(vec![b'a'; 1]).is_ok());
        assert!(Ssid::new(vec![b'a'; 32]).is_ok());
    }

    #[test]
    fn display_escapes_ambiguous_bytes() {
        let ssid = Ssid::new(b"caf\xc3\xa9 \\ \x00\xff\n\xc2\x85".to_vec()).expect("valid length");
        assert_eq!(ssid.to_string(), "café \\\\ \\x00\\xff\\x0a\\u{0085}");
        assert_eq!(format!("{ssid:?}"), "Ssid(\"café \\\\ \\x00\\xff\\x0a\\u{0085}\")");
        assert_eq!(ssid.as_str(), None);
    }

    #[test]
    fn text_round_trip() {
        let ssid: Ssid = "wifiprov-demo".parse().expect("valid SSID");
        assert_eq!(ssid.as_str(), Some("wifiprov-demo"));
        assert_eq!(ssid.len(), 13);
    }

    #[test]
    fn serde_uses_text_or_bytes() {
        let text = Ssid::try_from("home").expect("valid SSID");
        assert_eq!(serde_json::to_string(&text).expect("serializes"), "\"home\"");
        let raw = Ssid::new(vec![0xff, 0x01]).expect("valid SSID");
        let json = serde_json::to_string(&raw).expect("serializes");
        assert_eq!(json, "[255,1]");
        assert_eq!(serde_json::from_str::<Ssid>(&json).expect("deserializes"), raw);
        assert_eq!(serde_json::from_str::<Ssid>("\"home\"").expect("deserializes"), text);
        assert!(serde_json::from_str::<Ssid>("\"\"").is_err());
        let long = format!("[{}]", vec!["1"; 33].join(","));
        assert!(serde_json::from_str::<Ssid>(&long).is_err());
    }
}
