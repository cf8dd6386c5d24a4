//! One registered session's wire codec: transport + encoding + transformer chain.
//! `read_*` turn what came in into the serialized payload; `write` turns a payload
//! into the whole `Set-Cookie` line (or header value) in one call.

use super::chain::Chain;
use super::clocks::{self, Alive, Lifetimes};
use super::cookie::{find_cookie, CookieSpec};
use super::encoding::Encoding;
use super::{Context, Opened};
use crate::error::{CoreError, Result};

/// Largest header value accepted for the header transport, in bytes.
pub const MAX_HEADER_VALUE: usize = 8192;

/// Where the value travels.
#[derive(Debug, Clone)]
pub enum Transport {
    /// In a cookie with these attributes.
    Cookie(CookieSpec),
    /// In a request / response header of the session's name.
    Header,
}

/// What a request carried for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Nothing of that name came in.
    Absent,
    /// Something came in but did not decode or verify.
    Invalid,
    /// A verified payload.
    Valid(Opened),
    /// A verified payload whose clocks (registrations with lifetimes) say it is alive.
    Clocked(Opened, Alive),
}

/// The codec of one registration.
#[derive(Debug, Clone)]
pub struct SessionCodec {
    name: String,
    transport: Transport,
    encoding: Encoding,
    chain: Chain,
    lifetimes: Option<Lifetimes>,
}

impl SessionCodec {
    /// A codec for a session called `name`.
    pub fn new(name: &str, transport: Transport, encoding: Encoding, chain: Chain) -> Self {
        Self {
            name: name.to_owned(),
            transport,
            encoding,
            chain,
            lifetimes: None,
        }
    }

    /// Values of this codec carry their clocks (see `codec::clocks`), checked on read.
    pub fn with_lifetimes(mut self, lifetimes: Lifetimes) -> Self {
        self.lifetimes = Some(lifetimes);
        self
    }

    /// The registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decodes and verifies one wire value.
    pub fn read_value(&self, raw: &str, now: u64) -> Incoming {
        let Some(decoded) = self.encoding.decode(raw) else {
            return Incoming::Invalid;
        };
        let ctx = Context {
            name: &self.name,
            now,
        };
        let Some(opened) = self.chain.read(&decoded, &ctx) else {
            return Incoming::Invalid;
        };
        let Some(lifetimes) = &self.lifetimes else {
            return Incoming::Valid(opened);
        };
        match clocks::open(&self.name, &opened.value, lifetimes, now) {
            Some((payload, alive)) => Incoming::Clocked(
                Opened {
                    value: payload.to_owned(),
                    reissue: opened.reissue,
                },
                alive,
            ),
            None => Incoming::Invalid,
        }
    }

    /// Finds this session's cookie in a `Cookie` header and reads it.
    pub fn read_cookie(&self, header: &str, now: u64) -> Incoming {
        match find_cookie(header, &self.name) {
            None => Incoming::Absent,
            Some(raw) => self.read_value(raw, now),
        }
    }

    /// Only the encoding step of a read (for chains that run partly in Python).
    pub fn decode(&self, raw: &str) -> Option<String> {
        self.encoding.decode(raw)
    }

    /// Transforms, encodes and renders a payload: the `Set-Cookie` value for a cookie
    /// session, the header value for a header session.
    pub fn write(&self, payload: &str, max_age: Option<u64>, now: u64) -> Result<String> {
        ascii_line(self.write_line(payload, max_age, now)?)
    }

    /// [`SessionCodec::write`] as the bytes of the line (ASCII: every encoding writes
    /// ASCII, and the cookie attributes are checked to be).
    pub fn write_line(&self, payload: &str, max_age: Option<u64>, now: u64) -> Result<Vec<u8>> {
        let ctx = Context {
            name: &self.name,
            now,
        };
        let transformed = self.chain.write(payload, &ctx)?;
        self.render_line(&transformed, max_age, now)
    }

    /// Like `write` for a value framed with its clocks (`last_seen` = `now`).
    pub fn write_clocked(
        &self,
        payload: &str,
        created: u64,
        deadline: Option<u64>,
        max_age: Option<u64>,
        now: u64,
    ) -> Result<String> {
        self.write(
            &clocks::wrap(&self.name, created, now, deadline, payload),
            max_age,
            now,
        )
    }

    /// Checks the clocks in front of an already un-transformed `text` (for chains that
    /// run partly in Python): the payload and what is alive, or `None`.
    /// `seen`: a later use the storage knows of (see [`clocks::open_seen`]).
    pub fn open_clocks<'a>(
        &self,
        text: &'a str,
        now: u64,
        seen: Option<u64>,
    ) -> Option<(&'a str, Alive)> {
        clocks::open_seen(&self.name, text, self.lifetimes.as_ref()?, now, seen)
    }

    /// Checks a stored record's clocks (see [`clocks::open_stored`]).
    pub fn open_stored<'a>(
        &self,
        text: &'a str,
        now: u64,
        left: Option<f64>,
    ) -> Option<(&'a str, Alive)> {
        clocks::open_stored(&self.name, text, self.lifetimes.as_ref()?, now, left)
    }

    /// Frames `payload` with its clocks (`last_seen` = `now`), before the chain.
    pub fn wrap_clocks(
        &self,
        payload: &str,
        created: u64,
        deadline: Option<u64>,
        now: u64,
    ) -> String {
        clocks::wrap(&self.name, created, now, deadline, payload)
    }

    /// Encodes and renders an already transformed value.
    pub fn render(&self, transformed: &str, max_age: Option<u64>, now: u64) -> Result<String> {
        ascii_line(self.render_line(transformed, max_age, now)?)
    }

    /// [`SessionCodec::render`] as the bytes of the line.
    pub fn render_line(
        &self,
        transformed: &str,
        max_age: Option<u64>,
        now: u64,
    ) -> Result<Vec<u8>> {
        match &self.transport {
            Transport::Cookie(spec) => {
                let encoding = self.encoding;
                spec.render_with(max_age, now, transformed.len() * 3, |line| {
                    encoding.encode_into(line, transformed)
                })
            }
            Transport::Header => {
                let encoded = self.encoding.encode_header(transformed)?;
                if encoded.len() > MAX_HEADER_VALUE {
                    Err(CoreError::TooLarge {
                        size: encoded.len(),
                        limit: MAX_HEADER_VALUE,
                    })
                } else {
                    Ok(encoded.into_bytes())
                }
            }
        }
    }

    /// The clearing `Set-Cookie` line (`None` for the header transport).
    pub fn clear_line(&self) -> Option<&str> {
        match &self.transport {
            Transport::Cookie(spec) => Some(spec.clear_line()),
            Transport::Header => None,
        }
    }
}

/// A rendered line as text.
fn ascii_line(line: Vec<u8>) -> Result<String> {
    String::from_utf8(line)
        .map_err(|_| CoreError::Encoding("a header line that is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::codec::cookie::CookieAttributes;
    use crate::codec::mac::{MacAlgorithm, MessageAuthentication};

    fn signed() -> SessionCodec {
        let mac =
            MessageAuthentication::new(vec![vec![9; 32]], MacAlgorithm::Sha256, None).unwrap();
        let attrs = CookieAttributes {
            path: "/".into(),
            http_only: true,
            same_site: Some("Lax".into()),
            ..Default::default()
        };
        SessionCodec::new(
            "S",
            Transport::Cookie(CookieSpec::new("S", &attrs).unwrap()),
            Encoding::Uri,
            Chain::new(vec![Arc::new(mac)]),
        )
    }

    #[test]
    fn round_trip_through_a_cookie_header() {
        let codec = signed();
        let line = codec.write(r#"{"a":"b c"}"#, Some(60), 0).unwrap();
        let value = line.strip_prefix("S=").unwrap().split(';').next().unwrap();
        let header = format!("x=1; S={value}; y=2");
        match codec.read_cookie(&header, 0) {
            Incoming::Valid(o) => assert_eq!(o.value, r#"{"a":"b c"}"#),
            other => panic!("{other:?}"),
        }
        assert_eq!(codec.read_cookie("x=1", 0), Incoming::Absent);
        assert_eq!(codec.read_cookie("S=garbage", 0), Incoming::Invalid);
        assert_eq!(codec.read_cookie("S=%ZZ", 0), Incoming::Invalid);
        assert_eq!(codec.read_cookie("S=", 0), Incoming::Invalid);
    }

    #[test]
    fn header_transport_limit() {
        let codec = SessionCodec::new("X-S", Transport::Header, Encoding::Raw, Chain::default());
        assert_eq!(codec.write("abc", None, 0).unwrap(), "abc");
        assert!(codec.write(&"a".repeat(8193), None, 0).is_err());
        assert!(codec.clear_line().is_none());
    }
}
