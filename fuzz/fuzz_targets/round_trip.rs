//! Arbitrary payloads written then read back, then mutated: the payload comes back
//! intact, and no mutation of the wire value is accepted (except where the format
//! cannot tell, see `ferrosession_fuzz::check_round_trip`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrosession_fuzz::check_round_trip(data));
