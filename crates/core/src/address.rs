//! Addresses in pyre's notation: `host:port`, `ip4:host:port`, `ip6:[host]:port`, `unix:/path`.
//!
//! Parsing never looks a name up: resolving one (`getaddrinfo`) blocks, and a parse happens on
//! the thread that runs the loop. The host is an IP address, empty (any address) or `localhost`
//! (the loopback address, as RFC 6761 lets every resolver answer); any other name is handed back
//! as a [`HostName`] for the caller to resolve without blocking, and [`Address::from_str`] refuses
//! it with [`Error::NeedsResolving`].

use crate::error::{Error, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// Where a channel listens or connects.
///
/// ```
/// use pyre_nexus_core::Address;
/// let a: Address = "ip6:[::1]:8080".parse().unwrap();
/// assert_eq!(a.to_string(), "ip6:[::1]:8080");
/// assert_eq!("localhost:80".parse::<Address>().unwrap().to_string(), "ip4:127.0.0.1:80");
/// let named = "db.example:5432".parse::<Address>().unwrap_err();
/// assert_eq!(named.code(), "ERR_NEXUS_NEEDS_RESOLVING");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// An IPv4 or IPv6 socket address.
    Inet(SocketAddr),
    /// A Unix-domain socket path.
    Unix(PathBuf),
}

/// The family of Internet addresses an address's prefix asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// No prefix, `ip:` or `inet:`: either family.
    Any,
    /// `ip4:` or `inet4:`.
    V4,
    /// `ip6:` or `inet6:`.
    V6,
}

/// An Internet address whose host is a name: what a resolver must turn into an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName {
    /// The family the prefix asks for.
    pub family: Family,
    /// The name, as written.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// What an address string says, read without any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An address ready to use.
    Address(Address),
    /// A host name, to be resolved before the address can be used.
    HostName(HostName),
}

impl Address {
    /// Reads `text` without looking anything up: an [`Address`] when its host is an IP address,
    /// empty or `localhost`, a [`HostName`] when it is any other name, and
    /// [`Error::BadAddress`] naming the bad part when it does not parse.
    pub fn parse(text: &str) -> Result<Parsed> {
        let bad = |part: &str| Error::BadAddress {
            address: text.to_string(),
            part: part.to_string(),
        };
        let (family, rest) = match text.split_once(':') {
            Some(("unix" | "local", path)) => {
                if path.is_empty() {
                    return Err(bad("the Unix-domain path is empty"));
                }
                return Ok(Parsed::Address(Address::Unix(PathBuf::from(path))));
            }
            Some(("ip4" | "inet4", rest)) => (Family::V4, rest),
            Some(("ip6" | "inet6", rest)) => (Family::V6, rest),
            Some(("inet" | "ip", rest)) => (Family::Any, rest),
            Some(_) => (Family::Any, text),
            None => {
                return Err(bad(
                    "no port: expected host:port, ip4:host:port, ip6:[host]:port or unix:/path",
                ))
            }
        };
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("no port: expected host:port"))?;
        let port: u16 = port.parse().map_err(|_| {
            bad(&format!(
                "the port {port:?} is not a number from 0 to 65535"
            ))
        })?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let inet = |ip: IpAddr| Ok(Parsed::Address(Address::Inet(SocketAddr::new(ip, port))));
        if host.is_empty() {
            return inet(match family {
                Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            });
        }
        // RFC 6761: localhost is the loopback address, looked up nowhere. Without a prefix, IPv4's,
        // which every system has.
        if host.eq_ignore_ascii_case("localhost") {
            return inet(match family {
                Family::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
                _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
            });
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            let fits = match family {
                Family::Any => true,
                Family::V4 => ip.is_ipv4(),
                Family::V6 => ip.is_ipv6(),
            };
            if !fits {
                return Err(bad(&format!(
                    "the host {host:?} is not of the family the prefix asks for"
                )));
            }
            return inet(ip);
        }
        if host.contains(|c: char| c.is_whitespace() || c.is_control() || "[]/:".contains(c)) {
            return Err(bad(&format!(
                "the host {host:?} is neither an IP address nor a host name"
            )));
        }
        Ok(Parsed::HostName(HostName {
            family,
            host: host.to_string(),
            port,
        }))
    }
}

impl FromStr for Address {
    type Err = Error;

    /// Parses `text` without looking anything up; a host name other than `localhost` is
    /// [`Error::NeedsResolving`] (see [`Address::parse`]).
    fn from_str(text: &str) -> Result<Address> {
        match Address::parse(text)? {
            Parsed::Address(address) => Ok(address),
            Parsed::HostName(HostName { host, .. }) => Err(Error::NeedsResolving {
                address: text.to_string(),
                host,
            }),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(SocketAddr::V4(a)) => write!(f, "ip4:{a}"),
            Address::Inet(SocketAddr::V6(a)) => write!(f, "ip6:[{}]:{}", a.ip(), a.port()),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Address> {
        text.parse()
    }

    #[test]
    fn plain_and_prefixed_inet_addresses_parse() {
        assert_eq!(
            parse("127.0.0.1:80").unwrap().to_string(),
            "ip4:127.0.0.1:80"
        );
        assert_eq!(
            parse("ip4:10.1.2.3:0").unwrap().to_string(),
            "ip4:10.1.2.3:0"
        );
        assert_eq!(parse("ip6:[::1]:9").unwrap().to_string(), "ip6:[::1]:9");
        assert_eq!(parse(":5000").unwrap().to_string(), "ip4:0.0.0.0:5000");
        assert_eq!(parse("ip6::5000").unwrap().to_string(), "ip6:[::]:5000");
    }

    #[test]
    fn localhost_is_the_loopback_address_of_the_family_asked_for() {
        let canonical = |text: &str| parse(text).unwrap().to_string();
        assert_eq!(canonical("localhost:80"), "ip4:127.0.0.1:80");
        assert_eq!(canonical("ip4:localhost:1"), "ip4:127.0.0.1:1");
        assert_eq!(canonical("inet:LocalHost:2"), "ip4:127.0.0.1:2");
        assert_eq!(canonical("ip6:localhost:3"), "ip6:[::1]:3");
        assert_eq!(canonical("ip6:[localhost]:4"), "ip6:[::1]:4");
    }

    #[test]
    fn host_names_are_refused_without_a_lookup() {
        // Names most systems resolve (from /etc/hosts) and one no resolver may (RFC 6761's
        // .invalid): a lookup would have made an address of the first or an error of the second.
        for (text, family, host, port) in [
            (
                "localhost.localdomain:80",
                Family::Any,
                "localhost.localdomain",
                80,
            ),
            ("ip6:ip6-localhost:443", Family::V6, "ip6-localhost", 443),
            ("ip4:[db.example]:5432", Family::V4, "db.example", 5432),
            ("inet:nowhere.invalid:0", Family::Any, "nowhere.invalid", 0),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.code(), "ERR_NEXUS_NEEDS_RESOLVING", "{text}");
            assert!(error.to_string().contains(&format!("{host:?}")), "{error}");
            let named = HostName {
                family,
                host: host.to_string(),
                port,
            };
            assert_eq!(Address::parse(text).unwrap(), Parsed::HostName(named));
        }
    }

    #[test]
    fn unix_paths_parse() {
        assert_eq!(
            parse("unix:/tmp/x.sock").unwrap(),
            Address::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            parse("local:rel.sock").unwrap().to_string(),
            "unix:rel.sock"
        );
    }

    #[test]
    fn bad_addresses_name_the_bad_part() {
        let message = |text: &str| parse(text).unwrap_err().to_string();
        assert!(message("localhost").contains("no port"));
        assert!(message("127.0.0.1:http").contains("\"http\" is not a number"));
        assert!(message("127.0.0.1:70000").contains("\"70000\" is not a number"));
        assert!(message("ip6:127.0.0.1:80").contains("not of the family"));
        assert!(message("unix:").contains("path is empty"));
        assert!(message("ip4:[bad host]:80").contains("neither an IP address nor a host name"));
        assert!(message("fe80::1%eth0:80").contains("neither an IP address nor a host name"));
        // A bad port is named even when the host is a name, which is never looked up.
        assert!(message("db.example:http").contains("\"http\" is not a number"));
        assert_eq!(parse("x:y").unwrap_err().code(), "ERR_NEXUS_BAD_ADDRESS");
    }
}
