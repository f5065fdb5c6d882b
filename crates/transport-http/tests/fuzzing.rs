//! The fuzzing entry points: what they report for known heads, and properties over generated ones.

use proptest::prelude::*;
use wifiprov_transport_http::fuzzing::{HeadOutcome, parse_request_head, parse_response_head};

const ESP_PROV: &[u8] = b"POST /prov-session HTTP/1.1\r\nHost: 192.168.4.1:80\r\nAccept-Encoding: identity\r\n\
Content-Length: 5\r\nContent-type: application/x-www-form-urlencoded\r\nAccept: text/plain\r\n\
Cookie: session=1107779784\r\n\r\n";

#[test]
fn request_heads() {
    let len = ESP_PROV.len();
    assert_eq!(parse_request_head(ESP_PROV), HeadOutcome::Accepted { len });
    let with_body = [ESP_PROV, b"hello"].concat();
    assert_eq!(parse_request_head(&with_body), HeadOutcome::Accepted { len }, "the body is not part of the head");
    let after_blank_lines = [b"\r\n\r\n".as_slice(), ESP_PROV].concat();
    assert_eq!(parse_request_head(&after_blank_lines), HeadOutcome::Accepted { len: len + 4 });
    assert_eq!(parse_request_head(ESP_PROV.get(..len - 1).unwrap()), HeadOutcome::Incomplete);
    assert_eq!(parse_request_head(b""), HeadOutcome::Incomplete);
    assert_eq!(
        parse_request_head(b"POST /proto-ver HTTP/1.1\nHost: x\nContent-Length: 0\n\n"),
        HeadOutcome::Rejected { len: 52, error: "line ending", status: 400 }
    );
    let many: String = (0..33).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("POST /x HTTP/1.1\r\n{many}\r\n");
    assert_eq!(
        parse_request_head(many.as_bytes()),
        HeadOutcome::Rejected { len: many.len(), error: "too many header fields", status: 431 }
    );
}

#[test]
fn response_heads() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 3\r\nSet-Cookie: session=7\r\n\r\n";
    assert_eq!(parse_response_head(&[head.as_slice(), b"abc"].concat()), HeadOutcome::Accepted { len: head.len() });
    assert_eq!(parse_response_head(b"HTTP/1.1 200 OK\r\n"), HeadOutcome::Incomplete);
    assert!(matches!(parse_response_head(b"ICY 200 OK\r\n\r\n"), HeadOutcome::Rejected { len: 14, .. }));
}

/// A header line with a random name and value from a small alphabet that includes the delimiters.
fn header_line() -> impl Strategy<Value = String> {
    ("[A-Za-z0-9-]{1,12}", "[ -~]{0,20}").prop_map(|(name, value)| format!("{name}: {value}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic, and a reported head lies within the input.
    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for outcome in [parse_request_head(&bytes), parse_response_head(&bytes)] {
            match outcome {
                HeadOutcome::Incomplete => {}
                HeadOutcome::Accepted { len } => prop_assert!(len <= bytes.len()),
                HeadOutcome::Rejected { len, status, .. } => {
                    prop_assert!(len <= bytes.len());
                    prop_assert!(status == 400 || status == 431);
                }
                other => prop_assert!(false, "unknown outcome {other:?}"),
            }
        }
    }

    /// Single-byte edits of a real request never panic, and anything accepted still ends where a head ends.
    #[test]
    fn edited_esp_prov_requests(at in 0..ESP_PROV.len(), byte in any::<u8>(), insert in any::<bool>()) {
        let mut edited = ESP_PROV.to_vec();
        if insert { edited.insert(at, byte) } else { edited[at] = byte }
        if let HeadOutcome::Accepted { len } = parse_request_head(&edited) {
            prop_assert!(edited[..len].ends_with(b"\r\n\r\n"));
        }
    }

    /// Well-formed heads are accepted exactly when every line ends in CRLF; a bare LF anywhere is refused, and
    /// the head ends where the first empty line does, whichever ending it uses.
    #[test]
    fn line_endings(lines in proptest::collection::vec(header_line(), 0..8), bare in proptest::collection::vec(any::<bool>(), 10)) {
        let mut head = String::from("POST /proto-ver HTTP/1.1");
        let mut any_bare = false;
        for (i, line) in std::iter::once(String::new()).chain(lines.iter().cloned()).enumerate() {
            if i > 0 {
                head.push_str(&line);
            }
            let lf_only = bare[i % bare.len()];
            any_bare |= lf_only;
            head.push_str(if lf_only { "\n" } else { "\r\n" });
        }
        let last_bare = bare[(lines.len() + 1) % bare.len()];
        any_bare |= last_bare;
        head.push_str(if last_bare { "\n" } else { "\r\n" });
        let len = head.len();
        head.push_str("body\n\nmore");
        match parse_request_head(head.as_bytes()) {
            HeadOutcome::Accepted { len: got } => {
                prop_assert!(!any_bare, "{head:?} accepted");
                prop_assert_eq!(got, len);
            }
            HeadOutcome::Rejected { len: got, error, status } => {
                prop_assert!(any_bare, "{head:?} refused: {error}");
                prop_assert_eq!((got, error, status), (len, "line ending", 400));
            }
            other => prop_assert!(false, "{head:?}: {other:?}"),
        }
    }
}
