//! Target `http_head`: the HTTP/1.1 head reading of `wifiprov-transport-http`, the device's (request heads from
//! anyone on the network: blank lines skipped, end of head found, parsed by httparse and checked) and the
//! client's (response heads from the device), through `wifiprov_transport_http::fuzzing`. Input byte 0 bit 0
//! picks the parser: 0 request, 1 response; the rest is what arrived on the connection.
//!
//! Asserted: the outcome depends on the bytes only; a head that was found (accepted or refused) ends with its
//! blank line, lies within the input, and gets the same outcome whatever follows it; when no head is found in
//! the input, none is found in a prefix of it either; a refused head is answered `400` or `431`.

use wifiprov_transport_http::fuzzing::{HeadOutcome, parse_request_head, parse_response_head};

fn check(parse: fn(&[u8]) -> HeadOutcome, data: &[u8]) {
    let outcome = parse(data);
    assert_eq!(parse(data), outcome, "the same bytes parsed twice differ");
    let len = match outcome {
        HeadOutcome::Incomplete => {
            let prefix = &data[..data.len() / 2];
            assert_eq!(parse(prefix), HeadOutcome::Incomplete, "a prefix of an incomplete head holds a head");
            return;
        }
        HeadOutcome::Accepted { len } => len,
        HeadOutcome::Rejected { len, status, error } => {
            assert!(status == 400 || status == 431, "a head refused with status {status} ({error})");
            len
        }
        _ => return,
    };
    assert!(len <= data.len(), "a head of {len} bytes in {} bytes", data.len());
    let head = &data[..len];
    assert!(head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"), "a head without its blank line");
    let mut changed = head.to_vec();
    changed.extend(data[len..].iter().map(|b| b ^ 0x55));
    changed.extend_from_slice(b"X: y\r\n\r\n");
    assert_eq!(parse(&changed), outcome, "the bytes after the head changed its outcome");
    assert_eq!(parse(head), outcome, "the head alone parses otherwise");
}

/// The parser selectors of an `http_head` input.
pub const REQUEST: u8 = 0;
/// See [`REQUEST`].
pub const RESPONSE: u8 = 1;

/// Target `http_head`.
pub fn run(data: &[u8]) {
    let Some((which, bytes)) = data.split_first() else { return };
    if which & 1 == REQUEST {
        check(parse_request_head, bytes);
    } else {
        check(parse_response_head, bytes);
    }
}
