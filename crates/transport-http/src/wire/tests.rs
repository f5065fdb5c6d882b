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
fn head_len_finds_a_bare_lf_blank_line() {
    assert_eq!(head_len(b"GET / HTTP/1.1\nHost: x\n\nbody"), Some(24));
    assert_eq!(head_len(b"GET / HTTP/1.1\nHost: x\r\n\r\n"), Some(26));
    assert_eq!(head_len(b"GET / HTTP/1.1\r\nHost: x\n\r\n"), Some(26));
    assert_eq!(head_len(b"GET / HTTP/1.1\nHost: x\n"), None);
    assert_eq!(head_len(b"GET / HTTP/1.1\r\nHost: x\r\r\n"), None, "a bare CR ends no line");
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
    let response = error_response(ErrorStatus::NotFound, ResponseBody::Send);
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(text.ends_with("\r\n\r\nNothing matches the given URI"));
    assert!(text.contains("Content-Length: 29\r\n"));
}

fn request_error(text: &[u8]) -> HeadError {
    match parse_request(text) {
        Ok(head) => panic!("{:?} was accepted as {head:?}", String::from_utf8_lossy(text)),
        Err(e) => e,
    }
}

#[test]
fn bare_lf_and_cr_are_refused_with_400() {
    for text in [
        b"POST /proto-ver HTTP/1.1\nHost: x\nContent-Length: 0\n\n".as_slice(),
        b"POST /proto-ver HTTP/1.1\nHost: x\r\n\r\n",
        b"POST /proto-ver HTTP/1.1\r\nHost: x\n\r\n",
        b"POST /proto-ver HTTP/1.1\r\nHost: x\r\n\n",
        b"\nPOST /proto-ver HTTP/1.1\r\n\r\n",
        b"\n\n",
        b"POST /proto-ver HTTP/1.1\r\nHost: x\ry\r\n\r\n",
        b"POST /proto-ver HTTP/1.1\r\r\n\r\n",
    ] {
        let e = request_error(text);
        assert_eq!(e, HeadError::Malformed("line ending"), "{:?}", String::from_utf8_lossy(text));
        assert_eq!(e.status(), ErrorStatus::BadRequest);
    }
    let e = parse_response(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n").unwrap_err();
    assert_eq!(e, HeadError::Malformed("line ending"));
}

#[test]
fn header_fields_are_bounded() {
    let head = |fields: usize| {
        let lines: String = (0..fields).map(|i| format!("X-{i}: v\r\n")).collect();
        format!("POST /x HTTP/1.1\r\n{lines}\r\n")
    };
    assert_eq!(request(&head(MAX_HEADERS)).target, "/x");
    let e = request_error(head(MAX_HEADERS + 1).as_bytes());
    assert_eq!((e, e.status()), (HeadError::TooManyHeaders, ErrorStatus::HeaderTooLarge));
    // Cheap fields do not get around the bound.
    let many = format!("POST /x HTTP/1.1\r\n{}\r\n", "a:\r\n".repeat(2000));
    assert_eq!(request_error(many.as_bytes()), HeadError::TooManyHeaders);

    let response = |fields: usize| {
        let lines: String = (0..fields).map(|i| format!("X-{i}: v\r\n")).collect();
        format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{lines}\r\n")
    };
    assert!(parse_response(response(MAX_HEADERS - 1).as_bytes()).is_ok());
    let e = parse_response(response(MAX_HEADERS).as_bytes()).unwrap_err();
    assert_eq!((e, e.what()), (HeadError::TooManyHeaders, "too many header fields"));
}

#[test]
fn folded_lines_and_garbage_in_header_names_are_refused() {
    for (text, what) in [
        (b"POST /x HTTP/1.1\r\nA: b\r\n\tfolded\r\n\r\n".as_slice(), "header name"),
        (b"POST /x HTTP/1.1\r\n folded: first\r\n\r\n", "header name"),
        (b"POST /x HTTP/1.1\r\nA : b\r\n\r\n", "header name"),
        (b"POST /x HTTP/1.1\r\n: b\r\n\r\n", "header name"),
        (b"POST /x HTTP/1.1\r\nA(b): c\r\n\r\n", "header name"),
        (b"POST /x HTTP/1.1\r\nA\x01: b\r\n\r\n", "header name"),
        (b"POST /x HTTP/1.1\r\n\xc3\x84: b\r\n\r\n", "header name"),
        (b"POST /x HTTP/1.1\r\nA: b\x7f\r\n\r\n", "header value"),
        (b"POST /x HTTP/1.1\r\nA: b\x1bc\r\n\r\n", "header value"),
    ] {
        assert_eq!(request_error(text), HeadError::Malformed(what), "{:?}", String::from_utf8_lossy(text));
    }
    assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n folded\r\n\r\n").is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\n").is_err());
}

#[test]
fn nul_bytes_are_refused_anywhere() {
    let clean = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n";
    assert!(parse_request(clean).is_ok());
    // A NUL in place of, or next to, every byte of the head but the final CRLFCRLF.
    for i in 0..clean.len() - 4 {
        let mut replaced = clean.to_vec();
        replaced[i] = 0;
        assert!(parse_request(&replaced).is_err(), "NUL at {i} accepted");
        let mut inserted = clean.to_vec();
        inserted.insert(i, 0);
        assert!(parse_request(&inserted).is_err(), "NUL inserted at {i} accepted");
    }
    assert!(parse_response(b"HTTP/1.1 200 O\x00K\r\n\r\n").is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=1\x00\r\n\r\n").is_err());
}

#[test]
fn non_utf8_header_values_are_kept_as_bytes() {
    let head = parse_request(b"POST /x HTTP/1.1\r\nX-Name: caf\xe9\r\nCookie: session=1\xff\r\n\r\n").unwrap();
    assert_eq!(head.cookie, CookieHeader::One(b"session=1\xff".to_vec()));
    assert_eq!(cookie_session(b"session=1\xff"), None, "never matches a session");
    let head = parse_request(b"POST /x HTTP/1.1\r\nContent-Length: 1\xff\r\n\r\n").unwrap();
    assert_eq!(head.body, BodyLength::Invalid);
    let head =
        parse_response(b"HTTP/1.1 200 \xc3\xa9t\xe9\r\nSet-Cookie: s\xff=1\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!((head.status, head.reason.as_str(), head.set_cookie), (200, "", None));
    // Non-ASCII request targets are refused, even when they are UTF-8.
    assert_eq!(request_error("POST /é HTTP/1.1\r\n\r\n".as_bytes()), HeadError::Malformed("request target"));
    assert!(parse_request(b"POST /\xff HTTP/1.1\r\n\r\n").is_err());
}

#[test]
fn huge_and_disagreeing_content_lengths() {
    let body = |headers: &str| request(&format!("POST /x HTTP/1.1\r\n{headers}\r\n")).body;
    assert_eq!(body("Content-Length: 18446744073709551615\r\n"), BodyLength::Length(u64::MAX));
    assert_eq!(body("Content-Length: 18446744073709551616\r\n"), BodyLength::Invalid);
    assert_eq!(body(&format!("Content-Length: {}\r\n", "9".repeat(4000))), BodyLength::Invalid);
    assert_eq!(body("Content-Length: 4\r\ncontent-length: 5\r\n"), BodyLength::Invalid);
    assert_eq!(body("Content-Length: 4\r\nX: y\r\nCONTENT-LENGTH: 4\r\n"), BodyLength::Length(4));
    assert_eq!(body("Content-Length: 4\r\nContent-Length: 5\r\nContent-Length: 4\r\n"), BodyLength::Invalid);
    assert_eq!(body("Content-Length: 4, 4\r\n"), BodyLength::Invalid);
    assert_eq!(body("Content-Length: 4 4\r\n"), BodyLength::Invalid);
    assert_eq!(body("Content-Length:\r\n"), BodyLength::Invalid);
    assert_eq!(body("Content-Length: 0x10\r\n"), BodyLength::Invalid);
    let response = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").unwrap();
    assert_eq!(response.body, BodyLength::Invalid);
}

#[test]
fn only_a_complete_head_and_nothing_more_is_parsed() {
    assert_eq!(request_error(b"POST /x HTTP/1.1\r\n"), HeadError::Malformed("incomplete head"));
    assert_eq!(request_error(b"POST /x HTTP/1.1\r\n\r\nbody"), HeadError::Malformed("data after the head"));
    assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\nbody").is_err());
    assert!(parse_response(b"HTTP/1.1 099 Odd\r\n\r\n").is_err());
    assert!(parse_response(b"HTTP/1.1 000\r\n\r\n").is_err());
    assert_eq!(parse_response(b"HTTP/1.1 999 Odd\r\n\r\n").unwrap().status, 999);
}

#[test]
fn head_responses_carry_no_body() {
    assert_eq!(ResponseBody::for_request(b"HEAD"), ResponseBody::Omit);
    assert_eq!(ResponseBody::for_request(b"HEAD /proto-ver HTTP/1.1\r\n"), ResponseBody::Omit);
    assert_eq!(ResponseBody::for_request(b"HEADER /proto-ver HTTP/1.1\r\n"), ResponseBody::Send);
    assert_eq!(ResponseBody::for_request(b"head /proto-ver HTTP/1.1\r\n"), ResponseBody::Send);
    assert_eq!(ResponseBody::for_request(b"GET"), ResponseBody::Send);

    let full = error_response(ErrorStatus::MethodNotAllowed, ResponseBody::Send);
    let head_only = error_response(ErrorStatus::MethodNotAllowed, ResponseBody::Omit);
    let text = String::from_utf8(head_only.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{text}");
    assert!(text.contains("\r\nAllow: POST\r\n"), "{text}");
    assert!(text.contains(&format!("\r\nContent-Length: {}\r\n", METHOD_NOT_ALLOWED_BODY.len())), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
    assert_eq!(full, [head_only.as_slice(), METHOD_NOT_ALLOWED_BODY.as_bytes()].concat(), "the GET answer's head");
    let text = String::from_utf8(error_response(ErrorStatus::NotFound, ResponseBody::Omit)).unwrap();
    assert!(text.ends_with("Connection: close\r\n\r\n") && !text.contains("Allow"), "{text}");
    let text = String::from_utf8(error_response(ErrorStatus::BadRequest, ResponseBody::Send)).unwrap();
    assert!(!text.contains("Allow"), "{text}");
}

#[test]
fn a_locked_out_handshake_is_told_why_and_for_how_long() {
    let response = locked_response(30);
    let end = head_len(&response).unwrap();
    let head = parse_response(&response[..end]).unwrap();
    assert_eq!((head.status, head.keep_alive), (429, false));
    assert!(String::from_utf8_lossy(&response[..end]).contains("\r\nRetry-After: 30\r\n"));
    let body = &response[end..];
    assert_eq!(head.body, BodyLength::Length(body.len() as u64));
    assert_eq!(body, b"locked for 30 s after repeated wrong proofs of possession or passwords");
}
