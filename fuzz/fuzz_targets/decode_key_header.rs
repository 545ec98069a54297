//! Decodes arbitrary bytes as a key header: must never panic; a decoded header re-encodes to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_crypto::KeyHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = KeyHeader::decode(data) {
        assert_eq!(h.encode(), data);
    }
});
