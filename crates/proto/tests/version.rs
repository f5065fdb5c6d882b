//! `proto-ver`: ESP's exact cJSON bytes on the device side, tolerant parsing on the client side.

use std::sync::Arc;

use wifiprov_proto::danger;
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::{DeviceSecurity, Sec2Patch};
use wifiprov_proto::version::{AppInfo, ProvInfo, VersionInfo};
use wifiprov_testkit::vectors;

use crate::common::{esp_test_verifier, sec1_device};

fn json_for(security: &DeviceSecurity, app_info: Vec<AppInfo>) -> String {
    VersionInfo { app_info, prov: Some(ProvInfo::for_device(security)) }.to_cjson()
}

#[test]
fn sec2_patched_device_matches_esp_byte_for_byte() {
    // Fact sheet §1.3, exact bytes of a patched sec2 device with no app info.
    let expected = "{\n\t\"prov\":\t{\n\t\t\"ver\":\t\"v1.1\",\n\t\t\"sec_ver\":\t2,\n\t\t\"sec_patch_ver\":\t1,\n\t\t\"cap\":\t[\"wifi_scan\"]\n\t}\n}";
    assert_eq!(json_for(&DeviceSecurity::sec2(esp_test_verifier(), Sec2Patch::Counter), vec![]), expected);
}

#[test]
fn capability_rules() {
    let caps = |s: &DeviceSecurity| ProvInfo::for_device(s).cap;
    assert_eq!(caps(&danger::sec0()), ["no_sec", "wifi_scan"]);
    assert_eq!(caps(&danger::sec1_without_pop()), ["no_pop", "wifi_scan"]);
    // An empty PoP disables the hash but is not advertised as no_pop.
    assert_eq!(caps(&DeviceSecurity::sec1(ProofOfPossession::from(""))), ["wifi_scan"]);
    assert_eq!(caps(&sec1_device("abcd1234")), ["wifi_scan"]);
    let legacy = ProvInfo::for_device(&DeviceSecurity::sec2(Arc::clone(&esp_test_verifier()), Sec2Patch::Legacy));
    assert_eq!((legacy.sec_ver, legacy.sec_patch_ver), (Some(2), Some(0)));
    assert_eq!(ProvInfo::for_device(&danger::sec0()).sec_patch_ver, Some(0));
}

#[test]
fn app_info_labels_come_first_and_strings_are_escaped_like_cjson() {
    let app = vec![
        AppInfo { label: "wifiprov".into(), ver: "0.1.0".into(), cap: vec!["networks".into(), "x".into()] },
        AppInfo { label: "odd\"label".into(), ver: "tab\there\u{1}".into(), cap: vec![] },
    ];
    let json = json_for(&sec1_device("p"), app);
    let expected = concat!(
        "{\n",
        "\t\"wifiprov\":\t{\n\t\t\"ver\":\t\"0.1.0\",\n\t\t\"cap\":\t[\"networks\", \"x\"]\n\t},\n",
        "\t\"odd\\\"label\":\t{\n\t\t\"ver\":\t\"tab\\there\\u0001\",\n\t\t\"cap\":\t[]\n\t},\n",
        "\t\"prov\":\t{\n\t\t\"ver\":\t\"v1.1\",\n\t\t\"sec_ver\":\t1,\n\t\t\"sec_patch_ver\":\t0,\n\t\t\"cap\":\t[\"wifi_scan\"]\n\t}\n",
        "}",
    );
    assert_eq!(json, expected);
    let parsed = VersionInfo::parse(json.as_bytes()).unwrap();
    assert_eq!(parsed.app("wifiprov").unwrap().cap, ["networks", "x"]);
    assert_eq!(parsed.app("odd\"label").unwrap().ver, "tab\there\u{1}");
    assert_eq!(parsed.prov.unwrap().sec_ver, Some(1));
}

#[test]
fn parses_every_reference_reply_and_old_firmware() {
    let sec2 = vectors("esp_prov-sessions/sec2.json");
    let patched =
        VersionInfo::parse(sec2["variants"]["sec_patch_ver_1"]["proto_ver_response"].as_str().unwrap().as_bytes())
            .unwrap();
    let prov = patched.prov.unwrap();
    assert_eq!((prov.ver.as_str(), prov.sec_ver, prov.sec_patch_ver), ("v1.1", Some(2), Some(1)));
    assert!(prov.has_cap("wifi_scan"));
    let legacy =
        VersionInfo::parse(sec2["variants"]["sec_patch_ver_0"]["proto_ver_response"].as_str().unwrap().as_bytes())
            .unwrap();
    assert_eq!(legacy.prov.unwrap().sec_patch_ver, None);
    let sec0 = vectors("esp_prov-sessions/sec0.json");
    let prov = VersionInfo::parse(sec0["proto_ver_response"].as_str().unwrap().as_bytes()).unwrap().prov.unwrap();
    assert!(prov.has_cap("no_sec"));

    // Firmware before JSON replies with a bare version string.
    let bare = VersionInfo::parse(b"V0.1").unwrap().prov.unwrap();
    assert_eq!((bare.ver.as_str(), bare.sec_ver), ("V0.1", None));
    assert!(VersionInfo::parse(&[0xff, 0xfe]).is_err());
    assert!(VersionInfo::parse(br#"{"prov":{"ver":"v1.1","sec_ver":"two"}}"#).is_err());
    assert!(VersionInfo::parse(br#"{"prov":{"ver":"v1.1","cap":[1]}}"#).is_err());
}
