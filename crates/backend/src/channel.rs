//! The radio channel number.

use core::fmt;

/// An 802.11 channel number, 1 to 196.
///
/// 1 to 14 are the 2.4 GHz channels; the 5 GHz channels lie in 32 to 196. The number alone does not say which
/// band is meant for the few numbers that 6 GHz reuses; backends that care carry the band separately.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "u8", into = "u8"))]
pub struct Channel(u8);

/// Why a number is not a valid [`Channel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel {value} is outside {min} to {max}", min = Channel::MIN, max = Channel::MAX)]
pub struct ChannelError {
    /// The rejected channel number.
    pub value: u8,
}

impl Channel {
    /// The lowest channel number.
    pub const MIN: u8 = 1;
    /// The highest channel number.
    pub const MAX: u8 = 196;

    /// Checks the range and wraps the number.
    pub const fn new(value: u8) -> Result<Self, ChannelError> {
        if value < Self::MIN || value > Self::MAX {
            return Err(ChannelError { value });
        }
        Ok(Self(value))
    }

    /// The channel number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Channel {
    type Error = ChannelError;

    fn try_from(value: u8) -> Result<Self, ChannelError> {
        Self::new(value)
    }
}

impl From<Channel> for u8 {
    fn from(channel: Channel) -> Self {
        channel.0
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_bounds() {
        assert_eq!(Channel::new(0), Err(ChannelError { value: 0 }));
        assert_eq!(Channel::new(197), Err(ChannelError { value: 197 }));
        assert_eq!(Channel::new(1).map(Channel::get), Ok(1));
        assert_eq!(Channel::new(196).map(Channel::get), Ok(196));
    }

    #[test]
    fn serde_checks_range() {
        assert_eq!(serde_json::from_str::<Channel>("6").expect("valid"), Channel::new(6).expect("valid"));
        assert!(serde_json::from_str::<Channel>("0").is_err());
        assert_eq!(serde_json::to_string(&Channel::new(11).expect("valid")).expect("serializes"), "11");
    }
}
