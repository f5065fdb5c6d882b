//! Device-side handshake cost, against the raw big-integer work it cannot avoid.
//!
//! Baseline (same run, same inputs): `g^b mod N` with a 256-bit `b`, and `(A·v^u)^b mod N`, each with plain
//! constant-time crypto-bigint `pow`. The sec2 handshake is everything the device does for one session:
//! decode Command0, draw `b`, compute B and K, encode Response0, check M1, compute M2, draw the nonce, encode
//! Response1. Client messages are prepared once; the device's randomness is replayed so they stay valid.

#![allow(clippy::indexing_slicing, reason = "fixed benchmark inputs, not peer data")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::srp::bench_support::{group_int, raw_a_vu_b, raw_g_pow};
use wifiprov_proto::security::srp::{self, SrpServer};
use wifiprov_proto::security::{ClientSecurity, ClientSession, DeviceSecurity, DeviceSession, Sec2Patch, Sec2Verifier};
use wifiprov_testkit::{ScriptedRandom, SeededRandom, unhex};

const SALT: &str = "036ee0c7bcb9eda84c9eac97d93decf4";

/// Runs the client against a device with fixed randomness; returns the client's handshake requests.
fn client_messages(device: &DeviceSecurity, client: ClientSecurity, device_random: &[u8]) -> Vec<Vec<u8>> {
    let mut client_rng = SeededRandom::new(7);
    let mut device_rng = ScriptedRandom::new([device_random]);
    let mut d = DeviceSession::new(device);
    let mut c = ClientSession::new(client);
    let mut requests = vec![c.start(&mut client_rng).expect("start")];
    loop {
        let request = requests.last().expect("a request").clone();
        let response = d.handle_handshake(&request, &mut device_rng).expect("device");
        match c.handle_response(&response, &mut client_rng).expect("client") {
            Some(next) => requests.push(next),
            None => return requests,
        }
    }
}

fn device_handshake(device: &DeviceSecurity, requests: &[Vec<u8>], mut rng: ScriptedRandom) -> DeviceSession {
    let mut d = DeviceSession::new(device);
    for request in requests {
        black_box(d.handle_handshake(request, &mut rng).expect("handshake"));
    }
    assert!(d.is_established());
    d
}

fn bench(c: &mut Criterion) {
    let salt = unhex(SALT);
    let verifier_bytes = srp::compute_verifier(b"wifiprov", b"abcd1234", &salt);
    let verifier = Arc::new(Sec2Verifier::new(&salt, &verifier_bytes).expect("verifier"));
    let sec2 = DeviceSecurity::sec2(verifier, Sec2Patch::Counter);
    let sec2_random: Vec<u8> = (0u8..40).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    let sec2_requests = client_messages(
        &sec2,
        ClientSecurity::sec2("wifiprov", Password::from("abcd1234"), Sec2Patch::Counter),
        &sec2_random,
    );

    let sec1 = DeviceSecurity::sec1(ProofOfPossession::from("abcd1234"));
    let sec1_random: Vec<u8> = (0u8..48).map(|i| i.wrapping_mul(29).wrapping_add(3)).collect();
    let sec1_requests = client_messages(&sec1, ClientSecurity::sec1(ProofOfPossession::from("abcd1234")), &sec1_random);

    // Raw operations on the same values the handshake uses.
    let b: [u8; 32] = sec2_random[..32].try_into().expect("32 bytes");
    let server = SrpServer::new(&salt, &verifier_bytes).expect("server");
    let a_pub = &sec2_requests[0][sec2_requests[0].len() - 384..];
    let b_pub = server.public_ephemeral(&b);
    let mut u_input = vec![0u8; 768];
    u_input[..384].copy_from_slice(a_pub);
    u_input[768 - b_pub.len()..].copy_from_slice(&b_pub);
    // u is a 512-bit hash: keep it at that precision, or plain pow would walk 3072 exponent bits.
    let u = crypto_bigint::BoxedUint::from_be_slice(&<sha2::Sha512 as sha2::Digest>::digest(&u_input), 512)
        .expect("64 bytes");
    let (a_int, v_int) = (group_int(a_pub), group_int(&verifier_bytes));

    let mut group = c.benchmark_group("device");
    group.bench_function("raw g^b", |bench| bench.iter(|| raw_g_pow(black_box(&b))));
    group.bench_function("raw (A*v^u)^b", |bench| {
        bench.iter(|| raw_a_vu_b(black_box(&a_int), black_box(&v_int), black_box(&u), black_box(&b)))
    });
    group.bench_function("sec2 handshake", |bench| {
        bench.iter_batched(
            || ScriptedRandom::new([&sec2_random]),
            |rng| device_handshake(&sec2, &sec2_requests, rng),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("sec1 handshake", |bench| {
        bench.iter_batched(
            || ScriptedRandom::new([&sec1_random]),
            |rng| device_handshake(&sec1, &sec1_requests, rng),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
