//! `Digest`: Ktor 1.x's unkeyed salted digest.
//!
//! Wire format: `value + "/" + lowercase_hex(H(utf8(salt) ‖ utf8(value)))`, SHA-384 and
//! salt `"ktor"` by default. It detects corruption, not forgery: anyone can compute it.

use sha2::{Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use super::mac::{decode_lower_hex, MacAlgorithm};
use super::{Context, Opened, Transformer};
use crate::error::Result;

/// The `Digest` transformer.
#[derive(Debug, Clone)]
pub struct Digest {
    salt: Vec<u8>,
    algorithm: MacAlgorithm,
}

impl Digest {
    /// A digest with this salt and hash function.
    pub fn new(salt: Vec<u8>, algorithm: MacAlgorithm) -> Self {
        Self { salt, algorithm }
    }

    fn hash(&self, value: &str) -> Vec<u8> {
        fn h<D: sha2::Digest>(salt: &[u8], value: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update(salt);
            d.update(value);
            d.finalize().to_vec()
        }
        match self.algorithm {
            MacAlgorithm::Sha256 => h::<Sha256>(&self.salt, value.as_bytes()),
            MacAlgorithm::Sha384 => h::<Sha384>(&self.salt, value.as_bytes()),
            MacAlgorithm::Sha512 => h::<Sha512>(&self.salt, value.as_bytes()),
        }
    }
}

impl Transformer for Digest {
    fn write(&self, value: &str, _ctx: &Context<'_>) -> Result<String> {
        Ok(format!("{value}/{}", hex::encode(self.hash(value))))
    }

    fn read(&self, value: &str, _ctx: &Context<'_>) -> Option<Opened> {
        let (inner, sig) = value.rsplit_once('/')?;
        let expected = self.hash(inner);
        let given = decode_lower_hex(sig, expected.len())?;
        if bool::from(expected.ct_eq(&given)) {
            Some(Opened {
                value: inner.to_owned(),
                reissue: false,
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn matches_sha384_of_salt_and_value() {
        let d = Digest::new(b"ktor".to_vec(), MacAlgorithm::Sha384);
        let ctx = Context { name: "S", now: 0 };
        let w = d.write("abc", &ctx).unwrap();
        let expected = hex::encode(Sha384::digest(b"ktorabc"));
        assert_eq!(w, format!("abc/{expected}"));
        assert_eq!(d.read(&w, &ctx).unwrap().value, "abc");
        assert!(d.read(&w.replace("abc/", "abd/"), &ctx).is_none());
        assert!(d.read("abc", &ctx).is_none());
        assert!(d.read(&w.to_uppercase(), &ctx).is_none());
    }
}
