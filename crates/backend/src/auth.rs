//! Security of a network.

use core::fmt;
use core::str::FromStr;

/// How a network authenticates stations, with ESP-IDF's `wifi_auth_mode_t` numbering.
///
/// The text form (used by `Display`, `FromStr`, serde and the simulator's scenario files) is the kebab-case
/// name listed on each variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum AuthMode {
    /// `open`: no authentication (ESP 0).
    Open,
    /// `wep`: legacy WEP (ESP 1).
    Wep,
    /// `wpa-psk`: WPA with a pre-shared key (ESP 2).
    WpaPsk,
    /// `wpa2-psk`: WPA2 with a pre-shared key (ESP 3).
    Wpa2Psk,
    /// `wpa-wpa2-psk`: WPA/WPA2 mixed mode (ESP 4).
    WpaWpa2Psk,
    /// `wpa2-enterprise`: WPA2 with 802.1X (ESP 5).
    Wpa2Enterprise,
    /// `wpa3-sae`: WPA3 personal, SAE; ESP calls it `WPA3_PSK` (ESP 6).
    Wpa3Sae,
    /// `wpa2-wpa3`: WPA2/WPA3 transition mode; ESP calls it `WPA2_WPA3_PSK` (ESP 7).
    Wpa2Wpa3,
}

/// An ESP auth-mode number or name that [`AuthMode`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthModeError {
    /// The number is not one of ESP's auth modes 0 to 7.
    #[error("unknown auth mode number {code}")]
    UnknownCode {
        /// The rejected number.
        code: u8,
    },
    /// The text is not one of the names listed on [`AuthMode`].
    #[error("unknown auth mode {name:?}, expected one of {}", AuthMode::NAMES.join(", "))]
    UnknownName {
        /// The rejected name.
        name: String,
    },
}

impl AuthMode {
    /// Every mode, in ESP numbering order.
    pub const ALL: [Self; 8] = [
        Self::Open,
        Self::Wep,
        Self::WpaPsk,
        Self::Wpa2Psk,
        Self::WpaWpa2Psk,
        Self::Wpa2Enterprise,
        Self::Wpa3Sae,
        Self::Wpa2Wpa3,
    ];

    /// The text names, in the same order as [`AuthMode::ALL`].
    pub const NAMES: [&'static str; 8] =
        ["open", "wep", "wpa-psk", "wpa2-psk", "wpa-wpa2-psk", "wpa2-enterprise", "wpa3-sae", "wpa2-wpa3"];

    /// The `wifi_auth_mode_t` number ESP devices put on the wire, for example in `prov-scan` results.
    pub const fn esp_code(self) -> u8 {
        match self {
            Self::Open => 0,
            Self::Wep => 1,
            Self::WpaPsk => 2,
            Self::Wpa2Psk => 3,
            Self::WpaWpa2Psk => 4,
            Self::Wpa2Enterprise => 5,
            Self::Wpa3Sae => 6,
            Self::Wpa2Wpa3 => 7,
        }
    }

    /// The mode with the given ESP number.
    pub const fn from_esp_code(code: u8) -> Result<Self, AuthModeError> {
        Ok(match code {
            0 => Self::Open,
            1 => Self::Wep,
            2 => Self::WpaPsk,
            3 => Self::Wpa2Psk,
            4 => Self::WpaWpa2Psk,
            5 => Self::Wpa2Enterprise,
            6 => Self::Wpa3Sae,
            7 => Self::Wpa2Wpa3,
            _ => return Err(AuthModeError::UnknownCode { code }),
        })
    }

    /// The kebab-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Wep => "wep",
            Self::WpaPsk => "wpa-psk",
            Self::Wpa2Psk => "wpa2-psk",
            Self::WpaWpa2Psk => "wpa-wpa2-psk",
            Self::Wpa2Enterprise => "wpa2-enterprise",
            Self::Wpa3Sae => "wpa3-sae",
            Self::Wpa2Wpa3 => "wpa2-wpa3",
        }
    }

    /// Whether joining takes a [`Passphrase`](crate::Passphrase): true for the personal (PSK/SAE) modes.
    ///
    /// False for open networks, and also for WEP (whose keys are not passphrases) and enterprise networks
    /// (which need 802.1X credentials); provisioning cannot join those two with a passphrase.
    pub const fn uses_passphrase(self) -> bool {
        match self {
            Self::WpaPsk | Self::Wpa2Psk | Self::WpaWpa2Psk | Self::Wpa3Sae | Self::Wpa2Wpa3 => true,
            Self::Open | Self::Wep | Self::Wpa2Enterprise => false,
        }
    }
}

impl TryFrom<u8> for AuthMode {
    type Error = AuthModeError;

    fn try_from(code: u8) -> Result<Self, AuthModeError> {
        Self::from_esp_code(code)
    }
}

impl FromStr for AuthMode {
    type Err = AuthModeError;

    fn from_str(name: &str) -> Result<Self, AuthModeError> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
            .ok_or_else(|| AuthModeError::UnknownName { name: name.to_owned() })
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_codes_and_names_round_trip() {
        for (code, mode) in (0u8..).zip(AuthMode::ALL) {
            assert_eq!(mode.esp_code(), code);
            assert_eq!(AuthMode::from_esp_code(code), Ok(mode));
            assert_eq!(mode.name().parse::<AuthMode>(), Ok(mode));
        }
        assert_eq!(AuthMode::ALL.map(AuthMode::name), AuthMode::NAMES);
        assert_eq!(AuthMode::Wpa3Sae.esp_code(), 6);
        assert_eq!(AuthMode::Wpa2Wpa3.esp_code(), 7);
        assert_eq!(AuthMode::from_esp_code(8), Err(AuthModeError::UnknownCode { code: 8 }));
        assert!("wpa2".parse::<AuthMode>().is_err());
    }

    #[test]
    fn serde_names_match_display() {
        for mode in AuthMode::ALL {
            let json = serde_json::to_string(&mode).expect("serializes");
            assert_eq!(json, format!("\"{mode}\""));
        }
    }
}
