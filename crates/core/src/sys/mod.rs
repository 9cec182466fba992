//! The operating system's side of channels, as mio keeps its `sys`: the sockets a channel holds,
//! the few calls mio does not make for us, and giving freed memory back. Everything here answers
//! in `io::Result`; what an outcome means to a channel (an end of file, a peer gone, a full
//! socket) is decided there.

#[cfg(unix)]
mod descriptor;
pub(crate) mod heap;
#[cfg(unix)]
mod socket;

#[cfg(unix)]
pub(crate) use descriptor::{check_socket, own_stream};
#[cfg(unix)]
pub(crate) use socket::{deepen_backlog, pair, set_send_buffer, Io};
