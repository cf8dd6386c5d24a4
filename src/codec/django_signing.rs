//! Django's `django.core.signing` format: the cookie of
//! `django.contrib.sessions.backends.signed_cookies`, so a site can switch between
//! Django's engine and ferrosession's and keep its users' sessions.
//!
//! Wire format (`TimestampSigner.sign_object`, separator `:`, algorithm SHA-256):
//! `payload + ":" + b62(ts) + ":" + b64url(HMAC-SHA256(key, payload + ":" + b62(ts)))`
//! where
//! - `payload` is `b64url(json)`, or `"." + b64url(zlib(json))` when the zlib stream is
//!   at least 2 bytes shorter than the JSON (`compress=True`, as the session engine signs);
//! - `b62` is Django's base62 of the Unix time in whole seconds (`0-9A-Za-z`);
//! - `key = SHA-256(salt + "signer" + secret)` (`salted_hmac` with key salt
//!   `salt + "signer"`), one per secret: `SECRET_KEY` signs, it and every
//!   `SECRET_KEY_FALLBACKS` entry verify;
//! - `b64url` is URL-safe base64 without `=` padding.
//!
//! Reading verifies in constant time (`Mac::verify_slice`) against every key, so the
//! time taken does not tell which one matched. Django compares the signature's text;
//! here it is decoded strictly (no padding, no stray trailing bits), so exactly the
//! texts Django accepts are accepted. The age is checked as ferrosession does
//! elsewhere: older than `max_age` is expired, and so is a time more than
//! [`CLOCK_SKEW`] in the future (Django accepts any future time; only a key holder can
//! make one, but it would outlive `SESSION_COOKIE_AGE`). Any deflate stream is valid on
//! the wire (the signature covers the bytes sent), so ours (miniz_oxide) need not equal
//! CPython's `zlib.compress` byte for byte. Anything that does not verify or decode is
//! `None`: an empty session.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

use crate::codec::mac::{first_matching_key, CLOCK_SKEW};
use crate::error::{CoreError, Result};

type HmacSha256 = Hmac<Sha256>;

/// The salt of Django's signed-cookie session engine.
pub const SESSION_SALT: &str = "django.contrib.sessions.backends.signed_cookies";

/// The largest JSON text a compressed payload may inflate to: a sanity bound applied
/// only after the signature verified, far above what a 4 KB cookie carries.
pub const MAX_INFLATED: usize = 16 << 20;

/// Bytes of an HMAC-SHA256 signature, and the characters of its unpadded base64.
const SIG_LEN: usize = 32;
const SIG_TEXT_LEN: usize = 43;

// Payload base64: Python's `urlsafe_b64decode` after Django pads, lenient about
// padding and trailing bits (what it decodes was signed by a key holder).
use crate::codec::encoding::B64URL_LENIENT as B64URL;

/// Signature base64: canonical only, so the bytes decoded stand for one text.
const B64URL_STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Django's `b62_encode` of a non-negative integer.
pub fn b62_encode(mut n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    let mut digits = Vec::with_capacity(11);
    while n > 0 {
        digits.push(BASE62[(n % 62) as usize]);
        n /= 62;
    }
    digits.reverse();
    String::from_utf8(digits).expect("base62 digits are ASCII")
}

/// Django's `b62_decode` for the times a signer writes: `None` for an empty text, a
/// sign, a character outside the alphabet, or a value above `u64`.
pub fn b62_decode(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in text {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        n = n.checked_mul(62)?.checked_add(u64::from(digit))?;
    }
    Some(n)
}

/// A verified value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The JSON text that was signed.
    pub json: Vec<u8>,
    /// The signed time (Unix seconds).
    pub timestamp: u64,
    /// Which secret verified it (0 = `SECRET_KEY`, the one that signs).
    pub key_index: usize,
}

/// Django's `TimestampSigner` over HMAC-SHA256 with several secrets, for one salt.
#[derive(Clone)]
pub struct DjangoSigner {
    macs: Vec<HmacSha256>,
}

impl std::fmt::Debug for DjangoSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys.
        f.debug_struct("DjangoSigner")
            .field("keys", &self.macs.len())
            .finish()
    }
}

impl DjangoSigner {
    /// One key per secret (`secrets[0]` signs), derived once here where Django derives
    /// it on every call. Django takes any non-empty `SECRET_KEY`; so does this.
    pub fn new(secrets: &[Vec<u8>], salt: &[u8]) -> Result<Self> {
        if secrets.is_empty() {
            return Err(CoreError::Config(
                "Django signing needs SECRET_KEY; set it in the settings".into(),
            ));
        }
        let macs = secrets
            .iter()
            .map(|secret| {
                let key = Sha256::new()
                    .chain_update(salt)
                    .chain_update(b"signer")
                    .chain_update(secret)
                    .finalize();
                <HmacSha256 as KeyInit>::new_from_slice(&key).expect("HMAC takes any key")
            })
            .collect();
        Ok(Self { macs })
    }

    /// How many secrets verify.
    pub fn key_count(&self) -> usize {
        self.macs.len()
    }

    /// `signing.dumps` of a value whose JSON text is `json`. With `compress`, JSON of
    /// at least `compress_min` bytes is tried with zlib (0 = always, as Django does):
    /// both spellings are valid, and deflating a small payload costs more than it saves.
    pub fn dumps(&self, json: &[u8], compress: bool, compress_min: usize, now: u64) -> String {
        let mut out = String::with_capacity(json.len() * 4 / 3 + 64);
        let mut plain = true;
        if compress && json.len() >= compress_min {
            let compressed = miniz_oxide::deflate::compress_to_vec_zlib(json, 6);
            if compressed.len() + 1 < json.len() {
                out.push('.');
                B64URL.encode_string(&compressed, &mut out);
                plain = false;
            }
        }
        if plain {
            B64URL.encode_string(json, &mut out);
        }
        out.push(':');
        out.push_str(&b62_encode(now));
        let mut mac = self.macs[0].clone();
        mac.update(out.as_bytes());
        out.push(':');
        B64URL.encode_string(mac.finalize().into_bytes(), &mut out);
        out
    }

    /// `signing.loads` with `max_age` seconds (`None`: no age limit), or `None` when
    /// the value does not verify, is expired or does not decode.
    pub fn loads(&self, signed: &[u8], max_age: Option<u64>, now: u64) -> Option<Loaded> {
        let (value, sig_text) = rsplit_colon(signed)?;
        if sig_text.len() != SIG_TEXT_LEN {
            return None;
        }
        let mut sig = [0u8; SIG_LEN + 2];
        if B64URL_STRICT.decode_slice(sig_text, &mut sig).ok()? != SIG_LEN {
            return None;
        }
        let key_index = self.find_key(value, &sig[..SIG_LEN])?;
        let (payload, ts_text) = rsplit_colon(value)?;
        let timestamp = b62_decode(ts_text)?;
        if timestamp > now.saturating_add(CLOCK_SKEW) {
            return None;
        }
        if let Some(max_age) = max_age {
            if now.saturating_sub(timestamp) > max_age {
                return None;
            }
        }
        let json = match payload.strip_prefix(b".") {
            Some(compressed) => {
                let raw = B64URL.decode(compressed).ok()?;
                miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&raw, MAX_INFLATED).ok()?
            }
            None => B64URL.decode(payload).ok()?,
        };
        Some(Loaded {
            json,
            timestamp,
            key_index,
        })
    }

    fn find_key(&self, value: &[u8], sig: &[u8]) -> Option<usize> {
        first_matching_key(&self.macs, value, sig)
    }
}

fn rsplit_colon(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = text.iter().rposition(|&b| b == b':')?;
    Some((&text[..at], &text[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn signer(secrets: &[&str]) -> DjangoSigner {
        let secrets: Vec<Vec<u8>> = secrets.iter().map(|s| s.as_bytes().to_vec()).collect();
        DjangoSigner::new(&secrets, SESSION_SALT.as_bytes()).unwrap()
    }

    /// Made by Django 5.2: `signing.dumps({"a": 1}, salt=SESSION_SALT, compress=True)`
    /// under `SECRET_KEY = "django-insecure-test-key"` at `NOW` (mocked `time.time`).
    const DJANGO_SMALL: &str = "eyJhIjoxfQ:1r31eq:dB4ljXwPdEzcLMWDObC-LO-jwm5paHiPnfeDmdY26Uk";

    #[test]
    fn base62_matches_django() {
        assert_eq!(b62_encode(0), "0");
        assert_eq!(b62_encode(61), "z");
        assert_eq!(b62_encode(62), "10");
        assert_eq!(b62_encode(NOW), "1r31eq");
        assert_eq!(b62_decode(b"1r31eq"), Some(NOW));
        assert_eq!(b62_decode(b""), None);
        assert_eq!(b62_decode(b"-1"), None);
        assert_eq!(b62_decode(b"zzzzzzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn reads_and_writes_djangos_cookie() {
        let s = signer(&["django-insecure-test-key"]);
        assert_eq!(s.dumps(br#"{"a":1}"#, true, 0, NOW), DJANGO_SMALL);
        let loaded = s.loads(DJANGO_SMALL.as_bytes(), Some(60), NOW).unwrap();
        assert_eq!(loaded.json, br#"{"a":1}"#);
        assert_eq!(loaded.timestamp, NOW);
        assert_eq!(loaded.key_index, 0);
    }

    #[test]
    fn compresses_when_it_saves_two_bytes() {
        let s = signer(&["k"]);
        let json = format!(r#"{{"x":"{}"}}"#, "a".repeat(500));
        let signed = s.dumps(json.as_bytes(), true, 0, NOW);
        assert!(signed.starts_with('.'));
        assert!(signed.len() < 200);
        assert_eq!(
            s.loads(signed.as_bytes(), None, NOW).unwrap().json,
            json.as_bytes()
        );
        assert!(!s.dumps(json.as_bytes(), false, 0, NOW).starts_with('.'));
        assert!(!s.dumps(json.as_bytes(), true, 1024, NOW).starts_with('.'));
        assert!(s.dumps(json.as_bytes(), true, 256, NOW).starts_with('.'));
    }

    #[test]
    fn fallback_keys_verify_and_report_their_index() {
        let old = signer(&["old"]);
        let both = signer(&["new", "old"]);
        let signed = old.dumps(b"{}", true, 0, NOW);
        assert_eq!(
            both.loads(signed.as_bytes(), None, NOW).unwrap().key_index,
            1
        );
        assert!(signer(&["new"])
            .loads(signed.as_bytes(), None, NOW)
            .is_none());
    }

    #[test]
    fn age_is_enforced_both_ways() {
        let s = signer(&["k"]);
        let signed = s.dumps(b"{}", true, 0, NOW);
        assert!(s.loads(signed.as_bytes(), Some(10), NOW + 10).is_some());
        assert!(s.loads(signed.as_bytes(), Some(10), NOW + 11).is_none());
        assert!(s.loads(signed.as_bytes(), None, NOW - CLOCK_SKEW).is_some());
        assert!(s
            .loads(signed.as_bytes(), None, NOW - CLOCK_SKEW - 1)
            .is_none());
    }

    #[test]
    fn tampered_truncated_and_foreign_values_are_rejected() {
        let s = signer(&["django-insecure-test-key"]);
        let good = DJANGO_SMALL.as_bytes();
        for cut in 0..good.len() {
            assert!(s.loads(&good[..cut], None, NOW).is_none(), "cut at {cut}");
        }
        for i in 0..good.len() {
            let mut bad = good.to_vec();
            bad[i] ^= 1;
            assert!(s.loads(&bad, None, NOW).is_none(), "flip at {i}");
        }
        // the same value under another salt (Django's default `django.core.signing`)
        let other = DjangoSigner::new(
            &[b"django-insecure-test-key".to_vec()],
            b"django.core.signing",
        )
        .unwrap();
        assert!(other.loads(good, None, NOW).is_none());
        assert!(s.loads(b"", None, NOW).is_none());
        assert!(s.loads(b"::", None, NOW).is_none());
    }

    #[test]
    fn a_signed_value_that_does_not_decode_is_rejected() {
        let s = signer(&["k"]);
        // a valid signature over a payload that is not base64 / not zlib
        for payload in ["!!!", ".eyJhIjoxfQ"] {
            let mut value = format!("{payload}:{}", b62_encode(NOW));
            let mut mac = s.macs[0].clone();
            mac.update(value.as_bytes());
            value.push(':');
            B64URL.encode_string(mac.finalize().into_bytes(), &mut value);
            assert!(s.loads(value.as_bytes(), None, NOW).is_none(), "{payload}");
        }
    }
}
