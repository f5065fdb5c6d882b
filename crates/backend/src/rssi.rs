//! Received signal strength.

use core::fmt;

/// Received signal strength in dBm, as a radio reports it (typically -100 to -20).
///
/// Ordering follows signal quality: a greater value is a stronger signal, so sorting in descending order
/// puts the best access point first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Rssi(i8);

impl Rssi {
    /// Wraps a dBm reading. Every `i8` is accepted: backends pass on what the driver says.
    pub const fn new(dbm: i8) -> Self {
        Self(dbm)
    }

    /// The reading in dBm.
    pub const fn dbm(self) -> i8 {
        self.0
    }
}

impl From<i8> for Rssi {
    fn from(dbm: i8) -> Self {
        Self(dbm)
    }
}

impl From<Rssi> for i8 {
    fn from(rssi: Rssi) -> Self {
        rssi.0
    }
}

impl fmt::Display for Rssi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dBm", self.0)
    }
}

impl fmt::Debug for Rssi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rssi({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stronger_is_greater() {
        assert!(Rssi::new(-40) > Rssi::new(-70));
        assert_eq!(Rssi::new(-40).to_string(), "-40 dBm");
    }
}
