//! Entry points for fuzzing the head parsers (a cargo-fuzz target outside the workspace drives them). Not part of
//! the supported interface: they exist so that arbitrary bytes can reach the code that reads untrusted heads,
//! exactly as the server and the client run it, without a socket.

use crate::wire;

/// What a head parser made of some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadOutcome {
    /// The bytes hold no complete head: the reader would wait for more.
    Incomplete,
    /// The first `len` bytes are a head, and it was accepted.
    Accepted {
        /// Length of the head, blank line included.
        len: usize,
    },
    /// The first `len` bytes are a head, and it was refused.
    Rejected {
        /// Length of the head, blank line included.
        len: usize,
        /// Why, in a few words.
        error: &'static str,
        /// The status a server answers with (`400` or `431`); the client reports any refusal as a malformed
        /// response.
        status: u16,
    },
}

fn outcome<T>(bytes: &[u8], skipped: usize, parse: impl FnOnce(&[u8]) -> Result<T, wire::HeadError>) -> HeadOutcome {
    let rest = bytes.get(skipped..).unwrap_or_default();
    let Some(head) = wire::head_len(rest).and_then(|n| rest.get(..n)) else {
        return HeadOutcome::Incomplete;
    };
    let len = skipped + head.len();
    match parse(head) {
        Ok(_) => HeadOutcome::Accepted { len },
        Err(e) => HeadOutcome::Rejected { len, error: e.what(), status: e.status().code() },
    }
}

/// Runs the server's request-head reading on `bytes`, as if they were the first bytes of a connection: skips
/// the blank lines (CRLF) a client may send before a request, finds the end of the head, and parses it. No size
/// limit is applied (the server refuses heads over [`HttpConfig::max_head`](crate::HttpConfig::max_head) before
/// parsing them). Exists for fuzzing.
pub fn parse_request_head(bytes: &[u8]) -> HeadOutcome {
    outcome(bytes, wire::leading_blank_lines(bytes), wire::parse_request)
}

/// Runs the client's response-head reading on `bytes`, as if they were what a device sent back: finds the end
/// of the head and parses it. No size limit is applied. Exists for fuzzing.
pub fn parse_response_head(bytes: &[u8]) -> HeadOutcome {
    outcome(bytes, 0, wire::parse_response)
}
