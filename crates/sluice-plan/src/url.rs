//! Health check targets: `http:` URLs and `tcp:` addresses, built from templates and checked.
//!
//! A value inserted into a URL is written for the part it lands in ([`place`]): in the host or
//! port it must be a host name, an address or a number (anything else is refused per host); in
//! the path, query or fragment it is percent-encoded, so a value can never add a header line
//! (`\r\n`), a query parameter or a path segment. A reference before `://` is refused: the
//! plan must write the scheme and host itself, or insert a whole URL with `{{raw …}}`.
//!
//! The rendered URL is then checked whole ([`check_url`]): `http://` or `https://`, a host, an
//! optional port 1-65535, no user name or password, no fragment, and nothing but printable
//! ASCII. A `tcp:` address must be `HOST:PORT` ([`check_tcp`]).

use crate::template::{Insert, Part, Reference, Template};

/// Why a URL or address is not acceptable. The messages name no host, so one problem shared by
/// many hosts is reported once, with the hosts it affects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum TargetProblem {
    #[error("the URL does not start with http:// or https://")]
    NoScheme,
    #[error("the URL scheme `{scheme}` is not supported; use http:// or https://")]
    Scheme { scheme: String },
    #[error("the URL has no host after `://`")]
    NoHost,
    #[error("the URL's host `{host}` is not a host name or an address")]
    BadHost { host: String },
    #[error("`{port}` is not a port (1-65535)")]
    BadPort { port: String },
    #[error("the URL carries a user name or password (`…@`), which the plan artifact would store")]
    UserInfo,
    #[error("the URL has a `#fragment`, which is never sent to a server")]
    Fragment,
    #[error("it contains a control character such as a line break (byte {byte:#04x})")]
    ControlCharacter { byte: u8 },
    #[error("it contains a space")]
    Space,
    #[error("it contains a character that is not ASCII")]
    NonAscii,
    #[error("`{reference}` is {value:?}, which cannot go in the host or port of a URL")]
    AuthorityValue { reference: String, value: String },
    #[error("the address has no port; a tcp check connects to HOST:PORT")]
    NoPort,
}

impl TargetProblem {
    /// How to fix it, when a hint helps.
    pub fn help(&self) -> Option<&'static str> {
        Some(match self {
            TargetProblem::NoScheme | TargetProblem::Scheme { .. } | TargetProblem::NoHost => {
                "write the URL as http://HOST[:PORT]/PATH, e.g. `http://{{host.address}}:8080/healthz`"
            }
            TargetProblem::UserInfo => "remove the credentials from the URL",
            TargetProblem::Fragment => "remove the `#…` part",
            TargetProblem::Space => "write a space in a URL as %20",
            TargetProblem::NonAscii | TargetProblem::ControlCharacter { .. } => {
                "percent-encode it in the plan, or check the value that brought it in"
            }
            TargetProblem::NoPort => "write HOST:PORT, e.g. `{{host.address}}:443`",
            TargetProblem::BadHost { .. } => "write an IPv6 address in brackets: `[::1]`",
            TargetProblem::BadPort { .. } | TargetProblem::AuthorityValue { .. } => return None,
        })
    }
}

/// A reference in a URL that cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stands before `://`, where a value would decide the URL's scheme and host")]
pub struct SchemeReference;

impl SchemeReference {
    pub fn help(reference: &Reference) -> String {
        format!(
            "write the scheme and host in the plan (`http://{{{{host.address}}}}:8080/…`), or insert a whole URL with `{{{{raw {reference}}}}}` (it is still checked)"
        )
    }
}

/// The part of a URL a template position is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    Scheme,
    Authority,
    Rest,
}

/// Sets how each reference of an `http:` template is inserted; returns the references (by
/// index in [`Template::references`]) that stand where no value may.
pub fn place(template: &mut Template) -> Vec<(usize, SchemeReference)> {
    let mut part = UrlPart::Scheme;
    let mut refused = Vec::new();
    let mut index = 0;
    for p in &mut template.parts {
        match p {
            Part::Literal(text) => {
                let mut rest = text.as_str();
                while let Some(c) = rest.chars().next() {
                    let mut consumed = c.len_utf8();
                    part = match (part, c) {
                        (UrlPart::Scheme, ':') if rest.starts_with("://") => {
                            consumed = 3;
                            UrlPart::Authority
                        }
                        (UrlPart::Authority, '/' | '?' | '#') => UrlPart::Rest,
                        (p, _) => p,
                    };
                    rest = &rest[consumed..];
                }
            }
            Part::Ref(r) => {
                r.insert = match part {
                    UrlPart::Scheme => {
                        if !r.raw {
                            refused.push((index, SchemeReference));
                        }
                        // After a raw URL prefix the parts are unknown: encoding is the safe
                        // choice for what follows.
                        part = UrlPart::Rest;
                        Insert::UrlComponent
                    }
                    UrlPart::Authority => Insert::UrlAuthority,
                    UrlPart::Rest => Insert::UrlComponent,
                };
                index += 1;
            }
        }
    }
    refused
}

/// Sets every reference of a `tcp:` template to be inserted as it is.
pub fn place_tcp(template: &mut Template) {
    for r in template.references_mut() {
        r.insert = Insert::Verbatim;
    }
}

/// Writes `value` percent-encoded: every byte but the unreserved `A-Z a-z 0-9 - . _ ~`.
pub fn percent_encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// A value for the host or port of a URL: a name, an IPv4 or bracketed IPv6 address, a port.
pub fn check_authority_value(r: &Reference, value: &str) -> Result<(), TargetProblem> {
    let fits = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b));
    if fits {
        Ok(())
    } else {
        Err(TargetProblem::AuthorityValue {
            reference: r.to_string(),
            value: value.to_string(),
        })
    }
}

fn check_characters(text: &str) -> Result<(), TargetProblem> {
    for b in text.bytes() {
        match b {
            b' ' => return Err(TargetProblem::Space),
            0..=0x1f | 0x7f => return Err(TargetProblem::ControlCharacter { byte: b }),
            0x80.. => return Err(TargetProblem::NonAscii),
            _ => {}
        }
    }
    Ok(())
}

/// `name`, `1.2.3.4` or `[::1]`; `port` when given is 1-65535.
fn check_host_port(host: &str, port: Option<&str>) -> Result<(), TargetProblem> {
    let bracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        });
    let name = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !bracketed && !name {
        return Err(TargetProblem::BadHost {
            host: host.to_string(),
        });
    }
    match port {
        Some(p) if p.parse::<u16>().map_or(true, |n| n == 0) || p.starts_with('+') => {
            Err(TargetProblem::BadPort {
                port: p.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Splits `host:port` where the host may be a bracketed IPv6 address.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    }
}

/// Checks a rendered `http:` URL.
pub fn check_url(url: &str) -> Result<(), TargetProblem> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(TargetProblem::NoScheme);
    };
    if scheme != "http" && scheme != "https" {
        return Err(TargetProblem::Scheme {
            scheme: scheme.escape_debug().to_string(),
        });
    }
    check_characters(rest)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if rest[end..].contains('#') {
        return Err(TargetProblem::Fragment);
    }
    if authority.contains('@') {
        return Err(TargetProblem::UserInfo);
    }
    if authority.is_empty() {
        return Err(TargetProblem::NoHost);
    }
    let (host, port) = split_port(authority);
    check_host_port(host, port)
}

/// Checks a rendered `tcp:` address: `HOST:PORT`.
pub fn check_tcp(address: &str) -> Result<(), TargetProblem> {
    check_characters(address)?;
    match split_port(address) {
        (host, Some(port)) => check_host_port(host, Some(port)),
        (_, None) => Err(TargetProblem::NoPort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_leaves_only_unreserved_bytes() {
        let mut out = String::new();
        percent_encode_into(&mut out, "a b/c?d=e&f#g\r\nX-Evil: 1~é");
        assert_eq!(out, "a%20b%2Fc%3Fd%3De%26f%23g%0D%0AX-Evil%3A%201~%C3%A9");
    }

    #[test]
    fn urls() {
        assert_eq!(check_url("http://10.0.0.1:8080/healthz?x=1"), Ok(()));
        assert_eq!(check_url("https://[::1]/"), Ok(()));
        assert_eq!(check_url("http://web-1"), Ok(()));
        assert_eq!(
            check_url("ftp://h/"),
            Err(TargetProblem::Scheme {
                scheme: "ftp".into()
            })
        );
        assert_eq!(check_url("garbage"), Err(TargetProblem::NoScheme));
        assert_eq!(check_url("http:///x"), Err(TargetProblem::NoHost));
        assert_eq!(check_url("http://u:p@h/"), Err(TargetProblem::UserInfo));
        assert_eq!(check_url("http://h/#x"), Err(TargetProblem::Fragment));
        assert_eq!(
            check_url("http://h/\r\nX: y"),
            Err(TargetProblem::ControlCharacter { byte: b'\r' })
        );
        assert_eq!(
            check_url("http://h:99999/"),
            Err(TargetProblem::BadPort {
                port: "99999".into()
            })
        );
        assert_eq!(
            check_url("http://::1:80/"),
            Err(TargetProblem::BadHost { host: "::1".into() })
        );
    }

    #[test]
    fn tcp_addresses() {
        assert_eq!(check_tcp("10.0.0.1:443"), Ok(()));
        assert_eq!(check_tcp("[::1]:22"), Ok(()));
        assert_eq!(check_tcp("db-1"), Err(TargetProblem::NoPort));
        assert_eq!(check_tcp("[::1]"), Err(TargetProblem::NoPort));
        assert_eq!(
            check_tcp("db-1:0"),
            Err(TargetProblem::BadPort { port: "0".into() })
        );
    }
}
