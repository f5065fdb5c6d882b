//! Errors as one log line.

use std::error::Error;
use std::fmt;

/// Displays an error followed by its sources, `outer: inner: innermost`: how the transports and the daemon put
/// a failure in one log field without losing the cause `Display` leaves out.
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot save")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn sources_follow_the_error() {
        let error = Outer(std::io::Error::other("disk full"));
        assert_eq!(ErrorChain(&error).to_string(), "cannot save: disk full");
        assert_eq!(ErrorChain(&std::io::Error::other("alone")).to_string(), "alone");
    }
}
