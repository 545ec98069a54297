//! AES-256-GCM sealing with AAD (NIST SP 800-38D), via `ring`.
//!
//! Sealed layout: `nonce (12 bytes) ‖ ciphertext (len(plaintext) bytes) ‖ tag (16 bytes)`.
//! The nonce is fresh from the OS CSPRNG for every seal.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Bytes a seal adds to its plaintext: a 12-byte nonce and a 16-byte tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of the nonce in bytes (96 bits, NIST SP 800-38D section 8.2.2): the bytes a caller
/// of [`SealingKey::seal_in_place`] leaves in front of the plaintext.
pub const NONCE_BYTES: usize = NONCE_LEN;
/// Length of the GCM authentication tag in bytes.
pub const TAG_LEN: usize = 16;

/// An AES-256-GCM key that seals and opens values bound to an AAD.
///
/// `ring` keeps the expanded key schedule internally and does not zeroize it; the raw key bytes
/// this was made from are zeroized by the caller's `Zeroizing` buffer.
pub struct SealingKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([REDACTED])")
    }
}

impl SealingKey {
    /// Makes a key from 32 raw bytes.
    pub fn new(raw: &Zeroizing<[u8; 32]>) -> Self {
        // Invariant: AES_256_GCM takes exactly 32 key bytes, which the type guarantees.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, raw.as_ref()).expect("32-byte AES-256 key");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Seals `plaintext` bound to `aad` under a fresh random nonce.
    ///
    /// Returns `nonce ‖ ciphertext ‖ tag` (`plaintext.len() + 28` bytes).
    ///
    /// # Errors
    /// [`CryptoError::Random`] if no nonce could be drawn.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        out.extend_from_slice(plaintext);
        self.seal_in_place(aad, &mut out)?;
        Ok(out)
    }

    /// Seals in place: `buf` holds [`NONCE_BYTES`] bytes of any value, then the plaintext; on
    /// success it holds `nonce ‖ ciphertext ‖ tag`, the layout of [`SealingKey::seal`], under a
    /// fresh random nonce. For callers that encode a record straight after the nonce's room,
    /// so that encoding and sealing share one buffer (reserving [`TAG_LEN`] more bytes of
    /// capacity first saves a reallocation for the tag).
    ///
    /// # Errors
    /// [`CryptoError::Truncated`] if `buf` is shorter than [`NONCE_BYTES`];
    /// [`CryptoError::Random`] if no nonce could be drawn (`buf` is then unchanged);
    /// [`CryptoError::AuthenticationFailed`] if `ring` refuses to seal (a plaintext over
    /// AES-GCM's limit of about 64 GiB, NIST SP 800-38D section 5.2.1.1), after which `buf`
    /// holds no usable value.
    pub fn seal_in_place(&self, aad: &[u8], buf: &mut Vec<u8>) -> Result<(), CryptoError> {
        if buf.len() < NONCE_LEN {
            return Err(CryptoError::Truncated(buf.len()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        crate::random_bytes(&mut nonce)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[NONCE_LEN..],
            )
            .map_err(|_| CryptoError::AuthenticationFailed)?;
        buf[..NONCE_LEN].copy_from_slice(&nonce);
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens in place a value produced by [`SealingKey::seal`] with the same `aad`: decrypts
    /// `sealed` where it lies and returns the plaintext, a part of it (no copy, no
    /// allocation: for callers that own the bytes they read).
    ///
    /// # Errors
    /// As [`SealingKey::open`]. After [`CryptoError::AuthenticationFailed`] the contents of
    /// `sealed` are unspecified (`ring` may have decrypted part of it): a caller that wants to
    /// try another key must keep a copy.
    pub fn open_in_place<'a>(
        &self,
        aad: &[u8],
        sealed: &'a mut [u8],
    ) -> Result<&'a [u8], CryptoError> {
        let nonce = nonce_of(sealed)?;
        Ok(self.open_body(aad, nonce, &mut sealed[NONCE_LEN..])?)
    }

    /// Decrypts `body` (`ciphertext ‖ tag`) in place under `nonce` and `aad`; returns the
    /// plaintext, the front of `body`. The one place both opens reach `ring`.
    fn open_body<'a>(
        &self,
        aad: &[u8],
        nonce: [u8; NONCE_LEN],
        body: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        self.key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            .map_err(|_| CryptoError::AuthenticationFailed)
    }

    /// Opens a value produced by [`SealingKey::seal`] with the same `aad`.
    ///
    /// # Errors
    /// [`CryptoError::Truncated`] if `sealed` is shorter than 28 bytes;
    /// [`CryptoError::AuthenticationFailed`] if the tag does not verify (wrong key, modified
    /// bytes, or a different AAD: the value was moved).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = nonce_of(sealed)?;
        let mut buf = sealed[NONCE_LEN..].to_vec();
        let plain_len = self.open_body(aad, nonce, &mut buf)?.len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

/// The nonce that starts a sealed value (`nonce ‖ ciphertext ‖ tag`).
///
/// # Errors
/// [`CryptoError::Truncated`] if the value is shorter than [`SEAL_OVERHEAD`].
fn nonce_of(sealed: &[u8]) -> Result<[u8; NONCE_LEN], CryptoError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(CryptoError::Truncated(sealed.len()));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[..NONCE_LEN]);
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> SealingKey {
        SealingKey::new(&Zeroizing::new([b; 32]))
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(pt in proptest::collection::vec(any::<u8>(), 0..512),
                                aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let k = key(7);
            let sealed = k.seal(&aad, &pt).unwrap();
            prop_assert_eq!(sealed.len(), pt.len() + SEAL_OVERHEAD);
            prop_assert_eq!(k.open(&aad, &sealed).unwrap(), pt);
        }

        #[test]
        fn seal_in_place_opens_like_seal(pt in proptest::collection::vec(any::<u8>(), 0..512),
                                         room in any::<[u8; NONCE_BYTES]>()) {
            let k = key(7);
            let mut buf = room.to_vec();
            buf.extend_from_slice(&pt);
            k.seal_in_place(b"aad", &mut buf).unwrap();
            prop_assert_eq!(buf.len(), pt.len() + SEAL_OVERHEAD);
            prop_assert_eq!(k.open(b"aad", &buf).unwrap(), pt);
            prop_assert_eq!(k.open(b"other", &buf), Err(CryptoError::AuthenticationFailed));
        }

        #[test]
        fn open_in_place_opens_like_open(pt in proptest::collection::vec(any::<u8>(), 0..512),
                                         flip in any::<prop::sample::Index>()) {
            let k = key(7);
            let sealed = k.seal(b"aad", &pt).unwrap();
            let mut buf = sealed.clone();
            prop_assert_eq!(k.open_in_place(b"aad", &mut buf).unwrap(), &pt[..]);
            let mut other = sealed.clone();
            prop_assert_eq!(
                k.open_in_place(b"other", &mut other),
                Err(CryptoError::AuthenticationFailed)
            );
            let mut damaged = sealed;
            let i = flip.index(damaged.len());
            damaged[i] ^= 1;
            prop_assert_eq!(
                k.open_in_place(b"aad", &mut damaged),
                Err(CryptoError::AuthenticationFailed)
            );
            let mut short = vec![0u8; SEAL_OVERHEAD - 1];
            prop_assert_eq!(
                k.open_in_place(b"aad", &mut short),
                Err(CryptoError::Truncated(SEAL_OVERHEAD - 1))
            );
        }

        #[test]
        fn any_flipped_bit_is_rejected(pt in proptest::collection::vec(any::<u8>(), 0..64),
                                       pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let k = key(7);
            let mut sealed = k.seal(b"aad", &pt).unwrap();
            let i = pos.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert_eq!(k.open(b"aad", &sealed), Err(CryptoError::AuthenticationFailed));
        }
    }

    #[test]
    fn seal_in_place_needs_room_for_the_nonce() {
        let mut buf = vec![1u8; NONCE_BYTES - 1];
        assert_eq!(
            key(7).seal_in_place(b"aad", &mut buf),
            Err(CryptoError::Truncated(NONCE_BYTES - 1))
        );
        assert_eq!(buf, vec![1u8; NONCE_BYTES - 1]);
    }

    #[test]
    fn other_aad_or_key_is_rejected() {
        let sealed = key(1).seal(b"table/key-1", b"secret").unwrap();
        assert_eq!(
            key(1).open(b"table/key-2", &sealed),
            Err(CryptoError::AuthenticationFailed)
        );
        assert_eq!(
            key(2).open(b"table/key-1", &sealed),
            Err(CryptoError::AuthenticationFailed)
        );
        assert_eq!(key(1).open(b"", &[0; 27]), Err(CryptoError::Truncated(27)));
    }

    #[test]
    fn nonces_are_fresh() {
        let k = key(3);
        let a = k.seal(b"", b"same").unwrap();
        let b = k.seal(b"", b"same").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", key(9)), "SealingKey([REDACTED])");
    }
}
