//! Target `proto_ver`: the `proto-ver` reply as a client parses it (`VersionInfo::parse`, what
//! `wifiprov_client::Client::version` returns), and the device's cJSON printer against it.
//!
//! Input byte 0 picks the half: even, the rest is a reply to parse; odd, the rest describes a document (labels,
//! versions, capabilities) for the printer.
//!
//! Asserted: whatever parses prints (`to_cjson`) to a document that parses back equal; a document the device
//! prints (application labels unique and not `prov`) parses back to itself, and its text is valid JSON;
//! `has_cap` and `app` find what is there.

use wifiprov_proto::version::{AppInfo, ProvInfo, VersionInfo};

use crate::input::Input;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    if input.u8() & 1 == 0 {
        parse(input.rest());
    } else {
        print(&mut input);
    }
}

fn parse(reply: &[u8]) {
    let Ok(info) = VersionInfo::parse(reply) else { return };
    let printed = info.to_cjson();
    let again = VersionInfo::parse(printed.as_bytes()).expect("a printed document parses");
    assert_eq!(again, info, "parse(print(parse(x))) differs from parse(x); printed:\n{printed}");
    check_lookups(&info);
}

fn text(input: &mut Input<'_>) -> String {
    let len = usize::from(input.u8() % 24);
    String::from_utf8_lossy(input.bytes(len)).into_owned()
}

fn caps(input: &mut Input<'_>) -> Vec<String> {
    (0..input.u8() % 4).map(|_| text(input)).collect()
}

fn print(input: &mut Input<'_>) {
    let mut app_info: Vec<AppInfo> = Vec::new();
    for _ in 0..input.u8() % 4 {
        let label = text(input);
        let (ver, cap) = (text(input), caps(input));
        if label != "prov" && !app_info.iter().any(|a| a.label == label) {
            app_info.push(AppInfo { label, ver, cap });
        }
    }
    let flags = input.u8();
    let prov = (flags & 1 != 0).then(|| ProvInfo {
        ver: text(input),
        sec_ver: (flags & 2 != 0).then(|| input.u64()),
        sec_patch_ver: (flags & 4 != 0).then(|| input.u64()),
        cap: caps(input),
    });
    let info = VersionInfo { app_info, prov };
    let printed = info.to_cjson();
    serde_json::from_str::<serde_json::Value>(&printed).expect("the printed document is JSON");
    let mut again = VersionInfo::parse(printed.as_bytes()).expect("a printed document parses");
    // A JSON object has no order; compare the labels as a set.
    let mut expected = info.clone();
    expected.app_info.sort_by(|a, b| a.label.cmp(&b.label));
    again.app_info.sort_by(|a, b| a.label.cmp(&b.label));
    assert_eq!(again, expected, "printed:\n{printed}");
    check_lookups(&info);
}

fn check_lookups(info: &VersionInfo) {
    for app in &info.app_info {
        assert!(info.app(&app.label).is_some());
    }
    if let Some(prov) = &info.prov {
        for cap in &prov.cap {
            assert!(prov.has_cap(cap));
        }
    }
}
