#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wifiprov_fuzz::version::run(data));
