//! Control socket request lines are untrusted bytes from any local root client:
//! decoding never panics, and whatever decodes survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_switch::control::protocol::{decode_request, Request};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(request) = decode_request(bytes) {
        let line = serde_json::to_string(&request).expect("a request serialises");
        let again: Request = serde_json::from_str(&line).expect("what we write, we read");
        assert_eq!(again, request);
    }
});
