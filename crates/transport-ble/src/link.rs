//! What the device keeps per BLE link: the link's protocomm session and, per endpoint, the response waiting to
//! be read. No D-Bus here, so the rules are tested without a radio.
//!
//! ESP semantics (fact sheet §7.3): a write runs the request and stores the response as the characteristic's
//! value; reads return that value (by offset, for long values) until the next write to the same characteristic;
//! reading before any write returns an empty value; a disconnect clears everything of that link. Unlike an ESP
//! device, several links may be up at once, so values are kept per link: one client never reads another's
//! response.

use std::collections::HashMap;
use std::hash::Hash;

use wifiprov_proto::endpoint::SessionId;

use crate::layout::{LayoutError, read_at_offset};

/// Per-link state, keyed by the peer (its device address).
#[derive(Debug)]
pub(crate) struct Links<P> {
    links: HashMap<P, Link>,
}

#[derive(Debug, Default)]
struct Link {
    /// The protocomm session of this link, once its first request opened one.
    session: Option<SessionId>,
    /// Endpoint name to the response of the last write on its characteristic.
    responses: HashMap<String, Vec<u8>>,
}

impl<P: Eq + Hash + Copy> Links<P> {
    pub(crate) fn new() -> Self {
        Self { links: HashMap::new() }
    }

    /// Whether `peer` has any state (it has written at least once since it connected).
    pub(crate) fn contains(&self, peer: P) -> bool {
        self.links.contains_key(&peer)
    }

    /// Starts keeping state for `peer`'s link, if it has none yet (its first write since it connected).
    pub(crate) fn open(&mut self, peer: P) {
        self.links.entry(peer).or_default();
    }

    /// The session of `peer`'s link, if one was opened.
    pub(crate) fn session(&self, peer: P) -> Option<SessionId> {
        self.links.get(&peer).and_then(|l| l.session)
    }

    /// Records the session of `peer`'s link; returns the one it replaces.
    pub(crate) fn set_session(&mut self, peer: P, session: SessionId) -> Option<SessionId> {
        self.links.entry(peer).or_default().session.replace(session)
    }

    /// Stores the response to `peer`'s write on `endpoint`, replacing the previous one.
    pub(crate) fn store(&mut self, peer: P, endpoint: &str, response: Vec<u8>) {
        self.links.entry(peer).or_default().responses.insert(endpoint.to_owned(), response);
    }

    /// Drops the stored response of `endpoint` (a write that failed leaves nothing to read).
    pub(crate) fn clear(&mut self, peer: P, endpoint: &str) {
        if let Some(link) = self.links.get_mut(&peer) {
            link.responses.remove(endpoint);
        }
    }

    /// What a read by `peer` of `endpoint` at `offset` returns, at most what fits an ATT response at `mtu`.
    pub(crate) fn read(&self, peer: P, endpoint: &str, offset: usize, mtu: usize) -> Result<Vec<u8>, LayoutError> {
        let value = self.links.get(&peer).and_then(|l| l.responses.get(endpoint)).map_or(&[][..], Vec::as_slice);
        read_at_offset(value, offset, mtu).map(<[u8]>::to_vec)
    }

    /// Forgets `peer`'s link (it disconnected); returns its session so the caller can close it.
    pub(crate) fn forget(&mut self, peer: P) -> Option<SessionId> {
        self.links.remove(&peer).and_then(|l| l.session)
    }

    /// Forgets every link; returns their sessions.
    pub(crate) fn forget_all(&mut self) -> Vec<SessionId> {
        self.links.drain().filter_map(|(_, l)| l.session).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MTU: usize = 23;

    #[test]
    fn responses_are_kept_per_peer_and_endpoint_until_the_next_write() {
        let mut links = Links::new();
        assert_eq!(links.read(1, "prov-session", 0, MTU).unwrap(), b"", "before any write: empty");
        links.store(1, "prov-session", b"one".to_vec());
        links.store(2, "prov-session", b"two".to_vec());
        links.store(1, "proto-ver", b"ver".to_vec());
        assert_eq!(links.read(1, "prov-session", 0, MTU).unwrap(), b"one");
        assert_eq!(links.read(2, "prov-session", 0, MTU).unwrap(), b"two", "one client never reads another's");
        assert_eq!(links.read(2, "proto-ver", 0, MTU).unwrap(), b"");
        // Reading does not consume: a client may read again (a retried read, or a second pass).
        assert_eq!(links.read(1, "prov-session", 0, MTU).unwrap(), b"one");
        links.store(1, "prov-session", b"three".to_vec());
        assert_eq!(links.read(1, "prov-session", 0, MTU).unwrap(), b"three");
        links.clear(1, "prov-session");
        assert_eq!(links.read(1, "prov-session", 0, MTU).unwrap(), b"");
        assert_eq!(links.read(1, "proto-ver", 0, MTU).unwrap(), b"ver");
    }

    #[test]
    fn long_responses_are_read_by_offset() {
        let mut links = Links::new();
        let value: Vec<u8> = (0..450u32).map(|i| i as u8).collect();
        links.store(7, "custom", value.clone());
        let mut read = Vec::new();
        loop {
            let piece = links.read(7, "custom", read.len(), MTU).unwrap();
            assert!(piece.len() < MTU);
            read.extend_from_slice(&piece);
            if piece.len() < MTU - 1 {
                break;
            }
        }
        assert_eq!(read, value);
        assert_eq!(links.read(7, "custom", 450, MTU).unwrap(), b"");
        assert_eq!(links.read(7, "custom", 451, MTU), Err(LayoutError::InvalidOffset { offset: 451, len: 450 }));
        assert_eq!(links.read(7, "custom", 0, 517).unwrap(), value, "one read at a large MTU");
    }

    #[test]
    fn a_disconnect_forgets_the_link_and_hands_back_its_session() {
        let mut links = Links::new();
        assert!(!links.contains(1));
        assert_eq!(links.set_session(1, SessionId(10)), None);
        links.store(1, "prov-session", b"x".to_vec());
        links.set_session(2, SessionId(20));
        assert!(links.contains(1));
        assert_eq!(links.session(1), Some(SessionId(10)));
        assert_eq!(links.set_session(1, SessionId(11)), Some(SessionId(10)), "a reopened session replaces");

        assert_eq!(links.forget(1), Some(SessionId(11)));
        assert!(!links.contains(1));
        assert_eq!(links.session(1), None);
        assert_eq!(links.read(1, "prov-session", 0, MTU).unwrap(), b"", "nothing survives a disconnect");
        assert_eq!(links.forget(1), None);

        links.store(3, "proto-ver", b"v".to_vec());
        let mut left = links.forget_all();
        left.sort();
        assert_eq!(left, vec![SessionId(20)], "links without a session have nothing to close");
        assert!(!links.contains(2) && !links.contains(3));
    }
}
