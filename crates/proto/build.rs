//! Compiles `proto/*.proto` with protox (a pure-Rust protobuf compiler), so a fresh machine needs nothing but
//! cargo: no system `protoc`.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "constants.proto",
    "sec0.proto",
    "sec1.proto",
    "sec2.proto",
    "session.proto",
    "wifi_constants.proto",
    "wifi_config.proto",
    "wifi_scan.proto",
    "wifi_ctrl.proto",
    "networks.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto");
    for f in FILES {
        println!("cargo:rerun-if-changed={}", dir.join(f).display());
    }
    let descriptors = protox::compile(FILES, [&dir])?;
    prost_build::Config::new()
        // The ESP schemas have no `package`, which prost would otherwise write to `_.rs`.
        .default_package_filename("esp_proto")
        .compile_fds(descriptors)?;
    Ok(())
}
