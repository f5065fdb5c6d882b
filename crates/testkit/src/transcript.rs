//! The esp_prov session transcripts (`tests/vectors/esp_prov-sessions`): their exchanges, and a device that
//! answers them from the script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use wifiprov_proto::endpoint::{HandlerError, Protocomm, SessionId, SessionLimits, names};
use wifiprov_proto::security::DeviceSecurity;

use crate::unhex;

/// The exchanges of one run, in order.
pub fn exchanges(run: &Value) -> &Vec<Value> {
    run["exchanges"].as_array().expect("run has exchanges")
}

/// The plaintext `request` or `response` of an exchange (security 0 has no separate plaintext field).
pub fn plaintext(exchange: &Value, which: &str, sec0: bool) -> Option<Vec<u8>> {
    let key = if sec0 { format!("{which}_hex") } else { format!("{which}_plaintext_hex") };
    exchange[key.as_str()].as_str().map(unhex)
}

/// A device whose ordinary endpoints expect the run's decrypted requests in order and answer with its plaintext
/// responses, so a test pins the security and transport layers and nothing else.
pub fn scripted_device(security: DeviceSecurity, version: &str, run: &Value, sec0: bool) -> Protocomm {
    type Script = Arc<Mutex<VecDeque<(String, Vec<u8>, Vec<u8>)>>>;
    let script: Script = Arc::default();
    for e in exchanges(run) {
        let endpoint = e["endpoint"].as_str().expect("exchange has an endpoint");
        if endpoint != names::PROTO_VER
            && endpoint != names::PROV_SESSION
            && let (Some(request), Some(response)) = (plaintext(e, "request", sec0), plaintext(e, "response", sec0))
        {
            script.lock().unwrap().push_back((endpoint.to_owned(), request, response));
        }
    }
    let mut pc = Protocomm::new(SessionLimits::default());
    pc.set_version(names::PROTO_VER, version).unwrap();
    pc.set_security(names::PROV_SESSION, security).unwrap();
    for name in [names::PROV_CONFIG, names::PROV_SCAN, names::PROV_CTRL, "custom-data"] {
        let script = script.clone();
        let handler = move |_: Option<SessionId>, request: &[u8]| -> Result<Vec<u8>, HandlerError> {
            let (endpoint, expected, response) = script.lock().unwrap().pop_front().expect("unexpected request");
            assert_eq!(endpoint, name, "request reached the wrong endpoint");
            assert_eq!(hex::encode(request), hex::encode(expected), "{name}: decrypted request differs");
            Ok(response)
        };
        pc.add_endpoint(name, Arc::new(handler)).unwrap();
    }
    pc
}
