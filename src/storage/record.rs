//! The on-disk record of one directory-storage entry.
//!
//! ```text
//! ferrosession 1 <len> <sum>\n<value>
//! ```
//!
//! * `ferrosession 1 ` — magic word and format version (ASCII, one space each).
//! * `<len>` — the value's length in bytes, decimal, no sign, no leading zero
//!   (except `0` itself).
//! * `<sum>` — the first 8 bytes of SHA-256(value) as 16 lowercase hex characters: a
//!   torn or zero-filled file (a crash without fsync on some filesystems) reads as
//!   absent, never as another value. Any tool can check it (`hashlib.sha256`).
//! * `\n`, then exactly `<len>` bytes of UTF-8: the session's serialized text.
//!
//! The entry's expiry is **not** in the file's bytes: it is the file's modification
//! time (mtime = the instant the entry expires). So extending a session (`touch`)
//! sets the mtime and rewrites nothing, for any new lifetime, and `gc` finds expired
//! files from a `stat`. Idle and absolute timeouts live inside the value (the Python
//! layer keeps them there), so this format needs a value and an expiry only. Copying
//! the folder must keep mtimes (`cp -a`, `rsync -t`); a copy that resets them makes
//! entries expire early, never live longer.
//!
//! Anything else — another version, a header that does not parse, a length or sum
//! that does not match, invalid UTF-8 — is not a record and reads as absent.

use sha2::{Digest, Sha256};

/// Magic word and version, the start of every record.
pub const MAGIC: &[u8] = b"ferrosession 1 ";

/// The longest header: magic, 20 length digits, space, 16 hex digits, newline.
pub const MAX_HEADER: usize = MAGIC.len() + 20 + 1 + 16 + 1;

fn checksum(value: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest(value);
    let mut out = [0u8; 16];
    hex::encode_to_slice(&digest[..8], &mut out).expect("16 hex digits for 8 bytes");
    out
}

/// The bytes of the record holding `value`.
pub fn encode(value: &str) -> Vec<u8> {
    let len = value.len().to_string();
    let mut out = Vec::with_capacity(MAX_HEADER + value.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(&checksum(value.as_bytes()));
    out.push(b'\n');
    out.extend_from_slice(value.as_bytes());
    out
}

/// Parses a header: the value length and checksum, and where the value starts.
fn parse_header(bytes: &[u8]) -> Option<(usize, &[u8], usize)> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let nl = rest.iter().take(MAX_HEADER).position(|&b| b == b'\n')?;
    let line = &rest[..nl];
    let space = line.iter().position(|&b| b == b' ')?;
    let (digits, sum) = (&line[..space], &line[space + 1..]);
    if digits.is_empty()
        || digits.len() > 20
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return None;
    }
    let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if sum.len() != 16 || !sum.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some((len, sum, MAGIC.len() + nl + 1))
}

/// The value inside a record, or `None` when `bytes` is not a whole, intact record.
pub fn decode(bytes: &[u8]) -> Option<&str> {
    let (len, sum, start) = parse_header(bytes)?;
    let value = &bytes[start..];
    if value.len() != len || checksum(value) != sum {
        return None;
    }
    std::str::from_utf8(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for v in ["", "x", "{\"user\":\"jöhn\"}", &"é".repeat(5000)] {
            let rec = encode(v);
            assert_eq!(decode(&rec), Some(v));
        }
    }

    #[test]
    fn layout_is_the_documented_one() {
        let rec = encode("hello");
        // sha256("hello") = 2cf24dba5fb0a30e26e83b2ac5b9e29e...
        assert_eq!(rec, b"ferrosession 1 5 2cf24dba5fb0a30e\nhello");
    }

    #[test]
    fn damaged_records_are_rejected() {
        let rec = encode("hello world");
        assert_eq!(decode(&rec[..rec.len() - 1]), None, "truncated");
        let mut longer = rec.clone();
        longer.push(b'!');
        assert_eq!(decode(&longer), None, "trailing bytes");
        let mut flipped = rec.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&flipped), None, "changed value");
        let zeros = vec![0u8; rec.len()];
        assert_eq!(decode(&zeros), None, "zero-filled");
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"ferrosession 2 5 2cf24dba5fb0a30e\nhello"), None);
        assert_eq!(decode(b"ferrosession 1 05 2cf24dba5fb0a30e\nhello"), None);
        assert_eq!(decode(b"ferrosession 1 +5 2cf24dba5fb0a30e\nhello"), None);
        assert_eq!(decode(b"ferrosession 1 5 2CF24DBA5FB0A30E\nhello"), None);
        assert_eq!(decode(b"ferrosession 1 5 2cf24dba5fb0a30e hello"), None);
        assert_eq!(
            decode(b"ferrosession 1 99999999999999999999999 2cf24dba5fb0a30e\nhello"),
            None
        );
        // the sum matches but the bytes are not UTF-8
        let bad = [0xffu8, 0xfe];
        let mut rec = Vec::new();
        rec.extend_from_slice(MAGIC);
        rec.extend_from_slice(b"2 ");
        rec.extend_from_slice(&checksum(&bad));
        rec.push(b'\n');
        rec.extend_from_slice(&bad);
        assert_eq!(decode(&rec), None);
    }
}
