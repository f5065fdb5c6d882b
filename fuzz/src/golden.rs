//! The golden vectors of `tests/vectors/`, compiled into the targets (so a fuzz binary needs no files beside
//! it) and parsed once. They give the harness real handshakes to replay: with a profile's device secrets queued
//! in the random source, the recorded client messages establish a session, and the fuzzer can work on the
//! encrypted traffic after it.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use wifiprov_proto::security::{Sec2Patch, Sec2Verifier};

const COMPACT: &str = include_str!("../../tests/vectors/esp-security-vectors.json");
const SEC0: &str = include_str!("../../tests/vectors/esp_prov-sessions/sec0.json");
const SEC1: &str = include_str!("../../tests/vectors/esp_prov-sessions/sec1.json");
const SEC2: &str = include_str!("../../tests/vectors/esp_prov-sessions/sec2.json");
const SEC2_EDGE: &str = include_str!("../../tests/vectors/esp_prov-sessions/sec2_edge_cases.json");

fn json(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("golden vector {what} is not JSON: {e}"))
}

fn unhex(v: &Value, key: &str) -> Vec<u8> {
    let text = v[key].as_str().unwrap_or_else(|| panic!("golden vector field {key} is missing"));
    hex::decode(text).unwrap_or_else(|e| panic!("golden vector field {key} is not hex: {e}"))
}

fn opt_hex(v: &Value, key: &str) -> Option<Vec<u8>> {
    v[key].as_str().map(|t| hex::decode(t).unwrap_or_else(|e| panic!("golden vector field {key} is not hex: {e}")))
}

/// One recorded handshake message and the device's answer.
#[derive(Debug, Clone)]
pub struct Step {
    /// The client's message.
    pub request: Vec<u8>,
    /// The device's answer; `None` where it refused.
    pub response: Option<Vec<u8>>,
}

/// A security 1 device and client with pinned secrets.
#[derive(Debug, Clone)]
pub struct Sec1Profile {
    /// Where it comes from.
    pub name: &'static str,
    /// The proof of possession.
    pub pop: Vec<u8>,
    /// What the device draws: its X25519 private key, then its random.
    pub device_draws: Vec<u8>,
    /// What the client draws: its X25519 private key.
    pub client_draws: Vec<u8>,
    /// Command 0 and command 1 with the device's answers.
    pub handshake: Vec<Step>,
}

/// A security 2 device (salt and verifier) with pinned secrets, and the key its recorded session agreed on.
#[derive(Debug)]
pub struct Sec2Profile {
    /// Where it comes from.
    pub name: &'static str,
    /// The device's salt.
    pub salt: Vec<u8>,
    /// The device's verifier.
    pub verifier: Vec<u8>,
    /// The nonce rule.
    pub patch: Sec2Patch,
    /// What the device draws: b, then the nonce (8 bytes for patch 1, 16 for patch 0).
    pub device_draws: Vec<u8>,
    /// What the client draws: a.
    pub client_draws: Vec<u8>,
    /// Command 0 and command 1 with the device's answers.
    pub handshake: Vec<Step>,
    /// The AES-256-GCM key of the recorded session.
    pub aes_key: [u8; 32],
    /// The device nonce the recorded session starts with (12 bytes for patch 1, 16 for patch 0).
    pub nonce: Vec<u8>,
    device: OnceLock<Arc<Sec2Verifier>>,
}

impl Sec2Profile {
    /// The device's verifier, built once per process (building one costs milliseconds).
    pub fn device(&self) -> Arc<Sec2Verifier> {
        self.device
            .get_or_init(|| {
                Arc::new(Sec2Verifier::new(&self.salt, &self.verifier).expect("golden salt and verifier are valid"))
            })
            .clone()
    }
}

/// One exchange of an esp_prov transcript.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The endpoint.
    pub endpoint: String,
    /// The body on the wire.
    pub request: Vec<u8>,
    /// The device's body on the wire; `None` where it refused.
    pub response: Option<Vec<u8>>,
    /// The decrypted request, for encrypted endpoints (security 0: the body itself).
    pub request_plain: Option<Vec<u8>>,
    /// The decrypted response.
    pub response_plain: Option<Vec<u8>>,
    /// The HTTP request line and headers as esp_prov sent them.
    pub http_request: Option<String>,
    /// The `Set-Cookie` value the reference device sent, if any.
    pub set_cookie: Option<String>,
}

/// One esp_prov run.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// `sec0/provision`, `sec1/wrong_pop`, ...
    pub name: String,
    /// The security scheme, 0 to 2.
    pub scheme: u8,
    /// The profile (index into [`sec1_profiles`] or [`sec2_profiles`]) whose secrets the device used.
    pub profile: usize,
    /// The exchanges, in order.
    pub exchanges: Vec<Exchange>,
    /// The `proto-ver` reply of the reference device.
    pub proto_ver: Option<String>,
}

/// An encrypted request and response pair of the compact vectors: (scheme, profile, request cipher, request
/// plain, response plain, response cipher).
pub type CompactPair = (u8, usize, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);

/// All golden data.
#[derive(Debug)]
pub struct Golden {
    /// Security 0 command and answer.
    pub sec0: Step,
    /// Security 1 profiles: 0 the compact vectors, 1 the esp_prov transcripts.
    pub sec1: Vec<Sec1Profile>,
    /// Security 2 profiles: 0 the compact vectors, 1 and 2 the transcripts at patch 1 and 0, 3 and 4 the
    /// leading-zero edge cases.
    pub sec2: Vec<Sec2Profile>,
    /// Every esp_prov run.
    pub transcripts: Vec<Transcript>,
    /// The compact vectors' encrypted request and response pairs.
    pub compact_pairs: Vec<CompactPair>,
}

/// The golden data, parsed on first use.
pub fn golden() -> &'static Golden {
    static GOLDEN: OnceLock<Golden> = OnceLock::new();
    GOLDEN.get_or_init(load)
}

fn exchanges(run: &Value) -> Vec<Exchange> {
    let list = run["exchanges"].as_array().expect("golden run has exchanges");
    list.iter()
        .map(|e| {
            let http = &e["http"];
            let http_request = http["request_line"].as_str().map(|line| {
                let mut text = format!("{line}\r\n");
                if let Some(headers) = http["request_headers"].as_object() {
                    for (name, value) in headers {
                        text.push_str(&format!("{name}: {}\r\n", value.as_str().unwrap_or_default()));
                    }
                }
                text.push_str("\r\n");
                text
            });
            Exchange {
                endpoint: e["endpoint"].as_str().expect("exchange has an endpoint").to_owned(),
                request: unhex(e, "request_hex"),
                response: opt_hex(e, "response_hex"),
                request_plain: opt_hex(e, "request_plaintext_hex"),
                response_plain: opt_hex(e, "response_plaintext_hex"),
                http_request,
                set_cookie: http["response_set_cookie"].as_str().map(str::to_owned),
            }
        })
        .collect()
}

fn handshake(run: &Value) -> Vec<Step> {
    exchanges(run)
        .into_iter()
        .filter(|e| e.endpoint == "prov-session")
        .map(|e| Step { request: e.request, response: e.response })
        .collect()
}

fn key32(bytes: &[u8]) -> [u8; 32] {
    bytes.get(..32).and_then(|k| k.try_into().ok()).expect("golden AES key has 32 bytes")
}

fn load() -> Golden {
    let compact = json(COMPACT, "esp-security-vectors.json");
    let sec0_file = json(SEC0, "sec0.json");
    let sec1_file = json(SEC1, "sec1.json");
    let sec2_file = json(SEC2, "sec2.json");
    let edge_file = json(SEC2_EDGE, "sec2_edge_cases.json");

    let c0 = &compact["sec0"];
    let sec0 = Step { request: unhex(c0, "cmd_bytes"), response: Some(unhex(c0, "resp_bytes")) };

    let c1 = &compact["sec1"];
    let compact_step =
        |v: &Value, cmd: &str, resp: &str| Step { request: unhex(v, cmd), response: Some(unhex(v, resp)) };
    let mut sec1 = vec![Sec1Profile {
        name: "compact",
        pop: c1["pop"].as_str().expect("sec1 pop").as_bytes().to_vec(),
        device_draws: [unhex(c1, "device_priv"), unhex(c1, "device_random")].concat(),
        client_draws: unhex(c1, "client_priv"),
        handshake: vec![compact_step(c1, "cmd0_bytes", "resp0_bytes"), compact_step(c1, "cmd1_bytes", "resp1_bytes")],
    }];
    let runs1 = sec1_file["runs"].as_array().expect("sec1 runs");
    sec1.push(Sec1Profile {
        name: "esp_prov",
        pop: sec1_file["pop"].as_str().expect("sec1 pop").as_bytes().to_vec(),
        device_draws: [unhex(&sec1_file, "device_private_key"), unhex(&sec1_file, "device_random")].concat(),
        client_draws: unhex(&sec1_file, "client_private_key"),
        handshake: handshake(&runs1[0]),
    });

    let c2 = &compact["sec2"];
    let c2_nonce = unhex(c2, "device_nonce");
    let mut sec2 = vec![Sec2Profile {
        name: "compact",
        salt: unhex(c2, "salt"),
        verifier: unhex(c2, "verifier"),
        patch: Sec2Patch::Counter,
        device_draws: [unhex(c2, "b"), c2_nonce[..8].to_vec()].concat(),
        client_draws: unhex(c2, "a"),
        handshake: vec![compact_step(c2, "cmd0_bytes", "resp0_bytes"), compact_step(c2, "cmd1_bytes", "resp1_bytes")],
        aes_key: key32(&unhex(c2, "aes_key")),
        nonce: c2_nonce,
        device: OnceLock::new(),
    }];
    let mut transcripts = Vec::new();
    for (i, (variant, patch, name)) in [
        ("sec_patch_ver_1", Sec2Patch::Counter, "esp_prov patch 1"),
        ("sec_patch_ver_0", Sec2Patch::Legacy, "esp_prov patch 0"),
    ]
    .into_iter()
    .enumerate()
    {
        let v = &sec2_file["variants"][variant];
        let nonce = unhex(v, "device_nonce");
        let draws = match patch {
            Sec2Patch::Counter => nonce[..8].to_vec(),
            _ => nonce.clone(),
        };
        let runs = v["runs"].as_array().expect("sec2 runs");
        sec2.push(Sec2Profile {
            name,
            salt: unhex(&sec2_file, "salt"),
            verifier: unhex(&sec2_file, "verifier"),
            patch,
            device_draws: [unhex(&sec2_file, "device_b"), draws].concat(),
            client_draws: unhex(&sec2_file, "client_a"),
            handshake: handshake(&runs[0]),
            aes_key: key32(&unhex(&sec2_file, "aes_gcm_key")),
            nonce,
            device: OnceLock::new(),
        });
        for run in runs {
            transcripts.push(Transcript {
                name: format!("sec2/{}", run["name"].as_str().unwrap_or("run")),
                scheme: 2,
                profile: 1 + i,
                exchanges: exchanges(run),
                proto_ver: v["proto_ver_response"].as_str().map(str::to_owned),
            });
        }
    }
    for (name, case) in
        [("B_has_leading_zero_byte", "esp_prov B short"), ("S_has_leading_zero_byte", "esp_prov S short")]
    {
        let v = &edge_file["cases"][name];
        let nonce = unhex(v, "device_nonce");
        let runs = v["runs"].as_array().expect("edge runs");
        let profile = sec2.len();
        sec2.push(Sec2Profile {
            name: case,
            salt: unhex(v, "salt"),
            verifier: unhex(v, "verifier"),
            patch: Sec2Patch::Counter,
            device_draws: [unhex(v, "device_b"), nonce[..8].to_vec()].concat(),
            client_draws: unhex(v, "client_a"),
            handshake: handshake(&runs[0]),
            aes_key: key32(&unhex(v, "aes_gcm_key")),
            nonce,
            device: OnceLock::new(),
        });
        for run in runs {
            transcripts.push(Transcript {
                name: format!("sec2-edge/{name}/{}", run["name"].as_str().unwrap_or("run")),
                scheme: 2,
                profile,
                exchanges: exchanges(run),
                proto_ver: v["proto_ver_response"].as_str().map(str::to_owned),
            });
        }
    }
    for run in sec0_file["runs"].as_array().expect("sec0 runs") {
        transcripts.push(Transcript {
            name: format!("sec0/{}", run["name"].as_str().unwrap_or("run")),
            scheme: 0,
            profile: 0,
            exchanges: exchanges(run),
            proto_ver: sec0_file["proto_ver_response"].as_str().map(str::to_owned),
        });
    }
    for run in runs1 {
        transcripts.push(Transcript {
            name: format!("sec1/{}", run["name"].as_str().unwrap_or("run")),
            scheme: 1,
            profile: 1,
            exchanges: exchanges(run),
            proto_ver: sec1_file["proto_ver_response"].as_str().map(str::to_owned),
        });
    }
    let compact_pairs = vec![
        (1, 0, unhex(c1, "req1_cipher"), unhex(c1, "req1_plain"), unhex(c1, "resp1_plain"), unhex(c1, "resp1_cipher")),
        (2, 0, unhex(c2, "req1_cipher"), unhex(c2, "req1_plain"), unhex(c2, "resp1_plain"), unhex(c2, "resp1_cipher")),
    ];
    Golden { sec0, sec1, sec2, transcripts, compact_pairs }
}
