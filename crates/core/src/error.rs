//! One error type for everything the core and its binding report, each variant with the context
//! a user needs, and the registry of the stable codes they reach JavaScript with.

use std::fmt;
use std::io;

/// Declares the codes: the enum, its list and its strings, one line a code.
macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident => $text:literal,)*) => {
        /// A stable code, as JavaScript sees it in `error.code`; the TypeScript layer has one
        /// error class for each (`ts/errors.ts`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $name,)*
        }

        impl Code {
            /// Every code the binding throws.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code as JavaScript sees it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $text,)*
                }
            }
        }
    };
}

codes! {
    /// [`Error::BadAddress`].
    BadAddress => "ERR_NEXUS_BAD_ADDRESS",
    /// [`Error::NeedsResolving`].
    NeedsResolving => "ERR_NEXUS_NEEDS_RESOLVING",
    /// [`Error::AddressInUse`].
    AddressInUse => "ERR_NEXUS_ADDRESS_IN_USE",
    /// [`Error::PeerReset`].
    PeerReset => "ERR_NEXUS_PEER_RESET",
    /// [`Error::FrameTooLarge`] and [`Error::PayloadTooLarge`].
    FrameTooLarge => "ERR_NEXUS_FRAME_TOO_LARGE",
    /// [`Error::Truncated`].
    Truncated => "ERR_NEXUS_TRUNCATED",
    /// [`Error::BufferTooSmall`].
    BufferTooSmall => "ERR_NEXUS_BUFFER_TOO_SMALL",
    /// [`Error::ChannelClosed`].
    ChannelClosed => "ERR_NEXUS_CHANNEL_CLOSED",
    /// [`Error::ChannelFull`].
    ChannelFull => "ERR_NEXUS_CHANNEL_FULL",
    /// [`Error::AlreadyWatched`].
    AlreadyWatched => "ERR_NEXUS_ALREADY_WATCHED",
    /// [`Error::NotASocket`].
    NotASocket => "ERR_NEXUS_NOT_A_SOCKET",
    /// [`Error::NotShared`].
    NotSharedMemory => "ERR_NEXUS_NOT_SHARED_MEMORY",
    /// [`Error::WrongKind`].
    WrongKind => "ERR_NEXUS_WRONG_KIND",
    /// [`Error::AlreadyWatching`].
    AlreadyWatching => "ERR_NEXUS_ALREADY_WATCHING",
    /// [`Error::DispatcherClosed`].
    DispatcherClosed => "ERR_NEXUS_DISPATCHER_CLOSED",
    /// [`Error::Unsupported`].
    UnsupportedPlatform => "ERR_NEXUS_UNSUPPORTED_PLATFORM",
    /// [`Error::Internal`].
    Internal => "ERR_NEXUS_INTERNAL",
    /// [`Error::Start`] and [`Error::Io`].
    Io => "ERR_NEXUS_IO",
    /// [`Error::InvalidArgType`]: Node's code for an argument of the wrong type.
    InvalidArgType => "ERR_INVALID_ARG_TYPE",
    /// [`Error::InvalidArgValue`]: Node's code for an argument of the right type but a wrong value.
    InvalidArgValue => "ERR_INVALID_ARG_VALUE",
}

impl PartialEq<&str> for Code {
    fn eq(&self, text: &&str) -> bool {
        self.as_str() == *text
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an operation on a dispatcher, channel or address failed.
///
/// Every variant has a stable [`code`](Error::code) that the bindings hand to JavaScript, so the
/// TypeScript layer can map it to an error class without parsing messages.
#[derive(Debug)]
pub enum Error {
    /// An address string that does not parse; `part` names what is wrong with it.
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        part: String,
    },
    /// An address whose host is a name other than `localhost`: resolving it would block, so it
    /// must be resolved first, without blocking, into an IP address.
    NeedsResolving {
        /// The address as given.
        address: String,
        /// The host name in it.
        host: String,
    },
    /// The address is taken: another socket listens there, or a Unix-domain path exists.
    AddressInUse {
        /// The address, in canonical form.
        address: String,
    },
    /// The peer reset the connection.
    PeerReset,
    /// The peer announced a frame longer than the channel accepts.
    FrameTooLarge {
        /// The length announced.
        length: u64,
        /// The channel's maximum.
        max: u32,
    },
    /// A payload to send is longer than pyre's 4-byte length can announce.
    PayloadTooLarge {
        /// The payload's length.
        length: usize,
    },
    /// The peer closed the channel in the middle of a frame.
    Truncated {
        /// Bytes of the frame that arrived.
        received: usize,
        /// Bytes the frame announced.
        expected: usize,
    },
    /// The next frame does not fit the buffer it was to be received into; it stays queued.
    BufferTooSmall {
        /// The frame payload's length.
        needed: usize,
        /// The room the buffer had.
        room: usize,
    },
    /// The channel was closed by this side.
    ChannelClosed,
    /// The channel already holds as much unsent output as it may; wait until it is write-ready.
    ChannelFull {
        /// Bytes waiting to be sent.
        pending: usize,
        /// The channel's bound.
        bound: usize,
    },
    /// The channel is already watched by another dispatcher.
    AlreadyWatched,
    /// A descriptor handed over as a channel is not a socket.
    NotASocket {
        /// The descriptor.
        fd: i32,
    },
    /// A descriptor handed over as shared memory is not a region that can be mapped; `why`
    /// says what it is instead.
    NotShared {
        /// The descriptor.
        fd: i32,
        /// What it is instead.
        why: String,
    },
    /// The operation does not apply to this kind of channel (reading from a listener, say).
    WrongKind {
        /// The operation, as a message says it (`watch for writing`).
        op: &'static str,
        /// The channel's kind (`listener`).
        kind: &'static str,
    },
    /// `watch` was called on a dispatcher that is watching already.
    AlreadyWatching,
    /// The dispatcher was closed: nothing can be registered or watched any more.
    DispatcherClosed,
    /// This platform, or the runtime loading the binding, lacks something the core needs.
    Unsupported {
        /// What is missing.
        why: String,
    },
    /// A bug in pyre-nexus (a panic caught at the boundary, say): the message asks for a report.
    Internal {
        /// What went wrong.
        what: String,
    },
    /// An argument of the wrong type reached the binding (the TypeScript layer checks first).
    InvalidArgType {
        /// The argument and the type it must be: `expected a channel handle`.
        what: String,
    },
    /// An argument of the right type but a wrong value reached the binding.
    InvalidArgValue {
        /// The argument, what it must be and what it got.
        what: String,
    },
    /// A worker process could not be started; `program` is what was to run.
    Start {
        /// The program.
        program: String,
        /// Why it did not start.
        source: io::Error,
    },
    /// Any other failure of the operating system, with the operation that met it.
    Io {
        /// The operation, as a message says it (`creating the poll`).
        op: &'static str,
        /// The failure.
        source: io::Error,
    },
}

impl Error {
    /// The stable code of this error, as JavaScript sees it in `error.code`.
    pub fn code(&self) -> Code {
        match self {
            Error::BadAddress { .. } => Code::BadAddress,
            Error::NeedsResolving { .. } => Code::NeedsResolving,
            Error::AddressInUse { .. } => Code::AddressInUse,
            Error::PeerReset => Code::PeerReset,
            Error::FrameTooLarge { .. } | Error::PayloadTooLarge { .. } => Code::FrameTooLarge,
            Error::Truncated { .. } => Code::Truncated,
            Error::BufferTooSmall { .. } => Code::BufferTooSmall,
            Error::ChannelClosed => Code::ChannelClosed,
            Error::ChannelFull { .. } => Code::ChannelFull,
            Error::AlreadyWatched => Code::AlreadyWatched,
            Error::WrongKind { .. } => Code::WrongKind,
            Error::NotASocket { .. } => Code::NotASocket,
            Error::NotShared { .. } => Code::NotSharedMemory,
            Error::AlreadyWatching => Code::AlreadyWatching,
            Error::DispatcherClosed => Code::DispatcherClosed,
            Error::Unsupported { .. } => Code::UnsupportedPlatform,
            Error::Internal { .. } => Code::Internal,
            Error::InvalidArgType { .. } => Code::InvalidArgType,
            Error::InvalidArgValue { .. } => Code::InvalidArgValue,
            Error::Start { .. } | Error::Io { .. } => Code::Io,
        }
    }

    /// Wraps an OS error met by `op`, singling out the failures a user acts on differently.
    pub fn io(op: &'static str, source: io::Error) -> Error {
        match source.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Error::PeerReset,
            _ => Error::Io { op, source },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadAddress { address, part } => write!(f, "bad address {address:?}: {part}"),
            Error::NeedsResolving { address, host } => write!(
                f,
                "the host {host:?} of {address:?} is a name, and looking it up here would block: \
                 give an IP address, or resolve the name first (resolveAddress)"
            ),
            Error::AddressInUse { address } => write!(f, "address {address} is already in use"),
            Error::PeerReset => write!(f, "the peer reset the connection"),
            Error::FrameTooLarge { length, max } => write!(
                f,
                "the peer announced a frame of {length} bytes, more than the maximum of {max}"
            ),
            Error::PayloadTooLarge { length } => write!(
                f,
                "cannot send a payload of {length} bytes: a frame holds at most 4294967295"
            ),
            Error::Truncated { received, expected } => write!(
                f,
                "the peer closed the channel in the middle of a frame ({received} of {expected} bytes)"
            ),
            Error::BufferTooSmall { needed, room } => write!(
                f,
                "the next frame's payload is {needed} bytes, more than the {room} bytes of room given for it; it stays queued"
            ),
            Error::ChannelClosed => write!(f, "the channel is closed"),
            Error::ChannelFull { pending, bound } => write!(
                f,
                "the channel holds {pending} unsent bytes, at its bound of {bound}: wait until it is write-ready"
            ),
            Error::AlreadyWatched => write!(f, "the channel is already watched by another dispatcher"),
            Error::NotASocket { fd } => write!(f, "descriptor {fd} is not a socket"),
            Error::NotShared { fd, why } => {
                write!(f, "descriptor {fd} is not a shared memory region: {why}")
            }
            Error::WrongKind { op, kind } => write!(f, "cannot {op} on a {kind} channel"),
            Error::AlreadyWatching => write!(f, "this dispatcher is already watching"),
            Error::DispatcherClosed => write!(f, "this dispatcher is closed"),
            Error::Unsupported { why } => f.write_str(why),
            Error::Internal { what } => write!(
                f,
                "internal error in pyre-nexus (a bug: please report it): {what}"
            ),
            Error::InvalidArgType { what } | Error::InvalidArgValue { what } => f.write_str(what),
            Error::Start { program, source } => {
                write!(f, "starting a worker failed: {program}: {source}")
            }
            Error::Io { op, source } => write!(f, "{op} failed: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Start { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The result of core operations.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_listed_once_with_a_string_of_its_own() {
        let texts: HashSet<&str> = Code::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(texts.len(), Code::ALL.len());
        assert!(texts.iter().all(|text| text.starts_with("ERR_")));
    }
}
