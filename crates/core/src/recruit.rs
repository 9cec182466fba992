//! Recruiting: start a worker process joined to us by a socket pair, and reap it by pid.
//!
//! The worker finds its end of the pair on descriptor 3 and inherits nothing else beyond its
//! standard output and error (standard input is `/dev/null`, so workers never read the
//! terminal). On Linux it is killed when its parent dies (`PR_SET_PDEATHSIG`); everywhere, the
//! end of file on descriptor 3 tells it that its team is gone.
//!
//! Reaping is by pid (`waitpid(pid, WNOHANG)`), never `waitpid(-1)`, which would steal the exit
//! status of children that Node's `child_process` is waiting for.

use crate::channel::{Channel, Io};
use crate::error::{Error, Result};
use mio::net::UnixStream;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The descriptor on which a worker finds its channel.
pub const CHANNEL_FD: RawFd = 3;

/// A started worker: its pid, and our end of its channel.
#[derive(Debug)]
pub struct Recruit {
    pub pid: u32,
    pub channel: Channel,
}

/// How a reaped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

/// Starts `program` with `args`; the child finds its end of a fresh socket pair on fd 3.
pub fn spawn<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Recruit> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| Error::io("socketpair for a worker", e))?;
    let theirs_fd = theirs.as_raw_fd();
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec, and calls only
    // async-signal-safe functions (dup2, fcntl, prctl, getppid, syscall); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if theirs_fd == CHANNEL_FD {
                // dup2 onto itself would keep close-on-exec set; clear it by hand.
                if libc::fcntl(CHANNEL_FD, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(theirs_fd, CHANNEL_FD) == -1 {
                return Err(io::Error::last_os_error());
            }
            close_others_on_exec();
            die_with_parent(parent)
        });
    }
    let child = command
        .spawn()
        .map_err(|e| Error::io("starting a worker", e))?;
    drop(theirs);
    ours.set_nonblocking(true)
        .map_err(|e| Error::io("socketpair for a worker", e))?;
    Ok(Recruit {
        pid: child.id(),
        channel: Channel::new(Io::Unix(UnixStream::from_std(ours)), None, None),
    })
}

/// A socket pair for a worker in this process (a thread): our channel, and the raw descriptor
/// of the other end for the worker to adopt. Whoever takes the descriptor must close it.
pub fn pair() -> Result<(Channel, RawFd)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| Error::io("socketpair for a worker", e))?;
    ours.set_nonblocking(true)
        .map_err(|e| Error::io("socketpair for a worker", e))?;
    Ok((
        Channel::new(Io::Unix(UnixStream::from_std(ours)), None, None),
        theirs.into_raw_fd(),
    ))
}

/// Collects the exit status of child `pid` if it has ended; `None` while it runs.
pub fn reap(pid: u32) -> Result<Option<Exit>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into our local; the pid names one child only.
        let got = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if got == 0 {
            return Ok(None);
        }
        if got == -1 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::io("reaping a worker", error));
        }
        break;
    }
    Ok(Some(if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    }))
}

/// Sends `signal` to child `pid`; a process already gone is not an error.
pub fn kill(pid: u32, signal: i32) -> Result<()> {
    // SAFETY: kill has no memory preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } == -1 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ESRCH) {
            return Err(Error::io("signalling a worker", error));
        }
    }
    Ok(())
}

/// Marks every descriptor above the channel close-on-exec, so that descriptors some library
/// opened without that flag do not leak into the worker. Marking (not closing) keeps the pipe
/// on which the standard library reports a failed exec.
fn close_others_on_exec() {
    #[cfg(target_os = "linux")]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: close_range only changes descriptor flags in this (child) process.
        let done = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                (CHANNEL_FD + 1) as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        };
        if done == 0 {
            return;
        }
    }
    // Older kernels and other systems: walk a bounded range (Node raises the descriptor limit
    // to the hard limit, which may be a million; descriptors that high are rare).
    // SAFETY: fcntl on descriptors that may not exist fails harmlessly with EBADF.
    unsafe {
        let limit = libc::sysconf(libc::_SC_OPEN_MAX).clamp(64, 4096) as RawFd;
        for fd in CHANNEL_FD + 1..limit {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags != -1 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// On Linux, asks for SIGKILL when the parent dies, and exits if it already has.
fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of ours.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            // No allocation here (between fork and exec): ESRCH says the parent is gone.
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    let _ = parent;
    Ok(())
}

/// In a worker: ends this process when its team process dies, even while JavaScript is busy.
/// Linux does this with `PR_SET_PDEATHSIG` at spawn; elsewhere a thread watches the parent pid
/// (an orphan is re-parented, so its parent pid changes) and exits within 50 ms of the death.
pub fn watch_parent() {
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() };
        let watch = move || loop {
            // SAFETY: getppid has no preconditions; _exit ends the process without unwinding.
            if unsafe { libc::getppid() } != parent || parent == 1 {
                unsafe { libc::_exit(1) };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let _ = std::thread::Builder::new()
            .name("nexus-parent-watch".into())
            .spawn(watch);
    }
}
