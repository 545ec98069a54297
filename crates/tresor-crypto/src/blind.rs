//! Blinded index tokens: keyed BLAKE3 of an identifier, so stored keys show no identifier.

use zeroize::Zeroizing;

/// Length of a token in bytes (128 bits: collisions are negligible below 2^64 identifiers).
pub const TOKEN_LEN: usize = 16;

/// A blinded identifier: the first [`TOKEN_LEN`] bytes of
/// `BLAKE3-keyed(index_key, len(domain) as u8 ‖ domain ‖ identifier)`.
pub type Token = [u8; TOKEN_LEN];

/// The key that blinds identifiers into [`Token`]s.
///
/// Tokens are deterministic (equal identifiers in the same domain give equal tokens, which is
/// what lets an index find them) and domain-separated (a conversation id and a peer id with the
/// same text give different tokens).
pub struct BlindKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for BlindKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindKey([REDACTED])")
    }
}

impl BlindKey {
    /// Makes a key from 32 raw bytes.
    pub fn new(raw: Zeroizing<[u8; 32]>) -> Self {
        Self { key: raw }
    }

    /// The token of `identifier` in `domain` (a short ASCII label such as `b"conv"`; at most 255
    /// bytes, longer labels are cut at 255).
    pub fn token(&self, domain: &[u8], identifier: &[u8]) -> Token {
        let domain = &domain[..domain.len().min(255)];
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        // Invariant: domain.len() <= 255 after the cut above.
        hasher.update(&[domain.len() as u8]);
        hasher.update(domain);
        hasher.update(identifier);
        let mut out = [0u8; TOKEN_LEN];
        hasher.finalize_xof().fill(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_deterministic_keyed_and_domain_separated() {
        let k1 = BlindKey::new(Zeroizing::new([1; 32]));
        let k2 = BlindKey::new(Zeroizing::new([2; 32]));
        assert_eq!(k1.token(b"conv", b"abc"), k1.token(b"conv", b"abc"));
        assert_ne!(k1.token(b"conv", b"abc"), k1.token(b"peer", b"abc"));
        assert_ne!(k1.token(b"conv", b"abc"), k2.token(b"conv", b"abc"));
        assert_ne!(k1.token(b"conv", b"abc"), k1.token(b"conv", b"abd"));
        // The length prefix keeps ("co", "nvabc") apart from ("conv", "abc").
        assert_ne!(k1.token(b"co", b"nvabc"), k1.token(b"conv", b"abc"));
    }
}
