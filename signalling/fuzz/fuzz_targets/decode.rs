//! Any bytes a client could send: decoding must answer with a message or an
//! error, never panic, and a decoded message must survive a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = signalling::decode(text) {
        let again = serde_json::to_string(&message).expect("a decoded message encodes");
        let back = signalling::decode(&again).expect("an encoded message decodes");
        assert_eq!(back, message);
    }
});
