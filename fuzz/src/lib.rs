//! The checks behind the fuzz targets, as plain functions so that `cargo test` can
//! replay the checked-in seed corpus (`seeds/`) without libFuzzer.
//!
//! Every input first picks one of [`setups`]: a transformer chain (MAC, Encrypt,
//! KtorEncrypt, Digest, and compositions in several orders) × an encoding (uri,
//! base64, raw, dquotes) × a transport (cookie, header).

use std::sync::{Arc, OnceLock};

use ferrosession::codec::aead::Encrypt;
use ferrosession::codec::chain::Chain;
use ferrosession::codec::cookie::{CookieAttributes, CookieSpec};
use ferrosession::codec::digest::Digest;
use ferrosession::codec::encoding::Encoding;
use ferrosession::codec::ktor_encrypt::KtorEncrypt;
use ferrosession::codec::mac::{MacAlgorithm, MessageAuthentication};
use ferrosession::codec::session::{Incoming, SessionCodec, Transport};
use ferrosession::codec::Transformer;

/// The clock of every check (a fixed time, so runs are reproducible).
pub const NOW: u64 = 1_700_000_000;
/// The session name of every setup.
pub const NAME: &str = "S";

/// What the outermost transformer of a chain guarantees about the wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outer {
    /// Nothing (no transformer): any value is accepted.
    Nothing,
    /// An unkeyed digest: detects corruption, but anyone can recompute it.
    Digest,
    /// KtorEncrypt: the MAC covers the ciphertext but not the IV (Ktor's format).
    KtorEncrypt,
    /// MessageAuthentication or Encrypt: every byte is authenticated.
    Authenticated,
}

/// One codec to fuzz and what its outermost step promises.
#[derive(Debug)]
pub struct Setup {
    /// The codec.
    pub codec: SessionCodec,
    /// The guarantee of its outermost transformer.
    pub outer: Outer,
    /// True for the header transport.
    pub header: bool,
}

fn mac(alg: MacAlgorithm, keys: &[u8], max_age: Option<u64>) -> Arc<dyn Transformer> {
    let keys = keys.iter().map(|b| vec![*b; 32]).collect();
    Arc::new(MessageAuthentication::new(keys, alg, max_age).expect("valid MAC keys"))
}

fn encrypt(keys: &[u8], max_age: Option<u64>) -> Arc<dyn Transformer> {
    let keys = keys.iter().map(|b| vec![*b; 32]).collect();
    Arc::new(Encrypt::new(keys, max_age).expect("valid Encrypt keys"))
}

fn ktor(aes_len: usize, compat: bool) -> Arc<dyn Transformer> {
    Arc::new(KtorEncrypt::new(&vec![7; aes_len], b"sign key", compat).expect("valid Ktor keys"))
}

fn digest() -> Arc<dyn Transformer> {
    Arc::new(Digest::new(b"ktor".to_vec(), MacAlgorithm::Sha384))
}

/// The chains, in write order, with the guarantee of their last (outermost) step.
fn chains() -> Vec<(Vec<Arc<dyn Transformer>>, Outer)> {
    use MacAlgorithm::{Sha256, Sha512};
    use Outer::{Authenticated, Digest as Dig, KtorEncrypt as Ktor, Nothing};
    vec![
        (vec![], Nothing),
        (vec![mac(Sha256, &[1], None)], Authenticated),
        (vec![mac(Sha512, &[1, 2], Some(3_600))], Authenticated),
        (vec![encrypt(&[1], None)], Authenticated),
        (vec![encrypt(&[1, 2], Some(3_600))], Authenticated),
        (vec![ktor(16, true)], Ktor),
        (vec![ktor(32, false)], Ktor),
        (vec![digest()], Dig),
        (
            vec![mac(Sha256, &[1], None), encrypt(&[3], None)],
            Authenticated,
        ),
        (
            vec![encrypt(&[3], None), mac(Sha256, &[1], None)],
            Authenticated,
        ),
        (
            vec![digest(), ktor(24, false), mac(Sha256, &[4], Some(60))],
            Authenticated,
        ),
        (vec![mac(Sha256, &[1], None), ktor(16, false)], Ktor),
        (vec![encrypt(&[5], Some(3_600)), digest()], Dig),
        (vec![ktor(32, true), encrypt(&[6], None)], Authenticated),
    ]
}

/// Every codec the fuzz targets pick from (built once).
pub fn setups() -> &'static [Setup] {
    static SETUPS: OnceLock<Vec<Setup>> = OnceLock::new();
    SETUPS.get_or_init(|| {
        let attrs = CookieAttributes {
            path: "/".into(),
            http_only: true,
            same_site: Some("Lax".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        for (steps, outer) in chains() {
            for encoding in [
                Encoding::Uri,
                Encoding::Base64,
                Encoding::Raw,
                Encoding::DQuotes,
            ] {
                for header in [false, true] {
                    let transport = if header {
                        Transport::Header
                    } else {
                        Transport::Cookie(CookieSpec::new(NAME, &attrs).expect("valid name"))
                    };
                    out.push(Setup {
                        codec: SessionCodec::new(
                            NAME,
                            transport,
                            encoding,
                            Chain::new(steps.clone()),
                        ),
                        outer,
                        header,
                    });
                }
            }
        }
        out
    })
}

fn pick(selector: u8) -> &'static Setup {
    let all = setups();
    &all[usize::from(selector) % all.len()]
}

/// Target `read_cookie`: the bytes after the first one (which picks the setup) as a
/// `Cookie` header and as a bare value, read at several clocks. Nothing may panic.
pub fn check_read(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let setup = pick(selector);
    let text = String::from_utf8_lossy(rest);
    for now in [NOW, 0, u64::MAX] {
        let _ = setup.codec.read_cookie(&text, now);
        let _ = setup.codec.read_value(&text, now);
        let _ = setup.codec.decode(&text);
    }
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = setup.codec.read_value(text, NOW);
    }
}

/// The value part of what `SessionCodec::write` returned.
fn wire_value(setup: &Setup, line: &str) -> String {
    if setup.header {
        return line.to_owned();
    }
    let value = line
        .strip_prefix(NAME)
        .and_then(|l| l.strip_prefix('='))
        .expect("a Set-Cookie line starts with NAME=");
    value.split(';').next().unwrap_or_default().to_owned()
}

fn read(setup: &Setup, value: &str) -> Incoming {
    if setup.header {
        setup.codec.read_value(value, NOW)
    } else {
        let via_header = setup
            .codec
            .read_cookie(&format!("a=b; {NAME}={value}"), NOW);
        let direct = setup.codec.read_value(value, NOW);
        // A value without ';' reads the same in a header as on its own (the header
        // parser trims spaces and tabs around it, hence the exclusion).
        if !value.contains(';') && value.trim_matches([' ', '\t']) == value {
            assert_eq!(via_header, direct, "read_cookie and read_value disagree");
        }
        direct
    }
}

/// The part a KtorEncrypt reader authenticates: everything after the last '/'.
fn after_iv(text: &str) -> Option<&str> {
    text.rsplit_once('/').map(|(_, rest)| rest)
}

/// Panics when `mutated` was accepted although the outermost transformer should have
/// rejected it. `originals` are the transformed (decoded) values written for real.
fn assert_not_forged(setup: &Setup, mutated: &str, payloads: &[&str], originals: &[String]) {
    let Incoming::Valid(opened) = read(setup, mutated) else {
        return;
    };
    let Some(decoded) = setup.codec.decode(mutated) else {
        panic!("a value that does not decode was accepted: {mutated:?}");
    };
    if let Some(i) = originals.iter().position(|o| *o == decoded) {
        // Another spelling of a genuine value (e.g. `%41` for `A`): fine, if it opens
        // to that value's payload.
        assert_eq!(opened.value, payloads[i], "a genuine value opened wrongly");
        return;
    }
    match setup.outer {
        Outer::Nothing | Outer::Digest => {}
        Outer::KtorEncrypt => {
            // Documented weakness: the IV is not authenticated.
            let tail = after_iv(&decoded);
            assert!(
                tail.is_some() && originals.iter().any(|o| after_iv(o) == tail),
                "KtorEncrypt accepted a change outside its IV: {mutated:?}"
            );
        }
        Outer::Authenticated => {
            panic!(
                "a forged value was accepted: {mutated:?} -> {:?}",
                opened.value
            )
        }
    }
}

/// Applies one edit (3 bytes of fuzzer input) to `value`.
fn mutate(value: &str, op: u8, a: u8, b: u8) -> String {
    let mut bytes = value.as_bytes().to_vec();
    let len = bytes.len();
    let at = |x: u8| {
        if len == 0 {
            0
        } else {
            usize::from(x) * len / 256
        }
    };
    match op % 7 {
        0 if len > 0 => bytes[at(a)] ^= b | 1,
        1 => bytes.truncate(at(a)),
        2 => bytes.insert(at(a), b),
        3 if len > 0 => {
            bytes.remove(at(a));
        }
        4 => {
            // Duplicate a slice (extension with plausible text).
            let (s, e) = (at(a.min(b)), at(a.max(b)));
            let dup = bytes[s..e].to_vec();
            bytes.extend_from_slice(&dup);
        }
        5 => {
            // Swap two '/'- or ':'-separated parts.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let mut parts: Vec<&str> = text.split(['/', ':']).collect();
            let seps: Vec<char> = text.chars().filter(|c| *c == '/' || *c == ':').collect();
            if parts.len() > 1 {
                let (i, j) = (usize::from(a) % parts.len(), usize::from(b) % parts.len());
                parts.swap(i, j);
            }
            let mut out = String::new();
            for (i, p) in parts.iter().enumerate() {
                out.push_str(p);
                if let Some(s) = seps.get(i) {
                    out.push(*s);
                }
            }
            return out;
        }
        _ => bytes.push(b),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Target `round_trip`: byte 0 picks the setup; the bytes up to the first 0xff are the
/// payload (lossy UTF-8); every 3 bytes after it are one edit of the written value.
///
/// Checks: the payload written is read back unchanged (through a `Cookie` header and
/// on its own); no edit, and no splice of two genuine values at a '/' or ':', is
/// accepted unless the outermost transformer cannot tell (none, Digest, or an edit of
/// KtorEncrypt's IV).
pub fn check_round_trip(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let setup = pick(selector);
    let cut = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
    let payload = String::from_utf8_lossy(&rest[..cut]).into_owned();
    let edits = rest.get(cut + 1..).unwrap_or_default();

    let second = format!("{payload}x");
    let mut values = Vec::new();
    for p in [&payload, &second] {
        // An encoding may refuse a value (raw with a space, too large): that is an
        // error for the application, not a value on the wire.
        let Ok(line) = setup.codec.write(p, Some(3_600), NOW) else {
            return;
        };
        let value = wire_value(setup, &line);
        match read(setup, &value) {
            Incoming::Valid(o) => {
                assert_eq!(&o.value, p, "round trip changed the payload");
                assert!(!o.reissue, "a fresh value asks for re-issue");
            }
            other => panic!("a value just written was not read back: {other:?} {value:?}"),
        }
        values.push(value);
    }
    let originals: Vec<String> = values
        .iter()
        .map(|v| setup.codec.decode(v).expect("a written value decodes"))
        .collect();
    let payloads = [payload.as_str(), second.as_str()];

    // Splices of the two genuine values at each separator of the first.
    let (a, b) = (&values[0], &values[1]);
    for (i, c) in a.char_indices() {
        if (c == '/' || c == ':' || c == '%') && b.is_char_boundary(i.min(b.len())) {
            let spliced = format!("{}{}", &a[..i], &b[i.min(b.len())..]);
            assert_not_forged(setup, &spliced, &payloads, &originals);
            let spliced = format!("{}{}", &b[..i.min(b.len())], &a[i..]);
            assert_not_forged(setup, &spliced, &payloads, &originals);
        }
    }

    let mut current = values[0].clone();
    for edit in edits.chunks_exact(3) {
        current = mutate(&current, edit[0], edit[1], edit[2]);
        assert_not_forged(setup, &current, &payloads, &originals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("readable seed").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        files
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).expect("readable seed");
                (p.display().to_string(), bytes)
            })
            .collect()
    }

    /// The checked-in seeds and regressions of `read_cookie`, replayed.
    #[test]
    fn replay_read_cookie_seeds() {
        for (name, data) in corpus("read_cookie") {
            eprintln!("{name}");
            check_read(&data);
        }
    }

    /// The `valid-*` seeds of `read_cookie` are genuine values for the setup their
    /// first byte picks (so the fuzzer starts from values that open).
    #[test]
    fn valid_seeds_open() {
        let mut checked = 0;
        for (name, data) in corpus("read_cookie") {
            if !name.contains("/valid-") {
                continue;
            }
            let setup = pick(data[0]);
            let text = std::str::from_utf8(&data[1..]).expect("UTF-8 seed");
            let got = if setup.header {
                setup.codec.read_value(text, NOW)
            } else {
                setup.codec.read_cookie(text, NOW)
            };
            assert!(matches!(got, Incoming::Valid(_)), "{name}: {got:?}");
            checked += 1;
        }
        assert!(checked >= 10);
    }

    /// The checked-in seeds and regressions of `round_trip`, replayed.
    #[test]
    fn replay_round_trip_seeds() {
        for (name, data) in corpus("round_trip") {
            eprintln!("{name}");
            check_round_trip(&data);
        }
    }

    /// Every setup round-trips an empty, a unicode and a 3 kB payload, with every
    /// kind of edit after it.
    #[test]
    fn every_setup_round_trips() {
        for selector in 0..setups().len() {
            let selector = u8::try_from(selector).expect("fewer than 256 setups");
            for payload in ["", "{\"user\":\"jöhn\",\"n\":1} ✓", &"ab€✓😀".repeat(200)] {
                let mut data = vec![selector];
                data.extend_from_slice(payload.as_bytes());
                data.push(0xff);
                for op in 0..7u8 {
                    data.extend_from_slice(&[op, 40 * op + 3, 0x5a]);
                }
                check_round_trip(&data);
            }
        }
    }
}
