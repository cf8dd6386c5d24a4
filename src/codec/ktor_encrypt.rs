//! `KtorEncrypt`: Ktor's `SessionTransportTransformerEncrypt`, for sharing cookies
//! with a Ktor service.
//!
//! Wire format (Ktor 3.x, with the 16-byte IV of Ktor ≥ 3.5.1 for every AES key size):
//!
//! ```text
//! lowercase_hex(iv) + "/" + lowercase_hex(ct) + ":" + lowercase_hex(HMAC-SHA256(sign_key, ct))
//!
//! iv   16 bytes from the OS CSPRNG
//! ct   AES-CBC-PKCS#7(encryption_key, iv, utf8(value)); AES-128/192/256 by key length
//! ```
//!
//! With `backward_compatible_read`, the pre-3.0 form whose MAC is
//! `HMAC-SHA256(sign_key, plaintext)` is also read (and marked for re-issue in the
//! 3.0 form). Only then is a value decrypted before its MAC has verified, as Ktor does.
//!
//! Reading splits at the last `/` (the IV before it) and, after it, at the last `:`
//! (the MAC after it), like Ktor. Every hex part must be lowercase hex of the right
//! length: Ktor only writes lowercase, and its own MAC check (a string comparison)
//! already rejects an uppercase MAC; accepting uppercase IV/ciphertext hex would only
//! add spellings. The MAC is compared in constant time.
//!
//! Caveat (Ktor's format, kept for interop): the MAC does not cover the IV, so whoever
//! knows the first 16 plaintext bytes can change them by editing the IV. Use `Encrypt`
//! unless a Ktor service must read the same cookies.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::ids::random_bytes;
use super::mac::decode_lower_hex;
use super::{Context, Opened, Transformer};
use crate::error::{CoreError, Result};

/// IV length: the AES block size, whatever the key size.
pub const IV_LEN: usize = 16;
/// HMAC-SHA256 output length.
const MAC_LEN: usize = 32;
const BLOCK_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// The AES key schedule, by key size.
#[derive(Clone)]
enum AesKey {
    A128(Aes128),
    A192(Aes192),
    A256(Aes256),
}

impl AesKey {
    fn new(key: &[u8]) -> Result<Self> {
        let bad = |_| CoreError::Config("invalid AES key".into());
        Ok(match key.len() {
            16 => Self::A128(Aes128::new_from_slice(key).map_err(bad)?),
            24 => Self::A192(Aes192::new_from_slice(key).map_err(bad)?),
            32 => Self::A256(Aes256::new_from_slice(key).map_err(bad)?),
            n => {
                return Err(CoreError::Config(format!(
                    "a KtorEncrypt encryption_key is {n} bytes; AES takes 16, 24 or 32 bytes \
                     (AES-128/192/256, the keys Ktor's SessionTransportTransformerEncrypt takes). \
                     Use the same bytes as the Ktor service, e.g. bytes.fromhex(\"...\")"
                )))
            }
        })
    }

    fn bits(&self) -> u32 {
        match self {
            Self::A128(_) => 128,
            Self::A192(_) => 192,
            Self::A256(_) => 256,
        }
    }

    fn encrypt(&self, iv: &[u8; IV_LEN], plain: &[u8]) -> Vec<u8> {
        let iv = iv.into();
        match self {
            Self::A128(c) => {
                cbc::Encryptor::inner_iv_init(c.clone(), iv).encrypt_padded_vec::<Pkcs7>(plain)
            }
            Self::A192(c) => {
                cbc::Encryptor::inner_iv_init(c.clone(), iv).encrypt_padded_vec::<Pkcs7>(plain)
            }
            Self::A256(c) => {
                cbc::Encryptor::inner_iv_init(c.clone(), iv).encrypt_padded_vec::<Pkcs7>(plain)
            }
        }
    }

    fn decrypt(&self, iv: &[u8; IV_LEN], ct: &[u8]) -> Option<Vec<u8>> {
        let iv = iv.into();
        match self {
            Self::A128(c) => {
                cbc::Decryptor::inner_iv_init(c.clone(), iv).decrypt_padded_vec::<Pkcs7>(ct)
            }
            Self::A192(c) => {
                cbc::Decryptor::inner_iv_init(c.clone(), iv).decrypt_padded_vec::<Pkcs7>(ct)
            }
            Self::A256(c) => {
                cbc::Decryptor::inner_iv_init(c.clone(), iv).decrypt_padded_vec::<Pkcs7>(ct)
            }
        }
        .ok()
    }
}

/// Fills an IV. The OS CSPRNG, except in tests that reproduce Ktor's fixed-IV vectors.
type IvSource = fn(&mut [u8; IV_LEN]) -> Result<()>;

fn os_iv(iv: &mut [u8; IV_LEN]) -> Result<()> {
    random_bytes(iv)
}

/// Why a `KtorEncrypt` value was rejected. `read` collapses all of these to `None`
/// (one opaque outcome for clients); `KtorEncrypt::open` gives them to debugging tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtorRejection {
    /// Not of the form `iv/ciphertext:mac`.
    Malformed,
    /// The IV is not 32 lowercase hex digits.
    BadIv,
    /// The ciphertext is not lowercase hex of one or more AES blocks.
    BadCiphertext,
    /// The MAC is not 64 lowercase hex digits.
    BadMacEncoding,
    /// The MAC does not verify: another sign key, or the ciphertext was changed.
    BadMac,
    /// The MAC verifies but the ciphertext does not decrypt to valid padding: the value
    /// was encrypted under another encryption key.
    BadPadding,
    /// The decrypted value is not UTF-8.
    NotUtf8,
}

impl KtorRejection {
    /// A stable snake_case name for tools and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadIv => "bad_iv",
            Self::BadCiphertext => "bad_ciphertext",
            Self::BadMacEncoding => "bad_mac_encoding",
            Self::BadMac => "bad_mac",
            Self::BadPadding => "bad_padding",
            Self::NotUtf8 => "not_utf8",
        }
    }
}

impl std::fmt::Display for KtorRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "not a KtorEncrypt value (hex(iv)/hex(ciphertext):hex(mac))",
            Self::BadIv => "the IV is not 32 lowercase hex digits",
            Self::BadCiphertext => {
                "the ciphertext is not lowercase hex of a whole number of AES blocks"
            }
            Self::BadMacEncoding => "the MAC is not 64 lowercase hex digits",
            Self::BadMac => {
                "the MAC does not verify: another sign key, or the value was tampered with"
            }
            Self::BadPadding => {
                "the MAC verifies but the value does not decrypt: another encryption key"
            }
            Self::NotUtf8 => "the decrypted value is not UTF-8",
        })
    }
}

/// The `KtorEncrypt` transformer.
#[derive(Clone)]
pub struct KtorEncrypt {
    cipher: AesKey,
    sign: HmacSha256,
    backward_compatible_read: bool,
    iv_source: IvSource,
}

impl std::fmt::Debug for KtorEncrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys.
        f.debug_struct("KtorEncrypt")
            .field("aes_bits", &self.cipher.bits())
            .field("backward_compatible_read", &self.backward_compatible_read)
            .finish_non_exhaustive()
    }
}

impl KtorEncrypt {
    /// AES key of 16, 24 or 32 bytes; a non-empty HMAC-SHA256 key of any length.
    pub fn new(
        encryption_key: &[u8],
        sign_key: &[u8],
        backward_compatible_read: bool,
    ) -> Result<Self> {
        let cipher = AesKey::new(encryption_key)?;
        if sign_key.is_empty() {
            return Err(CoreError::Config(
                "KtorEncrypt needs a non-empty sign_key (the HMAC-SHA256 key of the Ktor \
                 service; any length)"
                    .into(),
            ));
        }
        let sign = <HmacSha256 as KeyInit>::new_from_slice(sign_key)
            .map_err(|_| CoreError::Config("invalid HMAC key".into()))?;
        Ok(Self {
            cipher,
            sign,
            backward_compatible_read,
            iv_source: os_iv,
        })
    }

    /// Like `new` with a fixed IV source, to reproduce Ktor's test vectors.
    #[cfg(test)]
    fn with_iv_source(
        encryption_key: &[u8],
        sign_key: &[u8],
        backward_compatible_read: bool,
        iv_source: IvSource,
    ) -> Result<Self> {
        Ok(Self {
            iv_source,
            ..Self::new(encryption_key, sign_key, backward_compatible_read)?
        })
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        let mut m = self.sign.clone();
        m.update(data);
        m
    }

    /// Opens `value`, saying why it is rejected. `read` is `open(..).ok()`.
    pub fn open(&self, value: &str) -> std::result::Result<Opened, KtorRejection> {
        let (iv_hex, rest) = value.rsplit_once('/').ok_or(KtorRejection::Malformed)?;
        let (ct_hex, mac_hex) = rest.rsplit_once(':').ok_or(KtorRejection::Malformed)?;
        let iv: [u8; IV_LEN] = decode_lower_hex(iv_hex, IV_LEN)
            .and_then(|iv| iv.try_into().ok())
            .ok_or(KtorRejection::BadIv)?;
        if ct_hex.is_empty() || ct_hex.len() % (2 * BLOCK_LEN) != 0 {
            return Err(KtorRejection::BadCiphertext);
        }
        let ct = decode_lower_hex(ct_hex, ct_hex.len() / 2).ok_or(KtorRejection::BadCiphertext)?;
        let tag = decode_lower_hex(mac_hex, MAC_LEN).ok_or(KtorRejection::BadMacEncoding)?;

        if self.mac(&ct).verify_slice(&tag).is_ok() {
            let plain = self
                .cipher
                .decrypt(&iv, &ct)
                .ok_or(KtorRejection::BadPadding)?;
            return Ok(Opened {
                value: String::from_utf8(plain).map_err(|_| KtorRejection::NotUtf8)?,
                reissue: false,
            });
        }
        if !self.backward_compatible_read {
            return Err(KtorRejection::BadMac);
        }
        // Pre-3.0 "encrypt-and-MAC": the MAC covers the plaintext, so decrypt first.
        let plain = self.cipher.decrypt(&iv, &ct).ok_or(KtorRejection::BadMac)?;
        self.mac(&plain)
            .verify_slice(&tag)
            .map_err(|_| KtorRejection::BadMac)?;
        Ok(Opened {
            value: String::from_utf8(plain).map_err(|_| KtorRejection::NotUtf8)?,
            // Upgrade the cookie to the 3.0 format on this response.
            reissue: true,
        })
    }
}

impl Transformer for KtorEncrypt {
    fn write(&self, value: &str, _ctx: &Context<'_>) -> Result<String> {
        let mut iv = [0u8; IV_LEN];
        (self.iv_source)(&mut iv)?;
        let ct = self.cipher.encrypt(&iv, value.as_bytes());
        let tag = self.mac(&ct).finalize().into_bytes();
        let mut out = String::with_capacity(2 * (IV_LEN + ct.len() + MAC_LEN) + 2);
        out.push_str(&hex::encode(iv));
        out.push('/');
        out.push_str(&hex::encode(&ct));
        out.push(':');
        out.push_str(&hex::encode(tag));
        Ok(out)
    }

    fn read(&self, value: &str, _ctx: &Context<'_>) -> Option<Opened> {
        self.open(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENC_KEY: &str = "00112233445566778899aabbccddeeff";

    fn ctx() -> Context<'static> {
        Context { name: "S", now: 0 }
    }

    fn fixed_iv(iv: &mut [u8; IV_LEN]) -> Result<()> {
        iv.copy_from_slice(&hex::decode("00112233445566778899aabbccddeeff").unwrap());
        Ok(())
    }

    fn vectors() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/ktor_encrypt.json"
        );
        let text = std::fs::read_to_string(path).expect("tests/vectors/ktor_encrypt.json");
        serde_json::from_str(&text).unwrap()
    }

    fn h(s: &serde_json::Value) -> Vec<u8> {
        hex::decode(s.as_str().unwrap()).unwrap()
    }

    #[test]
    fn reproduces_ktor_vectors() {
        let doc = vectors();
        assert_eq!(doc["iv"], "00112233445566778899aabbccddeeff");
        let sign = h(&doc["sign_key"]);
        let mut ktor = 0;
        for v in doc["vectors"].as_array().unwrap() {
            let key = h(&v["encryption_key"]);
            let plain = v["plaintext"].as_str().unwrap();
            let wire = v["wire"].as_str().unwrap();
            for compat in [false, true] {
                let t = KtorEncrypt::with_iv_source(&key, &sign, compat, fixed_iv).unwrap();
                assert_eq!(t.write(plain, &ctx()).unwrap(), wire, "{}", v["name"]);
                let o = t.read(wire, &ctx()).unwrap();
                assert_eq!(o.value, plain);
                assert!(!o.reissue);
                // The pre-3.0 form: same IV and ciphertext, MAC over the plaintext.
                let (head, _) = wire.rsplit_once(':').unwrap();
                let legacy = format!("{head}:{}", v["legacy_mac"].as_str().unwrap());
                match t.read(&legacy, &ctx()) {
                    Some(o) => {
                        assert!(
                            compat,
                            "legacy MAC accepted without backward_compatible_read"
                        );
                        assert_eq!(o.value, plain);
                        assert!(o.reissue);
                    }
                    None => assert!(!compat, "legacy MAC rejected with backward_compatible_read"),
                }
            }
            if v["source"] == "ktor" {
                ktor += 1;
            }
        }
        assert_eq!(ktor, 2);
    }

    #[test]
    fn rejects_ktor_bad_values() {
        let doc = vectors();
        let sign = h(&doc["sign_key"]);
        for compat in [false, true] {
            let t = KtorEncrypt::new(&hex::decode(ENC_KEY).unwrap(), &sign, compat).unwrap();
            for bad in doc["rejected"].as_array().unwrap() {
                let bad = bad.as_str().unwrap();
                assert!(t.read(bad, &ctx()).is_none(), "{bad:?} (compat {compat})");
            }
        }
    }

    #[test]
    fn flipped_nibbles_in_mac_or_ciphertext_are_rejected() {
        let doc = vectors();
        let sign = h(&doc["sign_key"]);
        let wire = doc["vectors"][0]["wire"].as_str().unwrap();
        let slash = wire.find('/').unwrap();
        for compat in [false, true] {
            let t = KtorEncrypt::new(&hex::decode(ENC_KEY).unwrap(), &sign, compat).unwrap();
            for (i, c) in wire.char_indices().skip(slash + 1) {
                if c == ':' {
                    continue;
                }
                for other in "0123456789abcdef".chars().filter(|&o| o != c) {
                    let mut m = wire.to_owned();
                    m.replace_range(i..=i, &other.to_string());
                    assert!(t.read(&m, &ctx()).is_none(), "position {i} -> {other}");
                }
            }
        }
    }

    #[test]
    fn the_iv_is_not_authenticated_like_in_ktor() {
        // Documented weakness of Ktor's format, reproduced on purpose: flipping IV bits
        // flips the same bits of the first plaintext block and is not detected.
        let doc = vectors();
        let t =
            KtorEncrypt::new(&hex::decode(ENC_KEY).unwrap(), &h(&doc["sign_key"]), false).unwrap();
        let wire = doc["vectors"][0]["wire"].as_str().unwrap();
        let (iv_hex, rest) = wire.split_once('/').unwrap();
        let mut iv = hex::decode(iv_hex).unwrap();
        for (i, (a, b)) in b"id2".iter().zip(b"adm").enumerate() {
            iv[11 + i] ^= a ^ b; // `{"userId":"id2"` has "id2" at bytes 11..14
        }
        let forged = format!("{}/{rest}", hex::encode(iv));
        assert_eq!(
            t.read(&forged, &ctx()).unwrap().value,
            r#"{"userId":"adm","cart":[]}"#
        );
    }

    #[test]
    fn round_trips_for_every_key_size() {
        let big = "ab€✓\u{1F600}".repeat(300);
        for n in [16, 24, 32] {
            let t = KtorEncrypt::new(&vec![7u8; n], b"s", false).unwrap();
            for v in ["", "x", "exactly sixteen!", "héllo ✓", big.as_str()] {
                let w = t.write(v, &ctx()).unwrap();
                assert!(w
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'/' | b':')));
                let (iv, rest) = w.split_once('/').unwrap();
                assert_eq!(iv.len(), 32);
                let (ct, mac) = rest.split_once(':').unwrap();
                assert_eq!(ct.len(), 2 * 16 * (v.len() / 16 + 1));
                assert_eq!(mac.len(), 64);
                let o = t.read(&w, &ctx()).unwrap();
                assert_eq!(o.value, v);
                assert!(!o.reissue);
                assert_ne!(t.write(v, &ctx()).unwrap(), w, "fresh IV per value");
            }
            // Another key of the same size rejects it.
            let other = KtorEncrypt::new(&vec![8u8; n], b"s", true).unwrap();
            assert!(other.read(&t.write("v", &ctx()).unwrap(), &ctx()).is_none());
            let other_sign = KtorEncrypt::new(&vec![7u8; n], b"t", true).unwrap();
            assert!(other_sign
                .read(&t.write("v", &ctx()).unwrap(), &ctx())
                .is_none());
        }
    }

    #[test]
    fn authentic_but_malformed_plaintext_is_rejected() {
        // Valid MAC over a ciphertext whose padding or UTF-8 is wrong: only a key holder
        // can make one, and it is still rejected without panicking.
        let t = KtorEncrypt::new(&[1; 16], b"s", true).unwrap();
        let iv = [0u8; IV_LEN];
        let ct_bad_utf8 = t.cipher.encrypt(&iv, &[0xff, 0xfe]);
        let mac = hex::encode(t.mac(&ct_bad_utf8).finalize().into_bytes());
        let w = format!("{}/{}:{mac}", hex::encode(iv), hex::encode(&ct_bad_utf8));
        assert!(t.read(&w, &ctx()).is_none());
        let ct_bad_pad = [0x42u8; 16];
        let mac = hex::encode(t.mac(&ct_bad_pad).finalize().into_bytes());
        let w = format!("{}/{}:{mac}", hex::encode(iv), hex::encode(ct_bad_pad));
        assert!(t.read(&w, &ctx()).is_none());
    }

    #[test]
    fn open_says_why() {
        let doc = vectors();
        let sign = h(&doc["sign_key"]);
        let key = hex::decode(ENC_KEY).unwrap();
        let t = KtorEncrypt::new(&key, &sign, false).unwrap();
        let wire = doc["vectors"][0]["wire"].as_str().unwrap();
        let (iv, rest) = wire.split_once('/').unwrap();
        let (ct, mac) = rest.split_once(':').unwrap();
        use KtorRejection::*;
        for (value, why) in [
            ("".to_owned(), Malformed),
            (format!("{iv}{rest}"), Malformed),
            (format!("{iv}/{ct}{mac}"), Malformed),
            (format!("{}/{rest}", iv.to_uppercase()), BadIv),
            (format!("{}/{rest}", &iv[2..]), BadIv),
            (format!("{iv}/{}:{mac}", &ct[2..]), BadCiphertext),
            (format!("{iv}/:{mac}"), BadCiphertext),
            (format!("{iv}/{}:{mac}", ct.to_uppercase()), BadCiphertext),
            (format!("{iv}/{ct}:{}", mac.to_uppercase()), BadMacEncoding),
            (format!("{iv}/{ct}:{}", &mac[2..]), BadMacEncoding),
            (format!("{iv}/{ct}:{}", "0".repeat(64)), BadMac),
        ] {
            assert_eq!(t.open(&value), Err(why), "{value:?}");
            assert!(!why.to_string().is_empty());
            assert!(why
                .code()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        // The sign key is right but the encryption key is not.
        let wrong_aes = KtorEncrypt::new(&[9; 16], &sign, false).unwrap();
        assert!(matches!(
            wrong_aes.open(wire),
            Err(KtorRejection::BadPadding | KtorRejection::NotUtf8)
        ));
        // The wrong sign key.
        let wrong_sign = KtorEncrypt::new(&key, b"another", true).unwrap();
        assert_eq!(wrong_sign.open(wire), Err(KtorRejection::BadMac));
        // Legacy MAC: rejected as a bad MAC without backward_compatible_read.
        let legacy = format!(
            "{iv}/{ct}:{}",
            doc["vectors"][0]["legacy_mac"].as_str().unwrap()
        );
        assert_eq!(t.open(&legacy), Err(KtorRejection::BadMac));
        let compat = KtorEncrypt::new(&key, &sign, true).unwrap();
        assert!(compat.open(&legacy).unwrap().reissue);
    }

    #[test]
    fn read_is_open_ok() {
        let doc = vectors();
        let sign = h(&doc["sign_key"]);
        let key = hex::decode(ENC_KEY).unwrap();
        let wire = doc["vectors"][0]["wire"].as_str().unwrap();
        for compat in [false, true] {
            let t = KtorEncrypt::new(&key, &sign, compat).unwrap();
            let mut values: Vec<String> = doc["rejected"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            values.push(wire.to_owned());
            for i in 0..wire.len() {
                values.push(format!("{}{}", &wire[..i], &wire[i + 1..]));
            }
            for v in values {
                assert_eq!(t.read(&v, &ctx()), t.open(&v).ok(), "{v:?}");
            }
        }
    }

    #[test]
    fn keys_are_validated_and_never_printed() {
        for n in [0, 8, 15, 17, 31, 33, 64] {
            let err = KtorEncrypt::new(&vec![0; n], b"s", false).unwrap_err();
            assert!(
                matches!(err, CoreError::Config(ref m) if m.contains("16, 24 or 32")),
                "{err}"
            );
        }
        assert!(matches!(
            KtorEncrypt::new(&[0; 16], b"", false),
            Err(CoreError::Config(_))
        ));
        let t = KtorEncrypt::new(&[0xab; 24], &[0xcd; 11], true).unwrap();
        let dbg = format!("{t:?}");
        assert_eq!(
            dbg,
            "KtorEncrypt { aes_bits: 192, backward_compatible_read: true, .. }"
        );
    }
}
