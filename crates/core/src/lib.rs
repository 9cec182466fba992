//! # pyre-nexus-core
//!
//! The engine of pyre-nexus, with no Node in it: a dispatcher that gives pyre's level-triggered
//! readiness semantics on top of mio, non-blocking channels, and pyre's framing.
//!
//! ```
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
//! ```

pub mod address;
mod alarm;
pub mod channel;
pub mod dispatcher;
pub mod error;
pub mod frame;

pub use address::Address;
pub use channel::{adopt, connect, pipe, port, Channel, ReadOutcome, Recv, SharedChannel};
pub use dispatcher::{Call, Dispatcher, HandlerId, Readiness};
pub use error::{Error, Result};
