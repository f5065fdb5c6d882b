#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

fn request(text: &str) -> RequestHead {
    parse_request(text.as_bytes()).unwrap()
}

#[test]
fn esp_prov_request_head() {
    let head = request(
        "POST /prov-session HTTP/1.1\r\nHost: 127.0.0.1:18765\r\nAccept-Encoding: identity\r\nContent-Length: 5\r\n\
         Content-type: application/x-www-form-urlencoded\r\nAccept: text/plain\r\nCookie: session=1107779784\r\n\r\n",
    );
    assert_eq!(head.method, "POST");
    assert_eq!(head.target, "/prov-session");
    assert_eq!(head.body, BodyLength::Length(5));
    assert_eq!(head.cookie, CookieHeader::One(b"session=1107779784".to_vec()));
    assert!(head.keep_alive);
}

#[test]
fn head_len_finds_blank_line() {
    assert_eq!(head_len(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
    assert_eq!(head_len(b"GET / HTTP/1.1\r\n"), None);
}

#[test]
fn body_length_variants() {
    let body = |headers: &str| request(&format!("POST /x HTTP/1.1\r\n{headers}\r\n")).body;
    assert_eq!(body(""), BodyLength::Absent);
    assert_eq!(body("content-length: 0\r\n"), BodyLength::Length(0));
    assert_eq!(body("Content-Length:  12 \r\n"), BodyLength::Length(12));
    assert_eq!(body("Content-Length: 12\r\nContent-Length: 12\r\n"), BodyLength::Length(12));
    assert_eq!(body("Content-Length: 12\r\nContent-Length: 13\r\n"), BodyLength::Invalid);
    assert_eq!(body("Content-Length: -1\r\n"), BodyLength::Invalid);
    assert_eq!(body("Content-Length: +1\r\n"), BodyLength::Invalid);
    assert_eq!(body("Content-Length: 99999999999999999999999\r\n"), BodyLength::Invalid);
    assert_eq!(body("Transfer-Encoding: chunked\r\n"), BodyLength::Chunked);
    assert_eq!(body("Transfer-Encoding: gzip, chunked\r\n"), BodyLength::Chunked);
    assert_eq!(body("Transfer-Encoding: gzip\r\n"), BodyLength::UnsupportedCoding);
    assert_eq!(body("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"), BodyLength::UnsupportedCoding);
}

#[test]
fn keep_alive_rules() {
    let ka = |text: &str| request(text).keep_alive;
    assert!(ka("POST /x HTTP/1.1\r\n\r\n"));
    assert!(!ka("POST /x HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert!(!ka("POST /x HTTP/1.0\r\n\r\n"));
    assert!(ka("POST /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
}

#[test]
fn cookies() {
    let cookie = |headers: &str| request(&format!("POST /x HTTP/1.1\r\n{headers}\r\n")).cookie;
    assert_eq!(cookie(""), CookieHeader::Absent);
    assert_eq!(cookie("Cookie: a=b\r\ncookie: c=d\r\n"), CookieHeader::Several);
    assert_eq!(cookie_session(b"session=0"), Some(SessionId(0)));
    assert_eq!(cookie_session(b"session=4294967295"), Some(SessionId(u32::MAX)));
    assert_eq!(cookie_session(b"session=4294967296"), None);
    assert_eq!(cookie_session(b"session=007"), None);
    assert_eq!(cookie_session(b"session=1; x=2"), None);
    assert_eq!(cookie_session(b"Session=1"), None);
    assert_eq!(cookie_session(b"session=+1"), None);
    assert_eq!(cookie_session(b"session="), None);
}

#[test]
fn malformed_requests() {
    for text in [
        "POST /x\r\n\r\n",
        "POST  /x HTTP/1.1\r\n\r\n",
        "POST /x HTTP/2.0\r\n\r\n",
        "POST /x HTTP/1.1 extra\r\n\r\n",
        "PO(ST /x HTTP/1.1\r\n\r\n",
        "POST /x HTTP/1.1\r\nno colon\r\n\r\n",
        "POST /x HTTP/1.1\r\nbad name: v\r\n\r\n",
        "POST /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        "POST /x HTTP/1.1\r\nA: b\nC: d\r\n\r\n",
        "POST /x HTTP/1.1\r\nA: b\x00\r\n\r\n",
        "POST /\x7f HTTP/1.1\r\n\r\n",
        "\r\n\r\n",
    ] {
        assert!(parse_request(text.as_bytes()).is_err(), "{text:?} was accepted");
    }
}

#[test]
fn leading_blank_lines_are_skipped() {
    assert_eq!(request("\r\n\r\nPOST /x HTTP/1.1\r\n\r\n").target, "/x");
}

#[test]
fn responses() {
    let head = parse_response(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 3\r\nSet-Cookie: session=42; Path=/\r\n\r\n",
    )
    .unwrap();
    assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
    assert_eq!(head.body, BodyLength::Length(3));
    assert_eq!(head.set_cookie.as_deref(), Some("session=42"));
    assert!(head.keep_alive);
    let head = parse_response(b"HTTP/1.0 404\r\n\r\n").unwrap();
    assert_eq!((head.status, head.reason.as_str(), head.keep_alive), (404, "", false));
    assert!(parse_response(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
    assert!(parse_response(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
    assert!(parse_response(b"ICY 200 OK\r\n\r\n").is_err());
}

#[test]
fn ok_response_layout() {
    assert_eq!(
        ok_response(b"abc", Some(SessionId(7)), false),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 3\r\nSet-Cookie: session=7\r\n\r\nabc"
    );
    assert_eq!(
        ok_response(b"", None, true),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn not_found_response() {
    let response = error_response(ErrorStatus::NotFound);
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(text.ends_with("\r\n\r\nNothing matches the given URI"));
    assert!(text.contains("Content-Length: 29\r\n"));
}
