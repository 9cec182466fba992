//! One error type for everything the core can report, each variant with the context a user needs.

use std::fmt;
use std::io;

/// Why an operation on a dispatcher, channel or address failed.
///
/// Every variant has a stable [`code`](Error::code) that the bindings hand to JavaScript, so the
/// TypeScript layer can map it to an error class without parsing messages.
#[derive(Debug)]
pub enum Error {
    /// An address string that does not parse; `part` names what is wrong with it.
    BadAddress { address: String, part: String },
    /// An address whose host is a name other than `localhost`: resolving it would block, so it
    /// must be resolved first, without blocking, into an IP address.
    NeedsResolving { address: String, host: String },
    /// The address is taken: another socket listens there, or a Unix-domain path exists.
    AddressInUse { address: String },
    /// The peer reset the connection.
    PeerReset,
    /// The peer announced a frame longer than the channel accepts.
    FrameTooLarge { length: u64, max: u32 },
    /// A payload to send is longer than pyre's 4-byte length can announce.
    PayloadTooLarge { length: usize },
    /// The peer closed the channel in the middle of a frame.
    Truncated { received: usize, expected: usize },
    /// The next frame does not fit the buffer it was to be received into; it stays queued.
    BufferTooSmall { needed: usize, room: usize },
    /// The channel was closed by this side.
    ChannelClosed,
    /// The channel already holds as much unsent output as it may; wait until it is write-ready.
    ChannelFull { pending: usize, bound: usize },
    /// The channel is already watched by another dispatcher.
    AlreadyWatched,
    /// A descriptor handed over as a channel is not a socket.
    NotASocket { fd: i32 },
    /// A descriptor handed over as shared memory is not a region that can be mapped; `why`
    /// says what it is instead.
    NotShared { fd: i32, why: String },
    /// The operation does not apply to this kind of channel (reading from a listener, say).
    WrongKind {
        op: &'static str,
        kind: &'static str,
    },
    /// A worker process could not be started; `program` is what was to run.
    Start { program: String, source: io::Error },
    /// Any other failure of the operating system, with the operation that met it.
    Io { op: &'static str, source: io::Error },
}

impl Error {
    /// The stable code of this error, as JavaScript sees it in `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadAddress { .. } => "ERR_NEXUS_BAD_ADDRESS",
            Error::NeedsResolving { .. } => "ERR_NEXUS_NEEDS_RESOLVING",
            Error::AddressInUse { .. } => "ERR_NEXUS_ADDRESS_IN_USE",
            Error::PeerReset => "ERR_NEXUS_PEER_RESET",
            Error::FrameTooLarge { .. } | Error::PayloadTooLarge { .. } => {
                "ERR_NEXUS_FRAME_TOO_LARGE"
            }
            Error::Truncated { .. } => "ERR_NEXUS_TRUNCATED",
            Error::BufferTooSmall { .. } => "ERR_NEXUS_BUFFER_TOO_SMALL",
            Error::ChannelClosed => "ERR_NEXUS_CHANNEL_CLOSED",
            Error::ChannelFull { .. } => "ERR_NEXUS_CHANNEL_FULL",
            Error::AlreadyWatched => "ERR_NEXUS_ALREADY_WATCHED",
            Error::WrongKind { .. } => "ERR_NEXUS_WRONG_KIND",
            Error::NotASocket { .. } => "ERR_NEXUS_NOT_A_SOCKET",
            Error::NotShared { .. } => "ERR_NEXUS_NOT_SHARED_MEMORY",
            Error::Start { .. } | Error::Io { .. } => "ERR_NEXUS_IO",
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
