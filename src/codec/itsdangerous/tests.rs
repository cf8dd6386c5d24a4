//! Tests of the itsdangerous formats (vectors from the Python reference).

use super::*;

const SECRET: &[u8] = b"s3cr3t-key";
const TS: u64 = 1_700_000_000;

/// §3.4 of the peers' research: `{"user":"alice","n":1}`, ts 1700000000.
const STARLETTE_VECTOR: &str =
    "eyJ1c2VyIjogImFsaWNlIiwgIm4iOiAxfQ==.ZVPxAA.EzISTvwV8eo5dug5e1HkDOkiW5g";
const FLASK_VECTOR: &str = "eyJuIjoxLCJ1c2VyIjoiYWxpY2UifQ.ZVPxAA.KDxxEGIyBLMSlZf2NCJWcGhKNzY";
const FLASK_COMPRESSED_VECTOR: &str =
    ".eJyrVqpQslJKHCZAqRYAn1xN-w.ZVPxAA.KLhQG0MTr9-UdPH10zReblHcZBE";

fn starlette() -> StarletteCodec {
    StarletteCodec::new(&[SECRET.to_vec()], Some(14 * 86_400), b"session".to_vec()).unwrap()
}

fn flask() -> FlaskCodec {
    FlaskCodec::new(&[SECRET.to_vec()], b"cookie-session", KeyDerivation::Hmac).unwrap()
}

#[test]
fn timestamps() {
    assert_eq!(encode_timestamp(TS), "ZVPxAA");
    assert_eq!(decode_timestamp(b"ZVPxAA"), Some(TS));
    assert_eq!(encode_timestamp(0), "");
    assert_eq!(decode_timestamp(b""), Some(0));
    assert_eq!(decode_timestamp(b"AQ"), Some(1));
    assert_eq!(decode_timestamp(b"AQ=="), Some(1));
    assert_eq!(
        decode_timestamp(encode_timestamp(u64::MAX).as_bytes()),
        Some(u64::MAX)
    );
    assert_eq!(decode_timestamp(b"AAAAAAAAAAAA"), None); // 9 bytes
    assert_eq!(decode_timestamp(b"!!"), None);
}

#[test]
fn key_derivations() {
    let salt = b"itsdangerous.Signer";
    // hashlib.sha1(b"itsdangerous.Signer" + b"signer" + b"s3cr3t-key").hexdigest()
    assert_eq!(
        hex::encode(KeyDerivation::DjangoConcat.derive(salt, SECRET)),
        "57d905e8bef1a0d60dd95606e66ecb260aa9d4a1"
    );
    // hmac.new(b"s3cr3t-key", b"cookie-session", hashlib.sha1).hexdigest()
    assert_eq!(
        hex::encode(KeyDerivation::Hmac.derive(b"cookie-session", SECRET)),
        "fbbf7ca9de28bb2e34b6358f652c24f22dcefc98"
    );
    assert_eq!(KeyDerivation::None.derive(salt, SECRET), SECRET);
    assert_eq!(KeyDerivation::parse("hmac").unwrap(), KeyDerivation::Hmac);
    assert!(KeyDerivation::parse("sha1").is_err());
}

#[test]
fn starlette_vector() {
    let c = starlette();
    let json = br#"{"user": "alice", "n": 1}"#;
    assert_eq!(c.write(json, TS), STARLETTE_VECTOR);
    let (read, reissue) = c.read_value(STARLETTE_VECTOR.as_bytes(), TS + 10).unwrap();
    assert_eq!(read, json);
    assert!(!reissue);
    // 14 days later it is still valid, one second more and it is expired
    assert!(c
        .read_value(STARLETTE_VECTOR.as_bytes(), TS + 14 * 86_400)
        .is_some());
    assert!(c
        .read_value(STARLETTE_VECTOR.as_bytes(), TS + 14 * 86_400 + 1)
        .is_none());
    // a timestamp from the future is expired (itsdangerous: age < 0)
    assert!(c.read_value(STARLETTE_VECTOR.as_bytes(), TS - 1).is_none());
    // without max_age any age goes
    let forever = StarletteCodec::new(&[SECRET.to_vec()], None, b"session".to_vec()).unwrap();
    assert!(forever.read_value(STARLETTE_VECTOR.as_bytes(), 0).is_some());
}

#[test]
fn flask_vectors() {
    let c = flask();
    let json = br#"{"n":1,"user":"alice"}"#;
    assert_eq!(c.write(json, TS, 0), FLASK_VECTOR);
    let (read, _) = c
        .read(FLASK_VECTOR.as_bytes(), Some(31 * 86_400), TS)
        .unwrap();
    assert_eq!(read, json);
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(200));
    let (read, _) = c
        .read(FLASK_COMPRESSED_VECTOR.as_bytes(), Some(60), TS + 60)
        .unwrap();
    assert_eq!(read, big.as_bytes());
    assert!(c
        .read(FLASK_COMPRESSED_VECTOR.as_bytes(), Some(60), TS + 61)
        .is_none());
    // our own compressed writing reads back, and starts with the '.' marker
    let ours = c.write(big.as_bytes(), TS, 0);
    // below the threshold it is not even tried
    assert!(!c.write(big.as_bytes(), TS, big.len() + 1).starts_with('.'));
    assert!(ours.starts_with('.'));
    assert_eq!(c.read(ours.as_bytes(), None, TS).unwrap().0, big.as_bytes());
}

#[test]
fn fallback_keys_verify_and_ask_for_reissue() {
    let old = flask();
    let rotated = FlaskCodec::new(
        &[b"new-key".to_vec(), SECRET.to_vec()],
        b"cookie-session",
        KeyDerivation::Hmac,
    )
    .unwrap();
    let (_, reissue) = rotated.read(FLASK_VECTOR.as_bytes(), None, TS).unwrap();
    assert!(reissue);
    let fresh = rotated.write(b"{}", TS, 0);
    assert!(!rotated.read(fresh.as_bytes(), None, TS).unwrap().1);
    assert!(old.read(fresh.as_bytes(), None, TS).is_none());
    // other salts and derivations make other keys
    let other_salt = FlaskCodec::new(&[SECRET.to_vec()], b"other", KeyDerivation::Hmac).unwrap();
    assert!(other_salt.read(FLASK_VECTOR.as_bytes(), None, TS).is_none());
}

#[test]
fn tampering_is_rejected() {
    let c = starlette();
    let good = STARLETTE_VECTOR.as_bytes();
    assert!(c.read_value(good, TS).is_some());
    for i in 0..good.len() {
        let mut bad = good.to_vec();
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        // flipping the padding's '=' or a trailing bit may decode to the same bytes
        if let Some((json, _)) = c.read_value(&bad, TS) {
            assert_eq!(json, br#"{"user": "alice", "n": 1}"#, "index {i}");
        }
    }
    for junk in [
        &b""[..],
        b".",
        b"..",
        b"a.b.c",
        b"noseparator",
        &good[..good.len() - 1],
        b"eyJ1c2VyIjogImFsaWNlIiwgIm4iOiAxfQ==.ZVPxAA",
    ] {
        assert!(c.read_value(junk, TS).is_none(), "{junk:?}");
    }
    // a Flask cookie is not a Starlette cookie with the same secret
    assert!(c.read_value(FLASK_VECTOR.as_bytes(), TS).is_none());
}

#[test]
fn starlette_cookie_parsing() {
    let pick = |h: &str| starlette_cookie(h.as_bytes(), b"session").map(|v| v.into_owned());
    assert_eq!(pick("session=abc"), Some(b"abc".to_vec()));
    assert_eq!(pick(" a=1; session = abc ;b=2"), Some(b"abc".to_vec()));
    // the last one wins, as in Starlette's dict
    assert_eq!(pick("session=1; session=2"), Some(b"2".to_vec()));
    assert_eq!(pick("session=1;session=2;"), Some(b"2".to_vec()));
    assert_eq!(pick("a=b=c; session=x=y"), Some(b"x=y".to_vec()));
    let long = format!(
        "{}={}; session={}; z={}",
        "a".repeat(30),
        "b".repeat(17),
        "v".repeat(41),
        "c".repeat(9)
    );
    assert_eq!(pick(&long), Some(b"v".repeat(41)));
    assert_eq!(
        pick(&format!("session={};{}", "w".repeat(23), "x".repeat(13))),
        Some(b"w".repeat(23))
    );
    assert_eq!(pick("sessions=1; xsession=2"), None);
    assert_eq!(pick("session"), None);
    assert_eq!(pick(""), None);
    assert_eq!(pick("session="), Some(b"".to_vec()));
    // quoted values are unquoted like http.cookies._unquote
    assert_eq!(pick(r#"session="a\"b\073c""#), Some(b"a\"b;c".to_vec()));
    assert_eq!(pick(r#"session="abc"#), Some(b"\"abc".to_vec()));
    // str.strip() whitespace includes \x1c-\x1f, \x85 and \xa0 (latin-1)
    assert_eq!(
        starlette_cookie(b"\xa0session\x1f=\x85v\x0b", b"session").map(|v| v.into_owned()),
        Some(b"v".to_vec())
    );
    // an empty name matches chunks without '='
    assert_eq!(
        starlette_cookie(b"a=1; lonely", b"").map(|v| v.into_owned()),
        Some(b"lonely".to_vec())
    );
}

#[test]
fn reads_from_a_header() {
    let c = starlette();
    let header = format!("theme=dark; session={STARLETTE_VECTOR}; lang=en");
    assert!(c.read(header.as_bytes(), TS).is_some());
    assert!(c.read(b"theme=dark", TS).is_none());
    let quoted = format!("session=\"{STARLETTE_VECTOR}\"");
    assert!(c.read(quoted.as_bytes(), TS).is_some());
}

#[test]
fn payloads() {
    assert_eq!(starlette_payload(b"{}"), "e30=");
    assert_eq!(starlette_open(b"e30=").unwrap(), b"{}");
    assert_eq!(starlette_open(b"e30").unwrap(), b"{}");
    assert!(starlette_open(b"e3-=").is_none());
    assert_eq!(flask_payload(b"{}", 0), "e30");
    assert_eq!(flask_open(b"e30").unwrap(), b"{}");
    assert!(flask_open(b".e30").is_none()); // not a zlib stream
    assert!(flask_open(b"!").is_none());
}

#[test]
fn werkzeug_cookie_parsing() {
    let pick = |h: &str| werkzeug_cookie(h.as_bytes(), b"session").map(|v| v.into_owned());
    assert_eq!(pick("session=abc"), Some(b"abc".to_vec()));
    assert_eq!(pick("a=1; session = abc ;b=2"), Some(b"abc".to_vec()));
    // the first one wins, as MultiDict.get
    assert_eq!(pick("session=1; session=2"), Some(b"1".to_vec()));
    assert_eq!(pick("session"), Some(b"".to_vec()));
    assert_eq!(pick("session=; x=1"), Some(b"".to_vec()));
    assert_eq!(pick("sessions=1; xsession=2"), None);
    assert_eq!(pick(""), None);
    // an item that does not match is skipped up to the next ';'
    assert_eq!(pick("session=a b; session=c"), Some(b"c".to_vec()));
    assert_eq!(pick("bad\"key=1; session=ok"), Some(b"ok".to_vec()));
    assert_eq!(pick("session=\"a\"b; session=d"), Some(b"d".to_vec()));
    assert_eq!(pick("a=b=c; session=v"), Some(b"v".to_vec()));
    assert_eq!(pick(r#"session="a\"b\073c""#), Some(b"a\"b;c".to_vec()));
    assert_eq!(pick("session=\"abc"), None);
    assert_eq!(pick(" \tsession\t=\tv\t;"), Some(b"v".to_vec()));
}

#[test]
fn hints() {
    assert_eq!(json_hints(br#"{"a": [1, 2.5, "x"]}"#), JsonHints::default());
    assert!(json_hints(b"[1234567890123456789]").exotic_numbers);
    assert!(!json_hints(b"[123456789012345678]").exotic_numbers);
    assert!(!json_hints(br#"["1234567890123456789"]"#).exotic_numbers);
    assert!(json_hints(b"[NaN]").exotic_numbers);
    assert!(json_hints(b"[-Infinity]").exotic_numbers);
    assert!(!json_hints(br#"["NaN"]"#).exotic_numbers);
    assert!(json_hints(br#"{" t": [1]}"#).space_strings);
    assert!(json_hints(br#"{"\u0020t": [1]}"#).space_strings);
    assert!(!json_hints(br#"{"t ": "a b"}"#).space_strings);
    assert!(!json_hints(br#"{"a\" b": 1}"#).space_strings);
}

#[test]
fn hints_on_long_strings_and_escapes() {
    // strings longer than a word, an escape or a quote at every offset in a word
    for pad in 0..20 {
        let p = "x".repeat(pad);
        let text = format!(r#"{{"k{p}": "{p}\"{p}N{p}", "n{p}": 12345678901234567{pad:02}}}"#);
        assert!(json_hints(text.as_bytes()).exotic_numbers, "{text}");
        let text = format!(r#"{{"k{p}": "{p}\\{p}I1234567890123456789{p}", "n": [1]}}"#);
        assert_eq!(json_hints(text.as_bytes()), JsonHints::default(), "{text}");
        let text = format!(r#"["{p}", " t{p}", "{p}"]"#);
        assert!(json_hints(text.as_bytes()).space_strings, "{text}");
        let text = format!(r#"["{p}NaN{p}\"", NaN]"#);
        assert!(json_hints(text.as_bytes()).exotic_numbers, "{text}");
        let text = format!(r#"["{p}\"]", 1]"#);
        assert_eq!(json_hints(text.as_bytes()), JsonHints::default(), "{text}");
        // unterminated: no panic
        let _ = json_hints(format!(r#"["{p}\"#).as_bytes());
    }
}

#[test]
fn the_quick_exotic_test_agrees_with_the_scan() {
    let mut texts = vec![
        r#"{"user": "ada.lovelace@example.com", "items": ["sku-10001"], "visits": 42}"#.to_string(),
    ];
    for pad in 0..12 {
        let p = " ".repeat(pad);
        for n in [
            "1234567890123456789",
            "123456789012345678",
            "NaN",
            "-Infinity",
            "1e5",
        ] {
            texts.push(format!("[{p}{n}]"));
            texts.push(format!("[{p}{n}, 1]"));
            texts.push(format!(r#"["{p}{n}", 1]"#));
            texts.push(format!("{p}{n}"));
        }
    }
    for text in &texts {
        let t = text.as_bytes();
        assert_eq!(exotic_numbers(t), json_hints(t).exotic_numbers, "{text}");
    }
    assert!(all_digits(u64::from_ne_bytes(*b"01234567")));
    assert!(all_digits(u64::from_ne_bytes(*b"99999999")));
    for bad in [b'/', b':', 0, 0x80, 0xb0, 0xb9, 0xff, b'a'] {
        for at in 0..8 {
            let mut w = *b"12345678";
            w[at] = bad;
            assert!(!all_digits(u64::from_ne_bytes(w)), "{bad} at {at}");
        }
    }
}

#[test]
fn find_byte_at_every_offset() {
    for len in 0..40 {
        let hay = vec![b'a'; len];
        assert_eq!(find_byte(&hay, b';'), None);
        for at in 0..len {
            let mut hay = hay.clone();
            hay[at] = b';';
            if at + 3 < len {
                hay[at + 3] = b';';
            }
            assert_eq!(find_byte(&hay, b';'), Some(at));
            // bytes that differ from ';' by one bit, or are 0x80 more, never match
            for other in [b';' ^ 1, b';' ^ 0x80, 0, 0xff] {
                hay[at] = other;
                let want = (at + 3 < len).then_some(at + 3);
                assert_eq!(find_byte(&hay, b';'), want);
            }
        }
    }
}
