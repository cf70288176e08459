#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroswan_test::fuzzing::ikev2_responder(data));
