//! Cookie value encodings (Ktor's `CookieEncoding`).
//!
//! - `uri`: keep `A-Za-z0-9-._~`, space becomes `+`, every other byte of the UTF-8
//!   form becomes uppercase `%XX`. Decoding turns `+` into a space and `%XX` into its
//!   byte; a malformed escape or a result that is not UTF-8 rejects the value.
//! - `base64`: standard alphabet with padding.
//! - `raw`: the value as it is (it must not contain `;`, `,`, whitespace, controls or `"`).
//! - `dquotes`: the value inside double quotes (it must not contain `"`).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use crate::error::{CoreError, Result};

/// How a transformed value is written into the cookie or header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// URL query component encoding, space as `+` (the default for cookies).
    Uri,
    /// Standard base64 with padding.
    Base64,
    /// No encoding (the default for headers).
    Raw,
    /// Wrapped in double quotes.
    DQuotes,
}

impl Encoding {
    /// Parses the option value `"uri"`, `"base64"`, `"raw"` or `"dquotes"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "uri" => Ok(Encoding::Uri),
            "base64" => Ok(Encoding::Base64),
            "raw" => Ok(Encoding::Raw),
            "dquotes" => Ok(Encoding::DQuotes),
            other => Err(CoreError::Config(format!(
                "encoding must be one of \"uri\", \"base64\", \"raw\", \"dquotes\", not {other:?}"
            ))),
        }
    }

    /// Encodes a value for the wire.
    pub fn encode(self, value: &str) -> Result<String> {
        match self {
            Encoding::Uri => Ok(uri_encode(value)),
            Encoding::Base64 => Ok(STANDARD.encode(value.as_bytes())),
            Encoding::Raw => {
                if value.bytes().all(is_raw_safe) {
                    Ok(value.to_owned())
                } else {
                    Err(CoreError::Encoding(
                        "this value cannot travel with encoding=\"raw\": it holds a space, \
                         ';', ',', '\"', '\\\\' or a control or non-ASCII character; use \
                         encoding=\"uri\" or \"base64\""
                            .into(),
                    ))
                }
            }
            Encoding::DQuotes => {
                if value.bytes().all(|b| is_raw_safe(b) || b == b' ') {
                    Ok(format!("\"{value}\""))
                } else {
                    Err(CoreError::Encoding(
                        "this value cannot travel with encoding=\"dquotes\": it holds '\"', \
                         '\\\\', a control or a non-ASCII character; use encoding=\"uri\" or \"base64\""
                            .into(),
                    ))
                }
            }
        }
    }

    /// [`Encoding::encode`], appended to `out`.
    pub fn encode_into(self, out: &mut Vec<u8>, value: &str) -> Result<()> {
        match self {
            Encoding::Uri => uri_encode_into(out, value),
            other => out.extend_from_slice(other.encode(value)?.as_bytes()),
        }
        Ok(())
    }

    /// Encodes a value for a header (not a cookie): `raw` then allows every visible
    /// ASCII character, space and tab, since header values are not cookie-octets.
    pub fn encode_header(self, value: &str) -> Result<String> {
        match self {
            Encoding::Raw => {
                if value
                    .bytes()
                    .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
                {
                    Ok(value.to_owned())
                } else {
                    Err(CoreError::Encoding(
                        "this value cannot travel in a header with encoding=\"raw\": it holds a \
                         control or non-ASCII character; use encoding=\"uri\" or \"base64\""
                            .into(),
                    ))
                }
            }
            other => other.encode(value),
        }
    }

    /// Decodes a value from the wire; `None` when it is not well formed.
    pub fn decode(self, value: &str) -> Option<String> {
        match self {
            Encoding::Uri => uri_decode(value),
            Encoding::Base64 => {
                let bytes = STANDARD.decode(value.as_bytes()).ok()?;
                String::from_utf8(bytes).ok()
            }
            Encoding::Raw => Some(value.to_owned()),
            Encoding::DQuotes => {
                let inner = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                Some(inner.to_owned())
            }
        }
    }
}

/// Bytes a cookie or header value may hold without encoding (RFC 6265 cookie-octet).
fn is_raw_safe(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Unpadded URL-safe base64 that decodes with or without `=` and ignores trailing
/// bits: how Python's signers (itsdangerous, Django) read what a key holder signed.
pub(crate) const B64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// `URI_UNRESERVED[b]` is true for the bytes that stay literal: `A-Za-z0-9-._~`.
const URI_UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    table
};

/// Each byte's `uri` form: up to three bytes, and how many of them count.
const URI_ESCAPE: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if URI_UNRESERVED[b] {
            ([c, 0, 0], 1)
        } else if c == b' ' {
            ([b'+', 0, 0], 1)
        } else {
            (
                [
                    b'%',
                    HEX_UPPER[(c >> 4) as usize],
                    HEX_UPPER[(c & 15) as usize],
                ],
                3,
            )
        };
        b += 1;
    }
    table
};

/// URI-encodes the UTF-8 form of `value` the way Ktor's `encodeURLParameter(spaceToPlus = true)` does.
pub fn uri_encode(value: &str) -> String {
    let mut out = Vec::new();
    uri_encode_into(&mut out, value);
    String::from_utf8(out).expect("the encoded form is ASCII")
}

/// [`uri_encode`], appended to `out`.
pub fn uri_encode_into(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let start = out.len();
    // room for the worst case (every byte escaped) plus the two bytes each step may
    // write beyond what it keeps
    out.resize(start + bytes.len() * 3 + 2, 0);
    let mut o = start;
    for &b in bytes {
        let (form, len) = URI_ESCAPE[b as usize];
        out[o..o + 3].copy_from_slice(&form);
        o += len as usize;
    }
    out.truncate(o);
}

/// A table from a byte to the value of the hex digit it is, 0xFF for any other byte;
/// with `upper`, `A`-`F` count too.
pub(crate) const fn hex_table(upper: bool) -> [u8; 256] {
    let mut table = [0xFF; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' if upper => c - b'A' + 10,
            _ => 0xFF,
        };
        b += 1;
    }
    table
}

/// `HEX_VALUE[b]`: the value of hex digit `b` (either case), 0xFF for other bytes.
const HEX_VALUE: [u8; 256] = hex_table(true);

/// Decodes `+` and `%XX`; `None` for a malformed escape or non-UTF-8 result.
pub fn uri_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Some(value.to_owned());
    }
    let literal = |b: &u8| if *b == b'+' { b' ' } else { *b };
    let mut out = Vec::with_capacity(bytes.len());
    // every piece after a '%' starts with the two hex digits of its escape
    let mut pieces = bytes.split(|&b| b == b'%');
    out.extend(pieces.next().unwrap_or_default().iter().map(literal));
    for piece in pieces {
        let (hi, lo) = match piece {
            [hi, lo, ..] => (HEX_VALUE[*hi as usize], HEX_VALUE[*lo as usize]),
            _ => return None,
        };
        if (hi | lo) > 15 {
            return None;
        }
        out.push(hi << 4 | lo);
        out.extend(piece[2..].iter().map(literal));
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_matches_ktor() {
        let v = r#"{"userId":"id 2","cart":[]}/0adc"#;
        assert_eq!(
            uri_encode(v),
            "%7B%22userId%22%3A%22id+2%22%2C%22cart%22%3A%5B%5D%7D%2F0adc"
        );
        assert_eq!(uri_decode(&uri_encode(v)).as_deref(), Some(v));
        assert_eq!(uri_encode("a~b-c.d_e"), "a~b-c.d_e");
        assert_eq!(uri_encode("é"), "%C3%A9");
    }

    #[test]
    fn uri_decode_rejects_bad_input() {
        assert_eq!(uri_decode("%"), None);
        assert_eq!(uri_decode("%4"), None);
        assert_eq!(uri_decode("%G1"), None);
        assert_eq!(uri_decode("%FF"), None); // not UTF-8
        assert_eq!(uri_decode("a+b%2b").as_deref(), Some("a b+"));
        for bad in [
            "abc%", "%%41", "%4%41", "ab%4", "%41%", "%%%", "%C3", "x%2", "%zz%41",
        ] {
            assert_eq!(uri_decode(bad), None, "{bad}");
        }
        assert_eq!(uri_decode("%41%42+c%C3%A9").as_deref(), Some("AB cé"));
        assert_eq!(uri_decode("+").as_deref(), Some(" "));
        // raw JSON survives decoding unchanged
        assert_eq!(uri_decode(r#"{"id":1}"#).as_deref(), Some(r#"{"id":1}"#));
    }

    #[test]
    fn base64_round_trip() {
        let e = Encoding::Base64;
        let w = e.encode("hello wörld").unwrap();
        assert_eq!(w, "aGVsbG8gd8O2cmxk");
        assert_eq!(e.decode(&w).as_deref(), Some("hello wörld"));
        assert_eq!(e.decode("!!"), None);
    }

    #[test]
    fn raw_and_dquotes() {
        assert!(Encoding::Raw.encode("abc/def:0").is_ok());
        assert!(Encoding::Raw.encode("a b").is_err());
        assert!(Encoding::Raw.encode("a;b").is_err());
        assert_eq!(Encoding::DQuotes.encode("a b").unwrap(), "\"a b\"");
        assert!(Encoding::DQuotes.encode("a\"b").is_err());
        assert_eq!(Encoding::DQuotes.decode("\"a b\"").as_deref(), Some("a b"));
        assert_eq!(Encoding::parse("uri").unwrap(), Encoding::Uri);
        assert_eq!(
            Encoding::Raw.encode_header(r#"{"a": "b;c"}"#).unwrap(),
            r#"{"a": "b;c"}"#
        );
        assert!(Encoding::Raw.encode_header("ü").is_err());
        assert!(Encoding::Raw.encode_header("a\r\nb").is_err());
        assert!(Encoding::parse("URI").is_err());
    }
}
