#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wifiprov_fuzz::session::run(wifiprov_fuzz::session::Scheme::Sec0, data));
