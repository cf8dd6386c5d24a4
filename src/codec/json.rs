//! A strict, allocation-light JSON pull reader, the one reader of the default
//! serializer (the bindings drive it with the description of the session type and
//! build the Python value as they go), and the string escaping of the one writer.
//!
//! It reads JSON as orjson reads it: integers within 64 bits (signed or unsigned) are
//! integers, longer ones are floats; a float that overflows, a lone surrogate escape,
//! nesting deeper than orjson's 1024 levels are malformed. Every method returns `None`
//! for malformed JSON.

use std::borrow::Cow;

/// Levels of nesting the reader follows (orjson's limit); deeper is malformed.
pub const MAX_DEPTH: usize = 1024;

/// A JSON number as the reader hands it out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer (no fraction, no exponent) within `i64`.
    Int(i64),
    /// An integer beyond `i64::MAX` within `u64`.
    UInt(u64),
    /// A number with a fraction or an exponent, correctly rounded, finite.
    Float(f64),
}

/// The kind of the next value, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{`
    Object,
    /// `[`
    Array,
    /// `"`
    String,
    /// `-` or a digit
    Number,
    /// `t` or `f`
    Bool,
    /// `n`
    Null,
}

/// A cursor over JSON text (a clone is a saved position).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The kind of the next value (after whitespace), `None` at the end or on a byte no
    /// value starts with.
    pub fn peek(&mut self) -> Option<Kind> {
        self.ws();
        Some(match *self.bytes.get(self.pos)? {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'"' => Kind::String,
            b'-' | b'0'..=b'9' => Kind::Number,
            b't' | b'f' => Kind::Bool,
            b'n' => Kind::Null,
            _ => return None,
        })
    }

    /// Only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.pos == self.bytes.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.ws();
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }

    /// `null`.
    pub fn null(&mut self) -> Option<()> {
        self.literal(b"null")
    }

    /// `true` or `false`.
    pub fn boolean(&mut self) -> Option<bool> {
        if self.literal(b"true").is_some() {
            Some(true)
        } else {
            self.literal(b"false").map(|()| false)
        }
    }

    /// A string, borrowed when it holds no escape.
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        loop {
            let b = *self.bytes.get(self.pos)?;
            match b {
                b'"' => {
                    let s = &self.text[start..self.pos];
                    self.pos += 1;
                    return Some(Cow::Borrowed(s));
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        let mut out = String::from(&self.text[start..self.pos]);
        loop {
            let b = *self.bytes.get(self.pos)?;
            match b {
                b'"' => {
                    self.pos += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let e = *self.bytes.get(self.pos + 1)?;
                    self.pos += 2;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.bytes.get(self.pos..self.pos + 4)?;
                            let mut code = 0u32;
                            for &h in hex {
                                code = code << 4 | (h as char).to_digit(16)?;
                            }
                            self.pos += 4;
                            if (0xd800..0xdc00).contains(&code) {
                                // a high surrogate: only with its low one
                                let next = self.bytes.get(self.pos..self.pos + 6)?;
                                if &next[..2] != b"\\u" {
                                    return None;
                                }
                                let mut low = 0u32;
                                for &h in &next[2..] {
                                    low = low << 4 | (h as char).to_digit(16)?;
                                }
                                if !(0xdc00..0xe000).contains(&low) {
                                    return None;
                                }
                                self.pos += 6;
                                code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                            }
                            // a lone low surrogate is no char
                            char::from_u32(code)?
                        }
                        _ => return None,
                    });
                }
                0..=0x1f => return None,
                _ => {
                    // copy the run up to the next quote or backslash
                    let run = self.pos;
                    while let Some(&c) = self.bytes.get(self.pos) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        self.pos += 1;
                    }
                    out.push_str(&self.text[run..self.pos]);
                }
            }
        }
    }

    /// A number (RFC 8259 grammar); `None` for one that does not stay finite.
    pub fn number(&mut self) -> Option<Number> {
        self.ws();
        let start = self.pos;
        let digit = |r: &Self| r.bytes.get(r.pos).is_some_and(u8::is_ascii_digit);
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while digit(self) {
                    self.pos += 1;
                }
            }
            _ => return None,
        }
        // one or more digits (a fraction or an exponent needs at least one)
        let digits = |r: &mut Self| -> Option<()> {
            if !digit(r) {
                return None;
            }
            while digit(r) {
                r.pos += 1;
            }
            Some(())
        };
        let mut float = false;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            digits(self)?;
            float = true;
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            digits(self)?;
            float = true;
        }
        let slice = &self.text[start..self.pos];
        if !float {
            if let Ok(i) = slice.parse() {
                return Some(Number::Int(i));
            }
            if let Ok(u) = slice.parse() {
                return Some(Number::UInt(u));
            }
            // beyond 64 bits: a float, as orjson reads it
        }
        let f: f64 = slice.parse().ok()?;
        f.is_finite().then_some(Number::Float(f))
    }

    /// Opens an object: `{`.
    pub fn begin_object(&mut self) -> Option<()> {
        self.eat(b'{').then_some(())
    }

    /// The next key of an open object, `Ok(None)` at its `}`; `first`: no member read
    /// yet (no comma expected).
    pub fn key(&mut self, first: bool) -> Option<Option<Cow<'a, str>>> {
        if self.eat(b'}') {
            return Some(None);
        }
        if !first && !self.eat(b',') {
            return None;
        }
        let key = self.string()?;
        if !self.eat(b':') {
            return None;
        }
        Some(Some(key))
    }

    /// Opens an array: `[`.
    pub fn begin_array(&mut self) -> Option<()> {
        self.eat(b'[').then_some(())
    }

    /// Whether another item follows in an open array (`false` after its `]`).
    pub fn more(&mut self, first: bool) -> Option<bool> {
        if self.eat(b']') {
            return Some(false);
        }
        if !first && !self.eat(b',') {
            return None;
        }
        Some(true)
    }

    /// Whether `text` is one JSON value and nothing more.
    pub fn valid(text: &str) -> bool {
        let mut r = Reader::new(text);
        r.skip(0).is_some() && r.at_end()
    }

    /// Reads over any one value, checking its syntax.
    pub fn skip(&mut self, depth: usize) -> Option<()> {
        let kind = self.peek()?;
        if matches!(kind, Kind::Object | Kind::Array) && depth >= MAX_DEPTH {
            return None;
        }
        match kind {
            Kind::Object => {
                self.begin_object()?;
                let mut first = true;
                while self.key(first)?.is_some() {
                    self.skip(depth + 1)?;
                    first = false;
                }
            }
            Kind::Array => {
                self.begin_array()?;
                let mut first = true;
                while self.more(first)? {
                    self.skip(depth + 1)?;
                    first = false;
                }
            }
            Kind::String => {
                self.string()?;
            }
            Kind::Number => {
                self.number()?;
            }
            Kind::Bool => {
                self.boolean()?;
            }
            Kind::Null => self.null()?,
        }
        Some(())
    }
}

/// `ESCAPE[b]`: how a JSON string carries byte `b`, as orjson writes it: 0 = as it is;
/// `u` = `\u00xx` (lowercase hex); any other = a backslash and that letter.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `text` as a JSON string, escaped exactly as orjson escapes: `"` and `\`,
/// `\b \t \n \f \r`, the other control characters as `\u00xx`, nothing else (no
/// escape for `/`, DEL or any non-ASCII character).
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut r = Reader::new(text);
        r.skip(0).is_some() && r.at_end()
    }

    #[test]
    fn syntax() {
        for ok in [
            r#"{}"#,
            r#" { "a" : [1, -2, 3.5e-3, true, false, null, "x\"\u00e9"] } "#,
            "[]",
            "0",
            "-0",
            r#""\ud7ff""#,
        ] {
            assert!(skips(ok), "{ok}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            r#"{"a":1,}"#,
            "01",
            "1.",
            "1e",
            ".5",
            "NaN",
            "Infinity",
            "tru",
            r#""a"#,
            "\"\t\"",
            r#""\x""#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            "1e400",
            "{} x",
            r#"{"a" 1}"#,
            r#"{1:2}"#,
        ] {
            assert!(!skips(bad), "{bad}");
        }
        let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(skips(&deep(MAX_DEPTH)));
        assert!(!skips(&deep(MAX_DEPTH + 1)));
    }

    fn json_string(text: &str) -> String {
        let mut out = Vec::new();
        write_string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_orjson_escapes_them() {
        assert_eq!(json_string(""), r#""""#);
        assert_eq!(json_string("a\"b\\c/d"), r#""a\"b\\c/d""#);
        assert_eq!(json_string("\u{8}\t\n\u{c}\r"), r#""\b\t\n\f\r""#);
        assert_eq!(json_string("\u{0}\u{1f}\u{b}x"), r#""\u0000\u001f\u000bx""#);
        assert_eq!(json_string("\u{7f}é\u{2028}😀"), "\"\u{7f}é\u{2028}😀\"");
        // every escaped string reads back as the text it came from
        let all: String = (0u32..0x800).filter_map(char::from_u32).collect();
        let written = json_string(&all);
        let mut r = Reader::new(&written);
        assert_eq!(r.string().as_deref(), Some(all.as_str()));
        assert!(r.at_end());
    }

    #[test]
    fn values() {
        let mut r = Reader::new(r#"["a\nb", "plain", 12, -7, 2.5, 1E2]"#);
        r.begin_array().unwrap();
        assert!(r.more(true).unwrap());
        assert_eq!(r.string().unwrap(), "a\nb");
        assert!(r.more(false).unwrap());
        assert!(matches!(r.string().unwrap(), Cow::Borrowed("plain")));
        assert!(r.more(false).unwrap());
        assert_eq!(r.number(), Some(Number::Int(12)));
        assert!(r.more(false).unwrap());
        assert_eq!(r.number(), Some(Number::Int(-7)));
        assert!(r.more(false).unwrap());
        assert_eq!(r.number(), Some(Number::Float(2.5)));
        assert!(r.more(false).unwrap());
        assert_eq!(r.number(), Some(Number::Float(100.0)));
        assert!(!r.more(false).unwrap());
        assert!(r.at_end());
    }

    #[test]
    fn integers_beyond_64_bits_are_floats_and_surrogate_pairs_are_chars() {
        let number = |t: &str| Reader::new(t).number();
        assert_eq!(number("9223372036854775807"), Some(Number::Int(i64::MAX)));
        assert_eq!(number("18446744073709551615"), Some(Number::UInt(u64::MAX)));
        assert_eq!(
            number("18446744073709551616"),
            Some(Number::Float(18446744073709551616.0))
        );
        assert_eq!(
            number("-9223372036854775809"),
            Some(Number::Float(-9223372036854775808.0))
        );
        let mut r = Reader::new(r#""\ud83d\ude00x""#);
        assert_eq!(r.string().as_deref(), Some("😀x"));
    }
}
