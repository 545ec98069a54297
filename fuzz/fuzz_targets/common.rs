//! Shared by the fuzz targets: a valid key header with cheap KDF parameters, so a target can
//! unlock a store or a backup in microseconds.

use tresor_crypto::{DataKey, KdfParams, KeyHeader, Passphrase, SealingKey};

/// A valid version-1 key header with Argon2id m = 8 KiB, t = 1, p = 1 and a fixed salt, for
/// `passphrase`, and the data key it wraps. `KeyHeader::create` refuses such parameters for
/// new stores; opening accepts them (docs/FORMAT.md 1.3).
pub fn cheap_header(passphrase: &str, salt: [u8; 16]) -> (Vec<u8>, DataKey) {
    let kdf = KdfParams::Argon2id { memory_kib: 8, iterations: 1, parallelism: 1 };
    let mut prefix = vec![1u8, 1];
    for v in [8u32, 1, 1] {
        prefix.extend_from_slice(&v.to_le_bytes());
    }
    prefix.extend_from_slice(&salt);
    let kek = SealingKey::new(&kdf.derive_kek(&Passphrase::from(passphrase).into(), &salt).expect("kdf"));
    let dek = DataKey::generate().expect("rng");
    let mut aad = b"tresor/v1/dek".to_vec();
    aad.extend_from_slice(&prefix);
    let mut header = prefix;
    header.extend_from_slice(&kek.seal(&aad, dek.expose()).expect("seal"));
    KeyHeader::decode(&header).expect("a valid header");
    (header, dek)
}
