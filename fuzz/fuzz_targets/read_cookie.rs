//! Arbitrary bytes as a `Cookie` header and as a header value, through every
//! transformer chain: never a panic, never a forged value accepted.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrosession_fuzz::check_read(data));
