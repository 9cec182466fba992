//! Recruiting: `spawn` a worker process joined by a socket pair on its fd 3 (and given shared
//! words on its fd 4, if asked), `pair` for a worker thread, `reap` and `kill` by pid.

use crate::channel::{handle, Handle};
use crate::error::OrThrow;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use pyre_nexus_core::recruit::{self, Exit};

/// A worker process just started, and its end of the socket pair on the worker's fd 3.
#[napi(object, object_from_js = false)]
pub struct Spawned {
    pub pid: u32,
    pub channel: Handle,
}

/// Starts `program` with `args`, its channel on fd 3: `{ pid, channel }`. With `shared` (the
/// `fd` of `sharedWords`, which stays the caller's to close) the worker finds those words on fd 4.
#[napi(catch_unwind)]
pub fn spawn(env: Env, program: String, args: Vec<String>, shared: Option<i32>) -> Result<Spawned> {
    let recruit = recruit::spawn(&program, &args, shared).or_throw(&env)?;
    Ok(Spawned {
        pid: recruit.pid,
        channel: handle(recruit.channel),
    })
}

/// A socket pair for a worker thread: the descriptor the thread adopts, and this side's channel.
#[napi(object, object_from_js = false)]
pub struct Pair {
    pub fd: i32,
    pub channel: Handle,
}

/// A socket pair for a worker thread: `{ fd, channel }`; the thread adopts `fd`.
#[napi(catch_unwind)]
pub fn pair(env: Env) -> Result<Pair> {
    let (channel, fd) = recruit::pair().or_throw(&env)?;
    Ok(Pair {
        fd,
        channel: handle(channel),
    })
}

/// How a reaped child ended: `{ code }` or `{ signal }`; null while it still runs.
#[napi(object)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Collects the exit status of child `pid`, if it has ended (never touches other children).
#[napi(catch_unwind)]
pub fn reap(env: Env, pid: u32) -> Result<Option<ExitStatus>> {
    Ok(recruit::reap(pid).or_throw(&env)?.map(|exit| match exit {
        Exit::Code(code) => ExitStatus {
            code: Some(code),
            signal: None,
        },
        Exit::Signal(signal) => ExitStatus {
            code: None,
            signal: Some(signal),
        },
    }))
}

/// In a worker process: exit when the team process dies (a no-op on Linux, where the kernel does it).
#[napi(catch_unwind)]
pub fn watch_parent() {
    recruit::watch_parent();
}
