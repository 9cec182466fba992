//! Recruiting: `spawn` a worker process joined by a socket pair on its fd 3 (and given shared
//! words on its fd 4, if asked), `pair` for a worker thread, `reap` and `kill` by pid.

use crate::error::{throw, OrThrow};
use crate::handle::ChannelHandle;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use pyre_nexus_core::recruit::{self, Exit, Output};
use pyre_nexus_core::Error as CoreError;
use std::os::fd::IntoRawFd;

/// A worker process just started: its pid, our end of the socket pair on its fd 3, and our ends
/// of the pipes its output goes to (for the caller to close), or null.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct Spawned {
    pub pid: u32,
    pub channel: ChannelHandle,
    pub stdout: Option<i32>,
    pub stderr: Option<i32>,
}

/// Starts `program` with `args`, its channel on fd 3. With `shared` (the `fd` of `sharedWords`,
/// which stays the caller's to close) the worker finds those words on fd 4. `output`: `"inherit"`
/// (the default: ours), `"watch-start"` (standard error to a pipe of ours until the worker calls
/// `takeBackStderr`) or `"capture"` (both to pipes of ours).
#[napi(
    catch_unwind,
    ts_args_type = "program: string, args: Array<string>, shared?: number | undefined | null, output?: 'inherit' | 'watch-start' | 'capture' | undefined | null"
)]
pub fn spawn(
    env: Env,
    program: String,
    args: Vec<String>,
    shared: Option<i32>,
    output: Option<String>,
) -> Result<Spawned> {
    let output = match output.as_deref() {
        None | Some("inherit") => Output::Inherit,
        Some("watch-start") => Output::WatchStart,
        Some("capture") => Output::Capture,
        Some(other) => {
            let what = format!("output must be inherit, watch-start or capture, got {other:?}");
            return Err(throw(&env, &CoreError::InvalidArgValue { what }));
        }
    };
    let recruit = recruit::spawn(&program, &args, shared, output).or_throw(&env)?;
    Ok(Spawned {
        pid: recruit.pid,
        channel: ChannelHandle::new(recruit.channel),
        stdout: recruit.stdout.map(IntoRawFd::into_raw_fd),
        stderr: recruit.stderr.map(IntoRawFd::into_raw_fd),
    })
}

/// In a worker spawned with output `"watch-start"`, once started: its team's standard error back on fd 2.
#[napi(catch_unwind)]
pub fn take_back_stderr(env: Env) -> Result<()> {
    recruit::take_back_stderr().or_throw(&env)
}

/// A socket pair for a worker thread: the descriptor the thread adopts, and this side's channel.
#[napi(object, object_from_js = false)]
pub struct Pair {
    pub fd: i32,
    pub channel: ChannelHandle,
}

/// A socket pair for a worker thread: `{ fd, channel }`; the thread adopts `fd`.
#[napi(catch_unwind)]
pub fn pair(env: Env) -> Result<Pair> {
    let (channel, fd) = recruit::pair().or_throw(&env)?;
    Ok(Pair {
        fd,
        channel: ChannelHandle::new(channel),
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
