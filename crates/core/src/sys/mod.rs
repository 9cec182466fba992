//! The operating system's side of channels, as mio keeps its `sys`: the sockets a channel holds,
//! and the few calls mio does not make for us. Everything here answers in `io::Result`; what an
//! outcome means to a channel (an end of file, a peer gone, a full socket) is decided there.

mod descriptor;
mod socket;

pub(crate) use descriptor::{check_socket, own_stream};
pub(crate) use socket::{deepen_backlog, pair, set_send_buffer, Io};
