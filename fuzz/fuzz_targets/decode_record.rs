//! Decodes arbitrary bytes as a stored record of every record type: must never panic, and
//! whatever decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_schema::{ConversationSummary, Message, PeerSummary, codec, compact};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = codec::decode::<Message>(data) {
        let again = codec::encode(&m).expect("a decoded record re-encodes");
        assert_eq!(codec::decode::<Message>(&again).ok(), Some(m));
    }
    // Every format a message record may have (1, 2, 3). Format 3 has one encoding per
    // message: what decodes re-encodes to the very same bytes.
    if let Ok(m) = codec::decode_message(data) {
        if data.first() == Some(&compact::COMPACT_FORMAT) {
            let again = compact::encode_message(&m).expect("a decoded record re-encodes");
            assert_eq!(again, data, "format 3 is canonical");
        } else {
            assert_eq!(codec::decode::<Message>(data).ok(), Some(m));
        }
    }
    let _ = codec::decode::<ConversationSummary>(data);
    let _ = codec::decode::<PeerSummary>(data);
});
