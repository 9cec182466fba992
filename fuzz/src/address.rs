//! `address`: any text given to the address parser. It never panics; what it accepts it shows in
//! a form that parses back to the same address, and shows the same way again; what it refuses
//! is a `BadAddress` error quoting the text, or, for a host name (which the parser never looks
//! up: that would block), `NeedsResolving`.

use pyre_nexus_core::{Address, Error};

pub fn address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
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
        // A host name is refused without a lookup (which would block), naming the address.
        Err(Error::NeedsResolving { address, .. }) => assert_eq!(address, text),
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
