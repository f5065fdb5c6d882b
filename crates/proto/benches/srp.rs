//! SRP (security 2) cost: the precomputed device path against plain crypto-bigint `pow`, plus the
//! client path and the one-off table builds.
//!
//! Inputs are ESP's golden sec2 values, so the measured exponents have realistic bit patterns.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wifiprov_proto::security::srp::bench_support::{
    build_g_table, fast_g_pow, fast_v_pow_u, group_int, raw_a_vu_b, raw_g_pow, server_table_bytes,
};
use wifiprov_proto::security::srp::{SrpServer, client_public_ephemeral, client_session_key, client_x, precompute};

const USERNAME: &[u8] = b"wifiprov";
const PASSWORD: &[u8] = b"abcd1234";
const SALT: [u8; 16] = hex_array("036ee0c7bcb9eda84c9eac97d93decf4");
const A_SECRET: [u8; 32] = hex_array("800102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
const B_SECRET: [u8; 32] = hex_array("2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40");
const U: [u8; 64] = hex_array(concat!(
    "c4d6abf89ed0258dd909fd903346e7e6a37994d5a3ec11e6049d60ce2086cd22",
    "03577958c284c1b7a9e5de0ba4ee57a6bdcd77e6e79ce01d3f3e77861599e054"
));

#[allow(clippy::indexing_slicing, reason = "const evaluation: a bad index is a compile error")]
const fn hex_array<const L: usize>(hex: &str) -> [u8; L] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("lowercase hex only"),
        }
    }
    let hex = hex.as_bytes();
    assert!(hex.len() == 2 * L);
    let mut out = [0u8; L];
    let mut i = 0;
    while i < L {
        out[i] = (nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]);
        i += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    precompute();
    let verifier = wifiprov_proto::security::srp::compute_verifier(USERNAME, PASSWORD, &SALT);
    let server = SrpServer::new(&SALT, &verifier).expect("valid verifier");
    let a_pub = client_public_ephemeral(&A_SECRET);
    let b_pub = server.public_ephemeral(&B_SECRET);

    let a_int = group_int(&a_pub);
    let v_int = group_int(&verifier);
    let u_int = crypto_bigint::BoxedUint::from_be_slice(&U, 512).expect("64 bytes");

    eprintln!("g table: {} bytes; verifier table: {} bytes", build_g_table(), server_table_bytes(&server));

    let mut group = c.benchmark_group("srp");
    group.sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));

    group.bench_function("raw_g_pow_b", |bch| bch.iter(|| raw_g_pow(black_box(&B_SECRET))));
    group.bench_function("raw_a_vu_b", |bch| {
        bch.iter(|| raw_a_vu_b(black_box(&a_int), &v_int, &u_int, black_box(&B_SECRET)))
    });
    group.bench_function("raw_device_total", |bch| {
        bch.iter(|| {
            let g_b = raw_g_pow(black_box(&B_SECRET));
            let s = raw_a_vu_b(black_box(&a_int), &v_int, &u_int, black_box(&B_SECRET));
            (g_b, s)
        })
    });
    group.bench_function("fast_g_pow_b", |bch| bch.iter(|| fast_g_pow(black_box(&B_SECRET))));
    group.bench_function("fast_v_pow_u", |bch| bch.iter(|| fast_v_pow_u(&server, black_box(&U))));
    group.bench_function("device_full", |bch| {
        bch.iter(|| {
            let b_pub = server.public_ephemeral(black_box(&B_SECRET));
            server.session_key(black_box(&a_pub), &b_pub, &B_SECRET).expect("valid A")
        })
    });
    group.bench_function("client_full", |bch| {
        bch.iter(|| {
            let a_pub = client_public_ephemeral(black_box(&A_SECRET));
            let x = client_x(USERNAME, PASSWORD, &SALT);
            client_session_key(&A_SECRET, &a_pub, black_box(&b_pub), &x).expect("valid B")
        })
    });
    group.bench_function("setup_g_table", |bch| bch.iter(build_g_table));
    group.bench_function("setup_server_new", |bch| {
        bch.iter(|| SrpServer::new(&SALT, black_box(&verifier)).expect("valid verifier"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
