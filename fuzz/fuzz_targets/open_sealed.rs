//! Opens arbitrary bytes as a sealed record under a fixed key and AAD: must never panic and,
//! without the key's tag, never authenticate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_crypto::SealingKey;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let key = SealingKey::new(&Zeroizing::new([7u8; 32]));
    let aad = b"tresor/v1/record\x08messages0123456789abcdef";
    if let Ok(plain) = key.open(aad, data) {
        // Only a genuine seal authenticates; the fuzzer cannot forge a GCM tag.
        panic!("forged a sealed value of {} bytes", plain.len());
    }
    let _ = tresor_schema::sealed::record_aad("messages", data);
});
