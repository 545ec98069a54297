//! Decodes arbitrary bytes as a stored record of every record type: must never panic, and
//! whatever decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_schema::{ConversationSummary, Message, PeerSummary, codec};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = codec::decode::<Message>(data) {
        let again = codec::encode(&m).expect("a decoded record re-encodes");
        assert_eq!(codec::decode::<Message>(&again).ok(), Some(m));
    }
    let _ = codec::decode::<ConversationSummary>(data);
    let _ = codec::decode::<PeerSummary>(data);
});
