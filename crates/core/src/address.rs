//! Addresses in pyre's notation: `host:port`, `ip4:host:port`, `ip6:[host]:port`, `unix:/path`.

use crate::error::{Error, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Where a channel listens or connects.
///
/// ```
/// use pyre_nexus_core::Address;
/// let a: Address = "ip6:[::1]:8080".parse().unwrap();
/// assert_eq!(a.to_string(), "ip6:[::1]:8080");
/// assert!("ip4:localhost:http".parse::<Address>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// An IPv4 or IPv6 socket address.
    Inet(SocketAddr),
    /// A Unix-domain socket path.
    Unix(PathBuf),
}

#[derive(Clone, Copy, PartialEq)]
enum Family {
    Any,
    V4,
    V6,
}

impl std::str::FromStr for Address {
    type Err = Error;

    fn from_str(text: &str) -> Result<Address> {
        let bad = |part: &str| Error::BadAddress {
            address: text.to_string(),
            part: part.to_string(),
        };
        let (family, rest) = match text.split_once(':') {
            Some(("unix" | "local", path)) => {
                if path.is_empty() {
                    return Err(bad("the Unix-domain path is empty"));
                }
                return Ok(Address::Unix(PathBuf::from(path)));
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
        if host.is_empty() {
            let any = match family {
                Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            };
            return Ok(Address::Inet(SocketAddr::new(any, port)));
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
            return Ok(Address::Inet(SocketAddr::new(ip, port)));
        }
        if host.contains(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == '/') {
            return Err(bad(&format!(
                "the host {host:?} is neither an IP address nor a host name"
            )));
        }
        // Name resolution blocks; it happens once, when a port or connection is set up.
        let found = (host, port)
            .to_socket_addrs()
            .map_err(|e| bad(&format!("the host {host:?} does not resolve: {e}")))?;
        found
            .into_iter()
            .find(|a| match family {
                Family::Any => true,
                Family::V4 => a.is_ipv4(),
                Family::V6 => a.is_ipv6(),
            })
            .map(Address::Inet)
            .ok_or_else(|| {
                bad(&format!(
                    "the host {host:?} has no address of the family the prefix asks for"
                ))
            })
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
        assert!(matches!(parse("ip4:localhost:1").unwrap(), Address::Inet(a) if a.is_ipv4()));
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
        assert_eq!(parse("x:y").unwrap_err().code(), "ERR_NEXUS_BAD_ADDRESS");
    }
}
