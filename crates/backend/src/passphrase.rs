//! The network's shared secret.

use core::fmt;

use zeroize::{Zeroize, Zeroizing};

/// A WPA/WPA2/WPA3 personal passphrase: 8 to 63 printable ASCII characters, or exactly 64 hex digits, which
/// WPA treats as the raw 256-bit PSK instead of a passphrase to hash.
///
/// Open networks have no passphrase; APIs take `Option<Passphrase>` and [`Passphrase::optional`] maps the empty
/// string (what ESP provisioning sends for an open network) to `None`.
///
/// `Debug` and `Display` print `<redacted>`, the value is zeroized when dropped (clones included), there is no
/// `Serialize`, and [`Passphrase::expose_secret`] is the only way to read it, so every reader can be found with
/// grep. There is deliberately no `PartialEq`: comparing secrets should be a visible decision at the call site.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

/// Why a value is not a valid [`Passphrase`]. The messages never contain the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PassphraseError {
    /// Shorter than 8 or longer than 64 characters.
    #[error("passphrase is {len} characters long, expected 8 to 63, or 64 hex digits")]
    Length {
        /// The rejected length.
        len: usize,
    },
    /// A character outside printable ASCII (space to `~`).
    #[error("passphrase has a character outside printable ASCII at position {position}")]
    NotPrintable {
        /// Zero-based byte offset of the first offending character.
        position: usize,
    },
    /// 64 characters long, which is reserved for a raw PSK, but not all hex digits.
    #[error("64-character passphrase is not a hex PSK")]
    RawPskNotHex,
}

impl Passphrase {
    /// Shortest passphrase WPA accepts.
    pub const MIN_LEN: usize = 8;
    /// Longest passphrase WPA accepts; one more is the length of a hex PSK.
    pub const MAX_LEN: usize = 63;
    /// Length of a raw PSK written as hex digits.
    pub const RAW_PSK_HEX_LEN: usize = 64;

    /// Checks and wraps the value. On error the input is zeroized before it is dropped.
    pub fn new(value: String) -> Result<Self, PassphraseError> {
        let value = Zeroizing::new(value);
        validate(value.as_bytes())?;
        Ok(Self(value))
    }

    /// Like [`Passphrase::new`] for raw bytes, as protobuf carries them. On error the input is zeroized.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, PassphraseError> {
        let mut bytes = Zeroizing::new(bytes);
        validate(&bytes)?;
        // Validation allows only ASCII, so this cannot fail; the error path still zeroizes rather than panics.
        match String::from_utf8(core::mem::take(&mut *bytes)) {
            Ok(text) => Ok(Self(Zeroizing::new(text))),
            Err(err) => {
                err.into_bytes().zeroize();
                Err(PassphraseError::NotPrintable { position: 0 })
            }
        }
    }

    /// `None` for the empty string (an open network), otherwise [`Passphrase::new`].
    pub fn optional(value: String) -> Result<Option<Self>, PassphraseError> {
        if value.is_empty() {
            return Ok(None);
        }
        Self::new(value).map(Some)
    }

    /// The secret text. Call this only where the value must leave the process (the radio driver or the
    /// credential store), never to log or display it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether this is a 64-hex-digit raw PSK rather than a passphrase to be hashed with the SSID.
    pub fn is_raw_psk(&self) -> bool {
        self.0.len() == Self::RAW_PSK_HEX_LEN
    }
}

fn validate(bytes: &[u8]) -> Result<(), PassphraseError> {
    let len = bytes.len();
    if !(Passphrase::MIN_LEN..=Passphrase::RAW_PSK_HEX_LEN).contains(&len) {
        return Err(PassphraseError::Length { len });
    }
    if let Some(position) = bytes.iter().position(|b| !(b' '..=b'~').contains(b)) {
        return Err(PassphraseError::NotPrintable { position });
    }
    if len == Passphrase::RAW_PSK_HEX_LEN && !bytes.iter().all(u8::is_ascii_hexdigit) {
        return Err(PassphraseError::RawPskNotHex);
    }
    Ok(())
}

impl TryFrom<String> for Passphrase {
    type Error = PassphraseError;

    fn try_from(value: String) -> Result<Self, PassphraseError> {
        Self::new(value)
    }
}

impl TryFrom<&str> for Passphrase {
    type Error = PassphraseError;

    fn try_from(value: &str) -> Result<Self, PassphraseError> {
        Self::new(value.to_owned())
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl fmt::Display for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str) -> Result<Passphrase, PassphraseError> {
        Passphrase::try_from(value)
    }

    #[test]
    fn length_bounds() {
        assert_eq!(check("1234567").err(), Some(PassphraseError::Length { len: 7 }));
        assert!(check("12345678").is_ok());
        assert!(check(&"x".repeat(63)).is_ok());
        assert_eq!(check(&"x".repeat(65)).err(), Some(PassphraseError::Length { len: 65 }));
        assert_eq!(check("").err(), Some(PassphraseError::Length { len: 0 }));
    }

    #[test]
    fn sixty_four_characters_must_be_hex() {
        let psk = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
        assert_eq!(psk.len(), 64);
        let accepted = check(psk).expect("64 hex digits are a raw PSK");
        assert!(accepted.is_raw_psk());
        assert!(!check("wifiprov-demo-pass").expect("valid").is_raw_psk());
        let not_hex = format!("{}g", "0".repeat(63));
        assert_eq!(check(&not_hex).err(), Some(PassphraseError::RawPskNotHex));
    }

    #[test]
    fn printable_ascii_only() {
        assert_eq!(check("tab\there!").err(), Some(PassphraseError::NotPrintable { position: 3 }));
        assert_eq!(check("pässwort1").err(), Some(PassphraseError::NotPrintable { position: 1 }));
        assert!(check(" ~spaces and tildes~ ").is_ok());
        assert_eq!(
            Passphrase::from_bytes(b"abc\xffdefgh".to_vec()).err(),
            Some(PassphraseError::NotPrintable { position: 3 })
        );
        let from_bytes = Passphrase::from_bytes(b"wifiprov-demo-pass".to_vec()).expect("valid");
        assert_eq!(from_bytes.expose_secret(), "wifiprov-demo-pass");
    }

    #[test]
    fn empty_means_open_network() {
        assert!(Passphrase::optional(String::new()).expect("empty is allowed").is_none());
        assert!(Passphrase::optional("long enough".to_owned()).expect("valid").is_some());
        assert!(Passphrase::optional("short".to_owned()).is_err());
    }

    #[test]
    fn never_printed() {
        let secret = check("hunter2-hunter2").expect("valid");
        assert_eq!(format!("{secret:?}"), "Passphrase(<redacted>)");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(Passphrase(<redacted>))");
        let err = check(&format!("{}\u{7f}", "hunter2-hunter2")).expect_err("DEL is not printable");
        assert!(!err.to_string().contains("hunter2"));
    }
}
