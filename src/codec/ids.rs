//! Session ids: 32 bytes from the OS CSPRNG as 64 lowercase hex characters (Ktor's
//! `generateSessionId()` shape).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::error::{CoreError, Result};

/// Fills `buf` from the OS CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| CoreError::Random(e.to_string()))
}

/// A new session id: 64 lowercase hex characters (256 bits).
pub fn new_session_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The key a storage sees for a session id: unpadded base64url (43 characters) of
/// `SHA-256(name ‖ 0x00 ‖ id)`. A dump of the store yields no live id, and the session's
/// name is bound in, so an id issued for one registration finds nothing under another
/// that shares the storage (names are tokens: they hold no 0x00, so the split is unique).
pub fn storage_key(name: &str, id: &str) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0u8]);
    h.update(id.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keys_are_43_char_base64url_and_bound_to_the_name() {
        let k = storage_key("SID", "abc");
        assert_eq!(k.len(), 43);
        assert!(k
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(k, storage_key("OTHER", "abc"));
        // known answer, computed with Python: base64url(sha256(b"SID\0abc")) without padding
        assert_eq!(k, "ACOxKPVD7gdsOMWIc4vIghVRaRXl9iqshTykk71sb98");
    }

    #[test]
    fn ids_are_64_lowercase_hex_and_distinct() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(a, b);
    }
}
