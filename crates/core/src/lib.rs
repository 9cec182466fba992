//! # pyre-nexus-core
//!
//! The engine of pyre-nexus, with no Node in it: a dispatcher that gives pyre's level-triggered
//! readiness semantics on top of mio, non-blocking channels, and pyre's framing.
//!
//! A turn takes what is ready, hands the caller each call due, and takes back its outcome:
//!
//! ```
//! # #[cfg(unix)] {
//! use pyre_nexus_core::{pipe, Call, Dispatcher, Outcome, Readiness, Recv, Turn};
//! use std::time::Duration;
//!
//! let (parent, child) = pipe().unwrap();
//! let (parent, child) = (parent.shared(), child.shared());
//! parent.borrow_mut().send_frame(b"hello").unwrap();
//!
//! let mut dispatcher = Dispatcher::new().unwrap();
//! let id = dispatcher.when(&child, Readiness::Read, "greet").unwrap();
//! let mut turn = Turn::new();
//! turn.begin(&mut dispatcher, Some(Duration::from_secs(5))).unwrap();
//! let (call, handler) = turn.next(&dispatcher).unwrap();
//! assert_eq!((call, *handler), (Call::Ready(id), "greet"));
//! assert_eq!(child.borrow_mut().recv_frame().unwrap(), Recv::Frame(b"hello"));
//! dispatcher.report(call, Outcome::of_ready(false)); // a falsy return: dropped
//! turn.end(&mut dispatcher);
//! assert!(dispatcher.is_idle());
//! # }
//! ```

#![deny(missing_docs)]

pub mod address;
#[cfg(unix)]
mod alarm;
// Channels and the dispatcher need Unix sockets and a pollable selector; on Windows the crate
// offers addresses, framing and errors only, and the binding reports the platform unsupported.
#[cfg(unix)]
pub mod channel;
#[cfg(unix)]
pub mod dispatcher;
pub mod error;
pub mod frame;
#[cfg(unix)]
pub mod recruit;
#[cfg(unix)]
pub mod shared;
#[cfg(unix)]
pub mod spin;
mod sys;
#[cfg(unix)]
pub mod turn;
#[cfg(unix)]
pub mod watch;

pub use address::Address;
#[cfg(unix)]
pub use alarm::alarm_interval;
#[cfg(unix)]
pub use channel::{
    adopt, connect, pipe, port, readiness_epoch, Channel, InputState, ReadOutcome, Recv, RecvInto,
    SharedChannel,
};
#[cfg(unix)]
pub use dispatcher::{Call, Dispatcher, HandlerId, Outcome, Readiness};
pub use error::{Code, Error, Result};
#[cfg(unix)]
pub use recruit::{Exit, Recruit};
#[cfg(unix)]
pub use shared::SharedRegion;
#[cfg(unix)]
pub use spin::{OuterLoop, Spin};
#[cfg(unix)]
pub use turn::Turn;
#[cfg(unix)]
pub use watch::{Ending, Next, Watch};
