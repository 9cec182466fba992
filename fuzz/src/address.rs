//! `address`: any text given to the address parser. It never panics; what it accepts it shows in
//! a form that parses back to the same address, and shows the same way again; what it refuses
//! is a `BadAddress` error quoting the text.

use pyre_nexus_core::{Address, Error};
use std::net::IpAddr;

pub fn address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if might_resolve(text) {
        return;
    }
    match text.parse::<Address>() {
        Ok(address) => {
            let shown = address.to_string();
            let again = shown.parse::<Address>().unwrap_or_else(|e| {
                panic!(
                    "{text:?} parsed as {address:?}, shown as {shown:?}, which does not parse: {e}"
                )
            });
            assert_eq!(again, address, "{text:?} shown as {shown:?}");
            assert_eq!(
                again.to_string(),
                shown,
                "{text:?}: the form shown is not stable"
            );
        }
        Err(error) => {
            assert!(
                matches!(error, Error::BadAddress { .. }),
                "{text:?}: {error:?}"
            );
            assert_eq!(error.code(), "ERR_NEXUS_BAD_ADDRESS");
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("bad address {text:?}: ")),
                "{message}"
            );
        }
    }
}

/// Whether the parser might ask the system's resolver (a blocking getaddrinfo) about `text`'s
/// host: one neither empty, nor an IP address, nor plainly malformed. Such texts are skipped: a
/// lookup blocks, may go to the network, and answers differently from machine to machine. The
/// test is wider than the parser's (any prefix, any port): skipping more is safe.
pub fn might_resolve(text: &str) -> bool {
    if text.starts_with("unix:") || text.starts_with("local:") {
        return false;
    }
    // The host is what comes before the last ':', after a family prefix if there is one.
    let after_prefix = text.split_once(':').map(|(_, rest)| rest);
    [Some(text), after_prefix]
        .into_iter()
        .flatten()
        .any(|rest| {
            let Some((host, _port)) = rest.rsplit_once(':') else {
                return false;
            };
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            !host.is_empty()
                && host.parse::<IpAddr>().is_err()
                && !host.contains(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '/'))
        })
}
