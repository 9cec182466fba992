//! # pyre-nexus-core
//!
//! The engine of pyre-nexus, with no Node in it: a dispatcher that gives pyre's level-triggered
//! readiness semantics on top of mio, non-blocking channels, and pyre's framing.
//!
//! ```
//! # #[cfg(unix)] {
//! use pyre_nexus_core::{pipe, Dispatcher, Readiness, Call, Recv};
//! use std::time::{Duration, Instant};
//!
//! let (parent, child) = pipe().unwrap();
//! let (parent, child) = (parent.shared(), child.shared());
//! parent.borrow_mut().send_frame(b"hello").unwrap();
//!
//! let mut dispatcher = Dispatcher::new().unwrap();
//! let id = dispatcher.when(&child, Readiness::Read, "greet").unwrap();
//! let (mut calls, mut dropped) = (Vec::new(), Vec::new());
//! while calls.is_empty() {
//!     dispatcher.poll(Some(Duration::from_secs(1))).unwrap();
//!     dispatcher.collect(Instant::now(), &mut calls, &mut dropped);
//!     dispatcher.settle();
//! }
//! assert_eq!(calls, [Call::Ready(id)]);
//! assert_eq!(child.borrow_mut().recv_frame().unwrap(), Recv::Frame(b"hello"));
//! # }
//! ```

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
mod sys;

pub use address::Address;
#[cfg(unix)]
pub use channel::{
    adopt, connect, pipe, port, Channel, ReadOutcome, Recv, RecvInto, SharedChannel,
};
#[cfg(unix)]
pub use dispatcher::{Call, Dispatcher, HandlerId, Readiness};
pub use error::{Error, Result};
#[cfg(unix)]
pub use recruit::{Exit, Recruit};
#[cfg(unix)]
pub use shared::SharedRegion;
