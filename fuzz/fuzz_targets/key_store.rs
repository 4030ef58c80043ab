#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringkeeper_fuzz::key_store(data));
