//! itsdangerous-compatible signed values: the session cookies of Starlette's
//! `SessionMiddleware` and of Flask's default `SecureCookieSessionInterface`, so an app
//! that switches to ferrosession keeps its users' cookies valid.
//!
//! Wire format (itsdangerous 2.x `TimestampSigner`, separator `.`):
//! `payload + "." + b64url(ts) + "." + b64url(HMAC-SHA1(derived, payload + "." + b64url(ts)))`
//! where `b64url` is unpadded URL-safe base64 and `ts` is the Unix time in whole
//! seconds as a big-endian integer without its leading zero bytes
//! (`1700000000` → `ZVPxAA`).
//!
//! The HMAC key is derived from each secret with a salt:
//! - `django-concat` (Starlette, salt `itsdangerous.Signer`): `SHA1(salt + b"signer" + secret)`;
//! - `hmac` (Flask, salt `cookie-session`): `HMAC-SHA1(key=secret, msg=salt)`;
//! - `concat`: `SHA1(salt + secret)`; `none`: the secret itself.
//!
//! Payloads:
//! - Starlette: standard base64 (`+/`, with `=` padding) of the JSON text;
//! - Flask: `b64url(json)`, or `"." + b64url(zlib(json))` when the RFC 1950 zlib stream
//!   is at least 2 bytes shorter than the JSON (itsdangerous' `URLSafeSerializer` rule).
//!   Any deflate stream is valid on the wire (the signature covers the bytes sent), so
//!   ours (miniz_oxide) need not equal CPython's `zlib.compress` byte for byte.
//!
//! Reading splits with `rsplit` (a Flask payload may start with `.`, a Starlette one
//! holds `=`), verifies the signature in constant time (`Mac::verify_slice`) against
//! every key — the first key signs, a match by another one asks for re-issue — then
//! checks the age like itsdangerous: older than `max_age`, or from the future (negative
//! age), is expired. Base64 is decoded as leniently as Python does about padding and
//! trailing bits; everything under the signature was written by a key holder.
//! Anything that does not verify or decode is `None`: an absent session.

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{Config as _, DecodePaddingMode};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::{Digest as _, Sha1};

use crate::codec::mac::first_matching_key;
use crate::error::{CoreError, Result};

type HmacSha1 = Hmac<Sha1>;

/// Bytes of an HMAC-SHA1 signature.
const SIG_LEN: usize = 20;

/// The largest JSON text a compressed Flask payload may inflate to. The payload is
/// only inflated after its signature verified, so this is a sanity bound, far above
/// anything a 4 KB cookie legitimately carries.
pub const MAX_INFLATED: usize = 16 << 20;

// Unpadded URL-safe base64 that decodes with or without `=` and ignores trailing
// bits, like `itsdangerous.encoding.base64_decode`.
use crate::codec::encoding::B64URL_LENIENT as B64URL;

/// Standard padded base64 (Starlette's payload), lenient about trailing bits.
const B64STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// How itsdangerous turns a secret into the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDerivation {
    /// `SHA1(salt + secret)`.
    Concat,
    /// `SHA1(salt + b"signer" + secret)` (itsdangerous' default, Starlette).
    DjangoConcat,
    /// `HMAC-SHA1(key=secret, msg=salt)` (Flask).
    Hmac,
    /// The secret itself.
    None,
}

impl KeyDerivation {
    /// Parses itsdangerous' names: `"concat"`, `"django-concat"`, `"hmac"`, `"none"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "concat" => Ok(Self::Concat),
            "django-concat" => Ok(Self::DjangoConcat),
            "hmac" => Ok(Self::Hmac),
            "none" => Ok(Self::None),
            other => Err(CoreError::Config(format!(
                "key_derivation must be \"concat\", \"django-concat\", \"hmac\" or \"none\", \
                 not {other:?}"
            ))),
        }
    }

    /// The HMAC key for `secret` under `salt`.
    pub fn derive(self, salt: &[u8], secret: &[u8]) -> Vec<u8> {
        match self {
            Self::Concat => Sha1::new()
                .chain_update(salt)
                .chain_update(secret)
                .finalize()
                .to_vec(),
            Self::DjangoConcat => Sha1::new()
                .chain_update(salt)
                .chain_update(b"signer")
                .chain_update(secret)
                .finalize()
                .to_vec(),
            Self::Hmac => {
                let mut mac = <HmacSha1 as KeyInit>::new_from_slice(secret)
                    .expect("HMAC takes keys of any length");
                mac.update(salt);
                mac.finalize().into_bytes().to_vec()
            }
            Self::None => secret.to_vec(),
        }
    }
}

/// `b64url` of `ts` as a big-endian integer without leading zero bytes.
pub fn encode_timestamp(ts: u64) -> String {
    let bytes = ts.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    B64URL.encode(&bytes[first..])
}

/// The inverse of [`encode_timestamp`]; `None` for text that is not base64url or
/// longer than 8 bytes (itsdangerous' "malformed timestamp").
pub fn decode_timestamp(text: &[u8]) -> Option<u64> {
    if text.len() > 12 {
        return None;
    }
    let mut raw = [0u8; 12];
    let len = B64URL.decode_slice(text, &mut raw).ok()?;
    if len > 8 {
        return None;
    }
    let mut buf = [0u8; 8];
    buf[8 - len..].copy_from_slice(&raw[..len]);
    Some(u64::from_be_bytes(buf))
}

/// A verified value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsigned<'a> {
    /// What was signed, without the timestamp.
    pub payload: &'a [u8],
    /// The signed issue time (Unix seconds).
    pub timestamp: u64,
    /// Which key verified it (0 = the signing key).
    pub key_index: usize,
}

/// itsdangerous' `TimestampSigner` over HMAC-SHA1 with several keys: the first one
/// signs, every one verifies.
#[derive(Clone)]
pub struct TimestampSigner {
    macs: Vec<HmacSha1>,
}

impl std::fmt::Debug for TimestampSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys.
        f.debug_struct("TimestampSigner")
            .field("keys", &self.macs.len())
            .finish()
    }
}

impl TimestampSigner {
    /// Derives one HMAC key per secret (`secrets[0]` signs). itsdangerous takes any
    /// secret, even an empty one, so this does too: compatibility with existing
    /// deployments comes first.
    pub fn new(secrets: &[Vec<u8>], salt: &[u8], derivation: KeyDerivation) -> Result<Self> {
        if secrets.is_empty() {
            return Err(CoreError::Config("a signer needs a secret key".into()));
        }
        let macs = secrets
            .iter()
            .map(|secret| {
                <HmacSha1 as KeyInit>::new_from_slice(&derivation.derive(salt, secret))
                    .expect("HMAC takes keys of any length")
            })
            .collect();
        Ok(Self { macs })
    }

    /// How many keys verify.
    pub fn key_count(&self) -> usize {
        self.macs.len()
    }

    /// Signs what `out` holds from `start` on: appends `"." + b64url(now)`, then
    /// `"." + b64url(signature)` over everything from `start`.
    pub fn sign_tail(&self, out: &mut Vec<u8>, start: usize, now: u64) {
        out.push(b'.');
        let bytes = now.to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        push_b64(out, &B64URL, &bytes[first..]);
        let mut mac = self.macs[0].clone();
        mac.update(&out[start..]);
        out.push(b'.');
        push_b64(out, &B64URL, &mac.finalize().into_bytes());
    }

    /// `payload + "." + b64url(now) + "." + b64url(signature)`.
    pub fn sign(&self, payload: &str, now: u64) -> String {
        let mut out = Vec::with_capacity(payload.len() + 40);
        out.extend_from_slice(payload.as_bytes());
        self.sign_tail(&mut out, 0, now);
        String::from_utf8(out).expect("payload text and base64 are UTF-8")
    }

    /// Verifies `signed` and its age. `max_age = None` skips the age check (as
    /// itsdangerous does); with one, an age above it or below zero is expired.
    pub fn unsign<'a>(
        &self,
        signed: &'a [u8],
        max_age: Option<i64>,
        now: u64,
    ) -> Option<Unsigned<'a>> {
        let (value, sig_text) = rsplit_dot(signed)?;
        // 20 bytes are 27 characters; allow the padded spelling too.
        if sig_text.len() > 28 {
            return None;
        }
        let mut sig = [0u8; 24];
        if B64URL.decode_slice(sig_text, &mut sig).ok()? != SIG_LEN {
            return None;
        }
        let key_index = self.find_key(value, &sig[..SIG_LEN])?;
        let (payload, ts_text) = rsplit_dot(value)?;
        let timestamp = decode_timestamp(ts_text)?;
        if let Some(max_age) = max_age {
            let age = i128::from(now) - i128::from(timestamp);
            if age > i128::from(max_age) || age < 0 {
                return None;
            }
        }
        Some(Unsigned {
            payload,
            timestamp,
            key_index,
        })
    }

    fn find_key(&self, value: &[u8], sig: &[u8]) -> Option<usize> {
        first_matching_key(&self.macs, value, sig)
    }
}

/// Appends the base64 of `input` to `out`.
fn push_b64(out: &mut Vec<u8>, engine: &GeneralPurpose, input: &[u8]) {
    let start = out.len();
    let padding = engine.config().encode_padding();
    let len = base64::encoded_len(input.len(), padding).expect("a cookie-sized input");
    out.resize(start + len, 0);
    let written = engine
        .encode_slice(input, &mut out[start..])
        .expect("the buffer has the encoded length");
    out.truncate(start + written);
}

fn rsplit_dot(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = text.iter().rposition(|&b| b == b'.')?;
    Some((&text[..at], &text[at + 1..]))
}

// -- Starlette -------------------------------------------------------------------------

/// Starlette's payload: standard padded base64 of the JSON text.
pub fn starlette_payload(json: &[u8]) -> String {
    B64STD.encode(json)
}

/// The JSON text of a Starlette payload.
pub fn starlette_open(payload: &[u8]) -> Option<Vec<u8>> {
    B64STD.decode(payload).ok()
}

/// Bytes Python's `str.strip()` removes from a latin-1 decoded header.
fn is_py_space(b: u8) -> bool {
    matches!(
        b,
        b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ' | 0x85 | 0xa0
    )
}

fn py_strip(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_py_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_py_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// `http.cookies._unquote`: a value in double quotes loses them, and its `\ooo`
/// octal and `\c` escapes are resolved; any other value is returned as it is.
fn py_unquote(value: &[u8]) -> Cow<'_, [u8]> {
    if value.len() < 2 || value[0] != b'"' || value[value.len() - 1] != b'"' {
        return Cow::Borrowed(value);
    }
    Cow::Owned(werkzeug_unslash(&value[1..value.len() - 1]))
}

/// The value of cookie `name` in a `Cookie` header the way Starlette 1.x reads it
/// (`starlette.requests.cookie_parser`): split on `;`, then on the first `=` (no `=`
/// means an empty name), strip both sides like `str.strip()`, unquote the value like
/// `http.cookies`; the **last** occurrence wins. Several `Cookie` headers behave as
/// one joined with `;`.
pub fn starlette_cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<Cow<'a, [u8]>> {
    let mut found = None;
    let mut rest = Some(header);
    while let Some(text) = rest {
        let chunk = match find_byte(text, b';') {
            Some(at) => {
                rest = Some(&text[at + 1..]);
                &text[..at]
            }
            None => {
                rest = None;
                text
            }
        };
        let (key, value) = match find_byte(chunk, b'=') {
            Some(at) => (&chunk[..at], &chunk[at + 1..]),
            None => (&b""[..], chunk),
        };
        let key = py_strip(key);
        if key != name {
            continue;
        }
        let value = py_strip(value);
        if key.is_empty() && value.is_empty() {
            continue;
        }
        found = Some(value);
    }
    found.map(py_unquote)
}

/// One `key[=value]` item of werkzeug's cookie regex at `pos`: `(key, value, end)`.
///
/// The regex (`werkzeug.sansio.http._cookie_re`) is
/// `[ \t]*([^ \t=";]+)(?:[ \t]*=[ \t]*("(?:[^\\"]|\\.)*"|[^ \t";]*))?[ \t]*(?:;|\Z)`;
/// it has no ambiguity left once each part is matched greedily, so a scanner that tries
/// "with a value" (quoted, then token) and then "without" finds what `re.match` finds.
fn werkzeug_item(s: &[u8], pos: usize) -> Option<(&[u8], &[u8], usize)> {
    let n = s.len();
    let skip_blank = |mut i: usize| {
        while i < n && (s[i] == b' ' || s[i] == b'\t') {
            i += 1;
        }
        i
    };
    // the item must end here: `[ \t]*(?:;|\Z)`; returns where the next one starts
    let end_at = |i: usize| {
        let i = skip_blank(i);
        if i == n {
            Some(n)
        } else if s[i] == b';' {
            Some(i + 1)
        } else {
            None
        }
    };
    let start = skip_blank(pos);
    let mut i = start;
    while i < n && !matches!(s[i], b' ' | b'\t' | b'=' | b'"' | b';') {
        i += 1;
    }
    if i == start {
        return None;
    }
    let key = &s[start..i];
    let j = skip_blank(i);
    if j < n && s[j] == b'=' {
        let j = skip_blank(j + 1);
        if j < n && s[j] == b'"' {
            let mut k = j + 1;
            let mut closed = false;
            while k < n {
                match s[k] {
                    b'\\' if k + 1 < n && s[k + 1] != b'\n' => k += 2,
                    b'\\' => break,
                    b'"' => {
                        closed = true;
                        k += 1;
                        break;
                    }
                    _ => k += 1,
                }
            }
            if closed {
                if let Some(end) = end_at(k) {
                    return Some((key, &s[j..k], end));
                }
            }
        }
        let mut k = j;
        while k < n && !matches!(s[k], b' ' | b'\t' | b'"' | b';') {
            k += 1;
        }
        if let Some(end) = end_at(k) {
            return Some((key, &s[j..k], end));
        }
    }
    end_at(i).map(|end| (key, &b""[..], end))
}

/// werkzeug's `_cookie_unslash_re` substitution on a quoted value's inside (the same
/// rule as Python's `http.cookies._unquote`, which `py_unquote` uses too):
/// `\ooo` (first digit 0-3) is that byte, `\c` is `c` (not a newline).
fn werkzeug_unslash(inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && i + 1 < inner.len() {
            let rest = &inner[i + 1..];
            if rest.len() >= 3
                && (b'0'..=b'3').contains(&rest[0])
                && (b'0'..=b'7').contains(&rest[1])
                && (b'0'..=b'7').contains(&rest[2])
            {
                out.push((rest[0] - b'0') * 64 + (rest[1] - b'0') * 8 + (rest[2] - b'0'));
                i += 4;
                continue;
            }
            if rest[0] != b'\n' {
                out.push(rest[0]);
                i += 2;
                continue;
            }
        }
        out.push(inner[i]);
        i += 1;
    }
    out
}

/// The value of cookie `name` the way Werkzeug 3 reads a `Cookie` header
/// (`werkzeug.http.parse_cookie`, then `MultiDict.get`): items that do not match its
/// regex are skipped up to the next `;`, a value in double quotes is unslashed, and
/// the **first** occurrence wins. (The bytes of a quoted value that was not UTF-8
/// would differ from Werkzeug's replacement characters; no such value can verify.)
pub fn werkzeug_cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<Cow<'a, [u8]>> {
    let mut pos = 0;
    loop {
        match werkzeug_item(header, pos) {
            Some((key, value, end)) => {
                if key == name {
                    if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
                        return Some(Cow::Owned(werkzeug_unslash(&value[1..value.len() - 1])));
                    }
                    return Some(Cow::Borrowed(value));
                }
                if end <= pos {
                    return None;
                }
                pos = end;
            }
            None => {
                let semi = header[pos..].iter().position(|&b| b == b';')?;
                pos += semi + 1;
            }
        }
    }
}

/// Starlette's `SessionMiddleware` cookie: `TimestampSigner(secret)` with the
/// defaults (salt `itsdangerous.Signer`, `django-concat`, HMAC-SHA1) over a standard
/// base64 payload.
#[derive(Debug, Clone)]
pub struct StarletteCodec {
    signer: TimestampSigner,
    max_age: Option<i64>,
    name: Vec<u8>,
}

impl StarletteCodec {
    /// `secrets[0]` signs; every secret verifies. `max_age = None` accepts any age.
    /// `name` is the cookie name as the latin-1 bytes of the request header.
    pub fn new(secrets: &[Vec<u8>], max_age: Option<i64>, name: Vec<u8>) -> Result<Self> {
        let signer =
            TimestampSigner::new(secrets, b"itsdangerous.Signer", KeyDerivation::DjangoConcat)?;
        Ok(Self {
            signer,
            max_age,
            name,
        })
    }

    /// The JSON text of the session in a `Cookie` header (several headers joined
    /// with `;`), and whether a fallback key verified it; `None` when the cookie is
    /// absent, forged, expired or malformed.
    pub fn read(&self, header: &[u8], now: u64) -> Option<(Vec<u8>, bool)> {
        let value = starlette_cookie(header, &self.name)?;
        self.read_value(&value, now)
    }

    /// Like [`StarletteCodec::read`] for the cookie's value itself.
    pub fn read_value(&self, value: &[u8], now: u64) -> Option<(Vec<u8>, bool)> {
        let unsigned = self.signer.unsign(value, self.max_age, now)?;
        let json = starlette_open(unsigned.payload)?;
        Some((json, unsigned.key_index != 0))
    }

    /// The cookie value carrying `json`, signed now under the first key.
    pub fn write(&self, json: &[u8], now: u64) -> String {
        self.signer.sign(&starlette_payload(json), now)
    }

    /// Appends the cookie value to `out` (see [`StarletteCodec::write`]).
    pub fn write_into(&self, out: &mut Vec<u8>, json: &[u8], now: u64) {
        let start = out.len();
        push_b64(out, &B64STD, json);
        self.signer.sign_tail(out, start, now);
    }
}

// -- Flask -----------------------------------------------------------------------------

/// Flask's payload: `b64url(json)`, or `"." + b64url(zlib(json))` when that is at least
/// 2 bytes shorter before base64 (itsdangerous' `URLSafeSerializerMixin`). JSON shorter
/// than `compress_min` bytes is not tried (0 = always try, as Flask does): both
/// spellings are valid, and compressing a small payload costs more than it saves.
pub fn flask_payload(json: &[u8], compress_min: usize) -> String {
    if json.len() >= compress_min {
        let compressed = miniz_oxide::deflate::compress_to_vec_zlib(json, 6);
        if compressed.len() + 1 < json.len() {
            let mut out = String::with_capacity(1 + compressed.len() * 4 / 3 + 4);
            out.push('.');
            B64URL.encode_string(&compressed, &mut out);
            return out;
        }
    }
    B64URL.encode(json)
}

/// The JSON text of a Flask payload (inflated when it starts with `.`).
pub fn flask_open(payload: &[u8]) -> Option<Vec<u8>> {
    match payload.strip_prefix(b".") {
        Some(compressed) => {
            let raw = B64URL.decode(compressed).ok()?;
            miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&raw, MAX_INFLATED).ok()
        }
        None => B64URL.decode(payload).ok(),
    }
}

/// Flask's `SecureCookieSessionInterface` cookie: `URLSafeTimedSerializer` with salt
/// `cookie-session`, `hmac` key derivation and HMAC-SHA1 (all overridable by a
/// subclass in Flask, so they are parameters here).
#[derive(Debug, Clone)]
pub struct FlaskCodec {
    signer: TimestampSigner,
}

impl FlaskCodec {
    /// `secrets[0]` signs (Flask's `SECRET_KEY`); every secret verifies (with
    /// `SECRET_KEY_FALLBACKS`).
    pub fn new(secrets: &[Vec<u8>], salt: &[u8], derivation: KeyDerivation) -> Result<Self> {
        Ok(Self {
            signer: TimestampSigner::new(secrets, salt, derivation)?,
        })
    }

    /// The JSON text of a cookie value and whether a fallback key verified it;
    /// `None` when it is forged, expired (Flask passes `PERMANENT_SESSION_LIFETIME`)
    /// or malformed.
    pub fn read(&self, value: &[u8], max_age: Option<i64>, now: u64) -> Option<(Vec<u8>, bool)> {
        let unsigned = self.signer.unsign(value, max_age, now)?;
        let json = flask_open(unsigned.payload)?;
        Some((json, unsigned.key_index != 0))
    }

    /// The cookie value carrying `json`, signed now under the first key (see
    /// [`flask_payload`] for `compress_min`).
    pub fn write(&self, json: &[u8], now: u64, compress_min: usize) -> String {
        self.signer.sign(&flask_payload(json, compress_min), now)
    }
}

// -- JSON hints ------------------------------------------------------------------------

/// What a quick scan of a JSON text tells a fast parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonHints {
    /// A number of 19 or more digits, `NaN` or `Infinity`: a fast parser may not read
    /// it as Python's `json` does (big integers, non-finite floats).
    pub exotic_numbers: bool,
    /// A string that starts with a space (literally or as `\u0020`): possibly one of
    /// Flask's tag keys (`" t"`, `" di"`, …).
    pub space_strings: bool,
}

/// `0x01` in every byte of a `u64`.
const ONES: u64 = u64::from_ne_bytes([1; 8]);
/// `0x80` in every byte of a `u64`.
const HIGHS: u64 = ONES * 0x80;

/// Whether any byte of `word` is `byte` (the classic SWAR zero-byte test).
fn has_byte(word: u64, byte: u8) -> bool {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

/// The first index from `i` on whose 8-byte word may hold a `"` or `\\` (eight bytes
/// at a time; the caller looks at the bytes from there one by one).
fn skip_plain(json: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = json.get(i..i + 8) {
        let word = u64::from_ne_bytes(chunk.try_into().expect("eight bytes"));
        if has_byte(word, b'"') || has_byte(word, b'\\') {
            break;
        }
        i += 8;
    }
    i
}

/// The index of the first `byte` in `hay` (eight bytes at a time).
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = hay.get(i..i + 8) {
        if has_byte(
            u64::from_ne_bytes(chunk.try_into().expect("eight bytes")),
            byte,
        ) {
            break;
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == byte).map(|at| at + i)
}

/// Whether every byte of `word` is an ASCII digit.
fn all_digits(word: u64) -> bool {
    let x = word ^ (ONES * u64::from(b'0')); // digits become 0..=9
                                             // a byte's high bit ends up set when it is 0x0a or more (no carry leaves a byte)
    (((x & !HIGHS) + ONES * 0x76) | x) & HIGHS == 0
}

/// [`JsonHints::exotic_numbers`] with a quick test first: such a number needs an `N`
/// or `I`, or a run of 19 digits, and such a run fills at least one aligned 8-byte
/// word; a text with neither (most sessions) needs no scan of its strings.
pub fn exotic_numbers(json: &[u8]) -> bool {
    let mut words = json.chunks_exact(8);
    let mut suspect = false;
    for chunk in &mut words {
        let word = u64::from_ne_bytes(chunk.try_into().expect("eight bytes"));
        suspect |= all_digits(word) | has_byte(word, b'N') | has_byte(word, b'I');
    }
    suspect |= words.remainder().iter().any(|&b| b == b'N' || b == b'I');
    suspect && json_hints(json).exotic_numbers
}

/// Scans `json` once for [`JsonHints`]. It does not validate anything.
pub fn json_hints(json: &[u8]) -> JsonHints {
    let mut hints = JsonHints::default();
    let mut i = 0;
    let mut digits = 0usize;
    while i < json.len() {
        let b = json[i];
        if b == b'"' {
            digits = 0;
            let rest = &json[i + 1..];
            if rest.first() == Some(&b' ') || rest.starts_with(b"\\u0020") {
                hints.space_strings = true;
            }
            i += 1;
            while i < json.len() {
                i = skip_plain(json, i);
                match json.get(i) {
                    Some(b'\\') => i += 2,
                    Some(b'"') | None => break,
                    Some(_) => i += 1,
                }
            }
        } else if b.is_ascii_digit() {
            digits += 1;
            if digits >= 19 {
                hints.exotic_numbers = true;
            }
        } else {
            digits = 0;
            if b == b'N' || b == b'I' {
                hints.exotic_numbers = true;
            }
        }
        i += 1;
    }
    hints
}

#[cfg(test)]
mod tests;
