//! The dispatcher: pyre's level-triggered readiness semantics on top of mio's edge-triggered poll.
//!
//! The dispatcher does not call handlers itself: a [`Turn`](crate::Turn) collects the calls that
//! are due, the caller makes them (into JavaScript, say) with no borrow held, and reports each
//! [`Outcome`] with [`report`](Dispatcher::report). So a handler may register others, close
//! channels or drop the dispatcher's state mid-turn.

use crate::alarm::{self, Alarms};
use crate::channel::{Link, SharedChannel};
use crate::error::{Error, Result};
use mio::{Events, Poll, Registry, Token, Waker};
use slab::Slab;
use std::cell::RefCell;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which readiness a handler waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Data, an end of file, an incoming connection, or an error to read.
    Read,
    /// Room to write (and, for a connection, that it is established).
    Write,
    /// An error condition on the socket, reported once per occurrence.
    Exception,
}

impl TryFrom<u32> for Readiness {
    type Error = Error;

    /// The readiness a foreign caller numbers 0 (read), 1 (write) or 2 (exception).
    fn try_from(kind: u32) -> Result<Readiness> {
        match kind {
            0 => Ok(Readiness::Read),
            1 => Ok(Readiness::Write),
            2 => Ok(Readiness::Exception),
            _ => Err(Error::InvalidArgValue {
                what: format!(
                    "the readiness kind must be 0 (read), 1 (write) or 2 (exception), got {kind}"
                ),
            }),
        }
    }
}

/// Names one registered handler; stale names (of handlers since dropped) are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HandlerId {
    key: u32,
    generation: u32,
}

impl HandlerId {
    /// The id as a number, for handing to a foreign caller.
    pub fn to_bits(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.key)
    }

    /// The id back from [`to_bits`](Self::to_bits).
    pub fn from_bits(bits: u64) -> HandlerId {
        HandlerId {
            key: bits as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

/// One call that a turn found due; its [`Outcome`] goes back with [`Dispatcher::report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A channel handler, called with no argument but its channel; see [`Outcome::of_ready`].
    Ready(HandlerId),
    /// An alarm, called with the time; see [`Outcome::of_alarm`].
    Alarm(HandlerId),
}

impl Call {
    /// The handler to call.
    pub fn id(self) -> HandlerId {
        match self {
            Call::Ready(id) | Call::Alarm(id) => id,
        }
    }
}

/// What a handler's call came to, by pyre's rules: the one place they are written down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A channel handler stays registered for the next readiness.
    Keep,
    /// An alarm is set again, this long from now.
    Again(Duration),
    /// The handler is dropped.
    Done,
    /// The handler threw: it is dropped, and the watch ends with its exception.
    Threw,
}

impl Outcome {
    /// A channel handler's outcome: a truthy return keeps it registered.
    pub fn of_ready(truthy: bool) -> Outcome {
        if truthy {
            Outcome::Keep
        } else {
            Outcome::Done
        }
    }

    /// An alarm's outcome from the number it returned, if it returned one: a number of seconds
    /// that [`alarm_interval`](crate::alarm_interval) accepts sets it again that much later;
    /// anything else drops it.
    pub fn of_alarm(seconds: Option<f64>) -> Outcome {
        match seconds.and_then(alarm::interval) {
            Some(after) => Outcome::Again(after),
            None => Outcome::Done,
        }
    }
}

enum Kind {
    Channel { token: Token },
    Alarm,
}

struct Slot<H> {
    generation: u32,
    kind: Kind,
    handler: H,
}

struct Source {
    channel: SharedChannel,
    read: Vec<HandlerId>,
    write: Vec<HandlerId>,
    exception: Vec<HandlerId>,
    queued: bool,
}

impl Source {
    fn list(&mut self, readiness: Readiness) -> &mut Vec<HandlerId> {
        match readiness {
            Readiness::Read => &mut self.read,
            Readiness::Write => &mut self.write,
            Readiness::Exception => &mut self.exception,
        }
    }

    fn due(&self) -> bool {
        let channel = self.channel.borrow();
        (!self.read.is_empty() && channel.read_due())
            || (!self.write.is_empty() && channel.write_due())
            || (!self.exception.is_empty() && channel.exception_due())
    }
}

/// A level-triggered event dispatcher over one mio [`Poll`].
///
/// Handlers are any value `H` (a JavaScript function reference in the binding, a closure in
/// Rust); a handler let go of is dropped, so `H`'s `Drop` releases what it holds. Dropping the
/// dispatcher releases its descriptors (the poll's, its waker's and the registry's) and every
/// handler at once. See `tests/util` for a complete blocking driver.
pub struct Dispatcher<H> {
    poll: Poll,
    events: Events,
    sources: Slab<Source>,
    handlers: Slab<Slot<H>>,
    generation: u32,
    alarms: Alarms<HandlerId>,
    /// Sources that may have due handlers, in the order they became ready.
    ready: Vec<Token>,
    /// Sources looked at by the current turn; the ones still due are queued again by `settle`.
    visited: Vec<Token>,
    /// Channels that closed since the last turn (they push their own tokens here).
    closed: Rc<RefCell<Vec<Token>>>,
    /// Closed channels still flushing output.
    draining: Vec<Token>,
    /// Wakes the poll when a watched channel closes between turns, so its handlers are dropped
    /// (and an otherwise idle loop can end) without waiting for some unrelated event.
    waker: Arc<Waker>,
    /// The poll's registry, for channels that change their interest themselves.
    registry: Rc<Registry>,
}

/// The waker's token: slab keys never reach it.
const WAKER: Token = Token(usize::MAX);

impl<H> Dispatcher<H> {
    /// A dispatcher with nothing registered.
    pub fn new() -> Result<Dispatcher<H>> {
        let poll = Poll::new().map_err(|e| Error::io("creating the poll", e))?;
        let waker =
            Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("creating the poll", e))?;
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|e| Error::io("creating the poll", e))?;
        Ok(Dispatcher {
            poll,
            waker: Arc::new(waker),
            registry: Rc::new(registry),
            events: Events::with_capacity(256),
            sources: Slab::new(),
            handlers: Slab::new(),
            generation: 0,
            alarms: Alarms::new(),
            ready: Vec::new(),
            visited: Vec::new(),
            closed: Rc::new(RefCell::new(Vec::new())),
            draining: Vec::new(),
        })
    }

    /// The poll's own descriptor: readable whenever a watched channel has news. An outer event
    /// loop (libuv) watches it and calls [`poll`](Self::poll) with a zero timeout.
    pub fn fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    fn insert(&mut self, kind: Kind, handler: H) -> HandlerId {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let key = self.handlers.insert(Slot {
            generation,
            kind,
            handler,
        });
        HandlerId {
            key: key as u32,
            generation,
        }
    }

    fn slot(&self, id: HandlerId) -> Option<&Slot<H>> {
        self.handlers
            .get(id.key as usize)
            .filter(|slot| slot.generation == id.generation)
    }

    /// Calls `handler` whenever `channel` is ready for `readiness`, until its outcome says not to.
    pub fn when(
        &mut self,
        channel: &SharedChannel,
        readiness: Readiness,
        handler: H,
    ) -> Result<HandlerId> {
        let token = {
            let mut ch = channel.borrow_mut();
            if ch.is_closed() {
                return Err(Error::ChannelClosed);
            }
            if readiness == Readiness::Write && ch.is_listener() {
                return Err(Error::WrongKind {
                    op: "watch for writing",
                    kind: "listener",
                });
            }
            match &ch.link {
                Some(link) if Rc::ptr_eq(&link.closed, &self.closed) => link.token,
                Some(_) => return Err(Error::AlreadyWatched),
                None => {
                    let entry = self.sources.vacant_entry();
                    let token = Token(entry.key());
                    ch.register(self.poll.registry(), token)?;
                    ch.link = Some(Link {
                        token,
                        closed: self.closed.clone(),
                        waker: self.waker.clone(),
                        registry: self.registry.clone(),
                    });
                    entry.insert(Source {
                        channel: channel.clone(),
                        read: Vec::new(),
                        write: Vec::new(),
                        exception: Vec::new(),
                        queued: false,
                    });
                    token
                }
            }
        };
        let id = self.insert(Kind::Channel { token }, handler);
        let source = &mut self.sources[token.0];
        source.list(readiness).push(id);
        if readiness == Readiness::Write {
            // The poll reports the current state when the interest changes: no edge is lost.
            source.channel.borrow_mut().watch_writes(true);
        }
        // Readiness already known (buffered frames, a writable socket) needs no new event.
        if !source.queued && source.due() {
            source.queued = true;
            self.ready.push(token);
        }
        Ok(id)
    }

    /// Calls `handler` once `after` has elapsed; [`rearm`](Self::rearm) says whether it repeats.
    pub fn alarm(&mut self, after: Duration, handler: H) -> HandlerId {
        let id = self.insert(Kind::Alarm, handler);
        self.alarms.set(Instant::now() + after, id);
        id
    }

    /// The handler registered under `id`, unless it was dropped or its channel has closed (a
    /// handler earlier in the same turn may have closed it).
    pub fn handler(&self, id: HandlerId) -> Option<&H> {
        let slot = self.slot(id)?;
        if let Kind::Channel { token } = slot.kind {
            if self.sources.get(token.0)?.channel.borrow().is_closed() {
                return None;
            }
        }
        Some(&slot.handler)
    }

    /// Drops a handler (channel handler or alarm), returning it. Unknown ids are ignored.
    pub fn cancel(&mut self, id: HandlerId) -> Option<H> {
        let slot = self.slot(id)?;
        if let Kind::Channel { token } = slot.kind {
            if let Some(source) = self.sources.get_mut(token.0) {
                for list in [&mut source.read, &mut source.write, &mut source.exception] {
                    list.retain(|h| *h != id);
                }
            }
        }
        Some(self.handlers.remove(id.key as usize).handler)
    }

    /// Reports how a call ended: a channel handler is kept (for [`Outcome::Keep`] or
    /// [`Outcome::Again`]) or dropped, an alarm set again (for [`Outcome::Again`]) or dropped. A
    /// dropped handler is returned. A handler that went during its own call stays gone.
    pub fn report(&mut self, call: Call, outcome: Outcome) -> Option<H> {
        let id = call.id();
        match (call, outcome) {
            (Call::Ready(_), Outcome::Keep | Outcome::Again(_)) => None,
            (Call::Alarm(_), Outcome::Again(after)) if self.slot(id).is_some() => {
                self.alarms.set(Instant::now() + after, id);
                None
            }
            _ => self.cancel(id),
        }
    }

    /// Waits up to `timeout` (none: forever) for readiness and records it in the channels;
    /// writable channels flush their buffered output here. A signal ending the wait early is no
    /// error.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(Error::io("poll", e)),
        }
        for event in self.events.iter() {
            let token = event.token();
            let Some(source) = self.sources.get_mut(token.0) else {
                continue;
            };
            let mut channel = source.channel.borrow_mut();
            channel.on_event(event);
            // Writability nobody waits for: stop hearing of it (it came after a write handler
            // went, or after pending output was flushed).
            if event.is_writable() && source.write.is_empty() && !channel.is_draining() {
                channel.watch_writes(false);
            }
            drop(channel);
            if !source.queued {
                source.queued = true;
                self.ready.push(token);
            }
        }
        if !self.draining.is_empty() {
            let sources = &mut self.sources;
            self.draining.retain(|token| {
                let done = sources
                    .get(token.0)
                    .is_none_or(|s| !s.channel.borrow().is_draining());
                if done && sources.contains(token.0) {
                    unlink(sources.remove(token.0));
                }
                !done
            });
        }
        Ok(())
    }

    /// Collects the calls due at `now`: expired alarms first, then the handlers of ready channels,
    /// each channel's read, write and exception handlers in registration order. Handlers of
    /// channels closed since the last turn are dropped into `dropped`.
    pub fn collect(&mut self, now: Instant, calls: &mut Vec<Call>, dropped: &mut Vec<H>) {
        self.reap(dropped);
        while let Some(id) = self.alarms.pop_due(now) {
            if self.slot(id).is_some() {
                calls.push(Call::Alarm(id));
            }
        }
        let ready = std::mem::take(&mut self.ready);
        for &token in &ready {
            let Some(source) = self.sources.get_mut(token.0) else {
                continue;
            };
            source.queued = false;
            let mut channel = source.channel.borrow_mut();
            if channel.read_due() {
                calls.extend(source.read.iter().map(|id| Call::Ready(*id)));
            }
            if channel.write_due() {
                calls.extend(source.write.iter().map(|id| Call::Ready(*id)));
            }
            if !source.exception.is_empty() && channel.take_exception() {
                calls.extend(source.exception.iter().map(|id| Call::Ready(*id)));
            }
        }
        self.visited = ready;
    }

    /// Ends a turn: channels whose handlers left them ready (data unread, room to write) are
    /// queued again, which is what makes readiness level-triggered.
    pub fn settle(&mut self) {
        for token in std::mem::take(&mut self.visited) {
            if let Some(source) = self.sources.get_mut(token.0) {
                if !source.queued && source.due() {
                    source.queued = true;
                    self.ready.push(token);
                }
            }
        }
    }

    /// Whether some handler is due without waiting for new events.
    pub fn has_due(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The earliest alarm deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let handlers = &self.handlers;
        self.alarms.next(|id| {
            handlers
                .get(id.key as usize)
                .is_some_and(|slot| slot.generation == id.generation)
        })
    }

    /// Whether nothing is left to wait for: no handlers, no alarms, no output still flushing.
    pub fn is_idle(&self) -> bool {
        self.handlers.is_empty()
            && self.sources.iter().all(|(_, s)| {
                let channel = s.channel.borrow();
                channel.pending_output() == 0 && !channel.is_draining()
            })
    }

    /// How many handlers (channel handlers and alarms) are registered.
    pub fn handler_count(&self) -> usize {
        self.handlers.len()
    }

    /// Drops the handlers of channels closed since the last turn into `dropped`; their sources
    /// go, unless output is still flushing.
    fn reap(&mut self, dropped: &mut Vec<H>) {
        let closed = std::mem::take(&mut *self.closed.borrow_mut());
        for token in closed {
            let Some(source) = self.sources.get_mut(token.0) else {
                continue;
            };
            if !source.channel.borrow().is_closed() {
                continue;
            }
            let handlers = &mut self.handlers;
            for list in [&mut source.read, &mut source.write, &mut source.exception] {
                dropped.extend(
                    list.drain(..)
                        .map(|id| handlers.remove(id.key as usize).handler),
                );
            }
            if source.channel.borrow().is_draining() {
                self.draining.push(token);
            } else {
                unlink(self.sources.remove(token.0));
            }
        }
    }

    /// Drops every handler and alarm, returning them; channels are left open but unwatched.
    pub fn clear(&mut self) -> Vec<H> {
        let mut dropped = Vec::new();
        self.reap(&mut dropped);
        dropped.extend(self.handlers.drain().map(|slot| slot.handler));
        for (_, source) in self.sources.iter_mut() {
            source.read.clear();
            source.write.clear();
            source.exception.clear();
        }
        dropped
    }
}

impl<H> Drop for Dispatcher<H> {
    fn drop(&mut self) {
        // Channels outlive their dispatcher; let them be watched by another one. A closed one
        // still flushing is aborted: nothing would deliver its output any more, and its
        // descriptor would wait for the channel to be dropped.
        for (_, source) in self.sources.iter() {
            if let Ok(mut channel) = source.channel.try_borrow_mut() {
                channel.unwatch();
                if channel.is_draining() {
                    channel.abort();
                }
            }
        }
    }
}

/// Lets go of a channel whose source has gone: a closed channel lives on as long as whoever holds
/// it (a JavaScript handle, until collected), and its link would keep the waker's and the
/// registry's descriptors open all that time.
fn unlink(source: Source) {
    if let Ok(mut channel) = source.channel.try_borrow_mut() {
        channel.unwatch();
    }
}
