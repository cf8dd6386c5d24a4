//! `Set-Cookie` rendering and `Cookie` header lookup.
//!
//! Line format (Ktor 3's order, without its `$x-enc` attribute):
//! `NAME=VALUE; Max-Age=N; Expires=<IMF-fixdate>; Domain=D; Path=P; Secure; HttpOnly; SameSite=S; Partitioned`.
//! Everything after `Expires` is fixed per registration, so it is built once (`suffix`).
//! Max-Age is clamped to 2147483647 and `Expires` is computed from the clamped value;
//! `Max-Age=0` carries no `Expires` (as Ktor). A clearing line is
//! `NAME=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT` + the same suffix.

use std::cell::Cell;
use std::time::{Duration, UNIX_EPOCH};

use crate::error::{CoreError, Result};

/// Largest Max-Age written (`Int.MAX_VALUE`, as Ktor).
pub const MAX_AGE_CLAMP: u64 = 2_147_483_647;
/// Largest `Set-Cookie` line accepted, in bytes.
pub const MAX_COOKIE_LINE: usize = 4096;

/// The fixed attributes of one cookie registration.
#[derive(Debug, Clone, Default)]
pub struct CookieAttributes {
    /// `Domain`, if any.
    pub domain: Option<String>,
    /// `Path`.
    pub path: String,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite` value (`Strict`, `Lax`, `None`), if any.
    pub same_site: Option<String>,
    /// `Partitioned`.
    pub partitioned: bool,
}

/// A cookie name and the pieces of its `Set-Cookie` line that never change.
#[derive(Debug, Clone)]
pub struct CookieSpec {
    name: String,
    prefix: String,
    suffix: String,
    clear_line: String,
}

/// True for a valid cookie or header name (an RFC 7230 token).
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

fn check_attr(what: &str, value: &str) -> Result<()> {
    if value
        .bytes()
        .any(|b| b == b';' || b == b',' || b.is_ascii_control() || b >= 0x7f)
    {
        return Err(CoreError::Config(format!(
            "{what} {value:?} holds ';', ',', a control or a non-ASCII character"
        )));
    }
    Ok(())
}

impl CookieSpec {
    /// Builds the fixed parts once.
    pub fn new(name: &str, attrs: &CookieAttributes) -> Result<Self> {
        if !is_token(name) {
            return Err(CoreError::Config(format!(
                "{name:?} is not a valid cookie name: use letters, digits and !#$%&'*+-.^_`|~"
            )));
        }
        let mut suffix = String::new();
        if let Some(domain) = &attrs.domain {
            check_attr("domain", domain)?;
            suffix.push_str("; Domain=");
            suffix.push_str(domain);
        }
        check_attr("path", &attrs.path)?;
        suffix.push_str("; Path=");
        suffix.push_str(&attrs.path);
        if attrs.secure {
            suffix.push_str("; Secure");
        }
        if attrs.http_only {
            suffix.push_str("; HttpOnly");
        }
        if let Some(same_site) = &attrs.same_site {
            suffix.push_str("; SameSite=");
            suffix.push_str(same_site);
        }
        if attrs.partitioned {
            suffix.push_str("; Partitioned");
        }
        let clear_line =
            format!("{name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{suffix}");
        Ok(Self {
            name: name.to_owned(),
            prefix: format!("{name}="),
            suffix,
            clear_line,
        })
    }

    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The line that makes the browser drop the cookie.
    pub fn clear_line(&self) -> &str {
        &self.clear_line
    }

    /// The whole `Set-Cookie` value for an already-encoded cookie value.
    pub fn render(&self, encoded: &str, max_age: Option<u64>, now: u64) -> Result<String> {
        let line = self.render_with(max_age, now, encoded.len(), |line| {
            line.extend_from_slice(encoded.as_bytes());
            Ok(())
        })?;
        String::from_utf8(line)
            .map_err(|_| CoreError::Encoding("a cookie line that is not UTF-8".into()))
    }

    /// Like [`CookieSpec::render`], as the bytes of the line, with the cookie value
    /// written by `value` straight into it (no string of its own); `size`: about how
    /// long it is.
    pub fn render_with(
        &self,
        max_age: Option<u64>,
        now: u64,
        size: usize,
        value: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<Vec<u8>> {
        let mut line: Vec<u8> =
            Vec::with_capacity(self.prefix.len() + size + self.suffix.len() + 64);
        line.extend_from_slice(self.prefix.as_bytes());
        value(&mut line)?;
        if let Some(age) = max_age {
            let age = age.min(MAX_AGE_CLAMP);
            line.extend_from_slice(b"; Max-Age=");
            line.extend_from_slice(itoa::Buffer::new().format(age).as_bytes());
            if age > 0 {
                line.extend_from_slice(b"; Expires=");
                http_date_into(&mut line, now.saturating_add(age));
            }
        }
        line.extend_from_slice(self.suffix.as_bytes());
        if line.len() > MAX_COOKIE_LINE {
            return Err(CoreError::TooLarge {
                size: line.len(),
                limit: MAX_COOKIE_LINE,
            });
        }
        Ok(line)
    }
}

/// An IMF-fixdate is this long (`Thu, 01 Jan 1970 00:00:00 GMT`).
const HTTP_DATE_LEN: usize = 29;

thread_local! {
    /// The last date formatted on this thread: consecutive responses mostly fall in
    /// the same second.
    static LAST_DATE: Cell<(u64, [u8; HTTP_DATE_LEN])> = const { Cell::new((u64::MAX, [0; HTTP_DATE_LEN])) };
}

/// Appends `secs` (since the Unix epoch) as an IMF-fixdate.
fn http_date_into(out: &mut Vec<u8>, secs: u64) {
    LAST_DATE.with(|last| {
        let (at, text) = last.get();
        if at == secs {
            out.extend_from_slice(&text);
            return;
        }
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        out.extend_from_slice(date.as_bytes());
        // every date up to year 9999 is this long; others are not remembered
        if let Ok(text) = <[u8; HTTP_DATE_LEN]>::try_from(date.as_bytes()) {
            last.set((secs, text));
        }
    });
}

/// The value of the first cookie called `name` in a `Cookie` header (browsers send
/// the most specific path first, so the first one wins). Surrounding double quotes are
/// kept: the encoding decides what they mean.
pub fn find_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    for pair in header.split(';') {
        let pair = pair.trim_matches(|c: char| c == ' ' || c == '\t');
        if let Some(rest) = pair.strip_prefix(name) {
            if let Some(value) = rest.strip_prefix('=') {
                return Some(value.trim_matches(|c: char| c == ' ' || c == '\t'));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> CookieAttributes {
        CookieAttributes {
            path: "/".into(),
            http_only: true,
            same_site: Some("Lax".into()),
            ..Default::default()
        }
    }

    #[test]
    fn renders_default_line() {
        let spec = CookieSpec::new("S", &defaults()).unwrap();
        let line = spec.render("v", Some(604_800), 0).unwrap();
        assert_eq!(
            line,
            "S=v; Max-Age=604800; Expires=Thu, 08 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            spec.clear_line(),
            "S=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            spec.render("v", None, 0).unwrap(),
            "S=v; Path=/; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            spec.render("v", Some(0), 5).unwrap(),
            "S=v; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn clamps_max_age() {
        let spec = CookieSpec::new("S", &defaults()).unwrap();
        let line = spec.render("v", Some(u64::MAX), 0).unwrap();
        assert!(line.contains("Max-Age=2147483647; Expires=Tue, 19 Jan 2038 03:14:07 GMT"));
    }

    #[test]
    fn expires_from_the_remembered_date_is_the_formatted_one() {
        let spec = CookieSpec::new("S", &defaults()).unwrap();
        // the same second twice (the second from the thread's remembered date), then
        // the next one, then an earlier one, then the first again
        for now in [
            1_764_000_000,
            1_764_000_000,
            1_764_000_001,
            5,
            1_764_000_000,
        ] {
            let line = spec.render("v", Some(60), now).unwrap();
            let when = UNIX_EPOCH + Duration::from_secs(now + 60);
            let want = format!("; Expires={};", httpdate::fmt_http_date(when));
            assert!(line.contains(&want), "{line} lacks {want}");
        }
    }

    #[test]
    fn all_attributes_in_order() {
        let attrs = CookieAttributes {
            domain: Some("example.com".into()),
            path: "/shop".into(),
            secure: true,
            http_only: true,
            same_site: Some("None".into()),
            partitioned: true,
        };
        let spec = CookieSpec::new("C", &attrs).unwrap();
        assert_eq!(
            spec.render("x", None, 0).unwrap(),
            "C=x; Domain=example.com; Path=/shop; Secure; HttpOnly; SameSite=None; Partitioned"
        );
    }

    #[test]
    fn refuses_bad_names_and_large_lines() {
        assert!(CookieSpec::new("a b", &defaults()).is_err());
        assert!(CookieSpec::new("", &defaults()).is_err());
        assert!(CookieSpec::new("a;b", &defaults()).is_err());
        let spec = CookieSpec::new("S", &defaults()).unwrap();
        let big = "x".repeat(4096);
        assert!(matches!(
            spec.render(&big, None, 0),
            Err(CoreError::TooLarge { .. })
        ));
    }

    #[test]
    fn finds_first_cookie() {
        assert_eq!(find_cookie("a=1; S=2; S=3", "S"), Some("2"));
        assert_eq!(find_cookie("SS=1; S=2", "S"), Some("2"));
        assert_eq!(find_cookie("a=1", "S"), None);
        assert_eq!(find_cookie("S=", "S"), Some(""));
        assert_eq!(find_cookie("S", "S"), None);
        assert_eq!(find_cookie("  S = x", "S"), None);
    }
}
