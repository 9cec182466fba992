//! Recruiting: start a worker process joined to us by a socket pair, and reap it by pid.
//!
//! The worker finds its end of the pair on descriptor 3, and on 4 a shared memory region if
//! its team hands it one (see [`crate::shared`]); it inherits nothing else beyond our standard
//! output and error, even where Node marked them close-on-exec, or pipes to us in their place
//! (see [`Output`]; standard input is `/dev/null`, so workers never read the terminal). On Linux
//! it is killed when its parent dies (`PR_SET_PDEATHSIG`); everywhere, the end of file on
//! descriptor 3 tells it that its team is gone.
//!
//! Reaping is by pid (`waitpid(pid, WNOHANG)`), never `waitpid(-1)`, which would steal the exit
//! status of children that Node's `child_process` is waiting for.

use crate::channel::{Channel, Io};
use crate::error::{Error, Result};
use mio::net::UnixStream;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

/// The descriptor on which a worker finds its channel.
pub const CHANNEL_FD: RawFd = 3;

/// The descriptor on which a worker finds the shared memory region its team handed it, if any.
pub const SHARED_FD: RawFd = 4;

/// The descriptor on which a worker started with [`Output::WatchStart`] finds our standard error
/// (or `/dev/null`, if we had none), until it takes it back with [`take_back_stderr`].
pub const STDERR_SPARE_FD: RawFd = 5;

/// Where a worker's standard output and error go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Ours, as Node's `child_process` does with `stdio: 'inherit'`.
    #[default]
    Inherit,
    /// Ours, except that while the worker starts its standard error is a pipe we read
    /// ([`Recruit::stderr`]), so that one that dies starting can be heard. Ours waits for it on
    /// [`STDERR_SPARE_FD`]; once started it calls [`take_back_stderr`], which ends the pipe.
    WatchStart,
    /// Pipes we read ([`Recruit::stdout`], [`Recruit::stderr`]), for the worker's whole life.
    Capture,
}

/// A started worker: its pid, our end of its channel, and our ends of the pipes its standard
/// output and error write to, where [`Output`] asked for them.
#[derive(Debug)]
pub struct Recruit {
    /// The worker's process id.
    pub pid: u32,
    /// Our end of the socket pair on its fd 3.
    pub channel: Channel,
    /// Our end of the pipe its standard output writes to, if [`Output`] asked for one.
    pub stdout: Option<OwnedFd>,
    /// Our end of the pipe its standard error writes to, if [`Output`] asked for one.
    pub stderr: Option<OwnedFd>,
}

/// What a child places on its descriptors to become a worker, as numbered in the parent.
#[derive(Debug, Clone, Copy)]
struct Given {
    /// Its end of the channel, for fd 3.
    channel: RawFd,
    /// A shared region, for fd 4.
    shared: Option<RawFd>,
    /// Pipes for fds 1 and 2, in place of ours.
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    /// Whether our standard error goes to fd 5 (see [`Output::WatchStart`]).
    spare_stderr: bool,
}

impl Given {
    fn holds(&self, fd: RawFd) -> bool {
        [Some(self.channel), self.shared, self.stdout, self.stderr].contains(&Some(fd))
    }
}

/// How a reaped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

/// Starts `program` (a path: Linux does not look it up in `PATH`) with `args`; the child finds its end
/// of a fresh socket pair on fd 3, and a copy of our descriptor `shared` on fd 4 if given one (a
/// shared region's, which stays ours to close). A `shared` that is not open fails the start.
/// `output` says where its standard output and error go.
pub fn spawn<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    shared: Option<RawFd>,
    output: Output,
) -> Result<Recruit> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| Error::io("socketpair for a worker", e))?;
    // Socket pairs, as Node's child_process makes for `stdio: 'pipe'`.
    let pipe = |wanted: bool| -> Result<Option<(OwnedFd, OwnedFd)>> {
        if !wanted {
            return Ok(None);
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| Error::io("socketpair for a worker's output", e))?;
        Ok(Some((ours.into(), theirs.into())))
    };
    let stdout = pipe(output == Output::Capture)?;
    let stderr = pipe(output != Output::Inherit)?;
    let given = Given {
        channel: theirs.as_raw_fd(),
        shared,
        stdout: stdout.as_ref().map(|(_, theirs)| theirs.as_raw_fd()),
        stderr: stderr.as_ref().map(|(_, theirs)| theirs.as_raw_fd()),
        spare_stderr: output == Output::WatchStart,
    };
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let pid = start(program, args, given, parent).map_err(|source| Error::Start {
        program: program.to_owned(),
        source,
    })?;
    drop(theirs);
    ours.set_nonblocking(true)
        .map_err(|e| Error::io("socketpair for a worker", e))?;
    Ok(Recruit {
        pid,
        channel: Channel::new(Io::Unix(UnixStream::from_std(ours)), None, None),
        stdout: stdout.map(|(ours, _)| ours),
        stderr: stderr.map(|(ours, _)| ours),
    })
}

/// In a worker started with [`Output::WatchStart`], once it has started: puts its team's standard
/// error, waiting on [`STDERR_SPARE_FD`], back on fd 2. The pipe its team read ends there.
pub fn take_back_stderr() -> Result<()> {
    // SAFETY: dup2 and close on descriptors of this process; fd 5 is ours by the contract above.
    unsafe {
        if libc::dup2(STDERR_SPARE_FD, libc::STDERR_FILENO) == -1 {
            let error = io::Error::last_os_error();
            return Err(Error::io("taking back the team's standard error", error));
        }
        libc::close(STDERR_SPARE_FD);
    }
    Ok(())
}

/// What a child does between its start and `exec` to become a worker: our standard output and
/// error or the pipes given in their place, its end of the pair on fd 3, the shared region (if
/// any) on fd 4, our standard error on fd 5 if it is to be taken back, every other descriptor
/// above them close-on-exec, (on Linux) death with its parent, and default signal handling.
/// Async-signal-safe: it allocates nothing.
fn become_worker(given: Given, parent: libc::pid_t) -> io::Result<()> {
    keep_output(&given);
    // Our standard error, copied before a pipe takes its place.
    let spare = if !given.spare_stderr {
        None
    } else if !given.holds(libc::STDERR_FILENO) && is_open(libc::STDERR_FILENO) {
        Some(lift(libc::STDERR_FILENO)?)
    } else {
        // None to give: the worker takes back /dev/null, never a descriptor it opened itself.
        // SAFETY: open with a static path; the descriptor is the child's.
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if null == -1 {
            return Err(io::Error::last_os_error());
        }
        Some(lift(null)?)
    };
    // Each is first lifted above the places, so that placing one never overwrites another.
    let lift_some = |fd: Option<RawFd>| fd.map(lift).transpose();
    let channel = lift(given.channel)?;
    let shared = lift_some(given.shared)?;
    let stdout = lift_some(given.stdout)?;
    let stderr = lift_some(given.stderr)?;
    place(channel, CHANNEL_FD)?;
    // Everything above the channel close-on-exec, then the rest put in place (each inherited).
    close_others_on_exec(CHANNEL_FD + 1);
    let places = [
        (shared, SHARED_FD),
        (stdout, libc::STDOUT_FILENO),
        (stderr, libc::STDERR_FILENO),
        (spare, STDERR_SPARE_FD),
    ];
    for (fd, target) in places {
        if let Some(fd) = fd {
            place(fd, target)?;
        }
    }
    die_with_parent(parent)?;
    default_signals();
    Ok(())
}

/// A close-on-exec copy of `fd` above every place a worker's descriptors go, or `fd` itself if
/// it is there already. Async-signal-safe.
fn lift(fd: RawFd) -> io::Result<RawFd> {
    if fd > STDERR_SPARE_FD {
        return Ok(fd);
    }
    // SAFETY: fcntl on a descriptor of this (child) process.
    let lifted = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, STDERR_SPARE_FD + 1) };
    if lifted == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(lifted)
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Lets our standard output and error through exec, as Node's `child_process` does: Node marks
/// its own close-on-exec at start-up (libuv's `uv_disable_stdio_inheritance`), and a worker's
/// console output went nowhere. Where ours were closed and a descriptor given to the worker took
/// their place, that one stays close-on-exec: the worker must not write into it.
/// Async-signal-safe.
fn keep_output(given: &Given) {
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        if given.holds(fd) {
            continue;
        }
        // SAFETY: fcntl on a descriptor of this (child) process; one not open fails harmlessly.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags != -1 && flags & libc::FD_CLOEXEC != 0 {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
        }
    }
}

/// Puts a copy of `fd` on `target`, inherited across exec. Async-signal-safe.
fn place(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 and fcntl on descriptors of this (child) process.
    unsafe {
        if fd == target {
            // dup2 onto itself would keep close-on-exec set; clear it by hand.
            if libc::fcntl(target, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
        } else if libc::dup2(fd, target) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Every signal handled the default way and none blocked, as Node's `child_process` starts a
/// child: nothing this process ignores (Node ignores SIGPIPE) or blocks reaches the worker.
/// Handlers are reset before signals are unblocked: a child sharing our memory must never run
/// one of ours. Async-signal-safe.
fn default_signals() {
    // SAFETY: sigaction and sigprocmask on this (child) process; no memory of ours is touched.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for signal in 1..65 {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
            {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Elsewhere than Linux: the standard library forks, and the child becomes a worker before exec.
#[cfg(not(target_os = "linux"))]
fn start<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    given: Given,
    parent: libc::pid_t,
) -> io::Result<u32> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec and is async-signal-safe.
    unsafe { command.pre_exec(move || become_worker(given, parent)) };
    Ok(command.spawn()?.id())
}

#[cfg(target_os = "linux")]
use vfork::start;

/// Starting a worker without copying this process. A fork copies the page tables of the whole
/// Node process and blocks it meanwhile: 3.6-6 ms per worker for a process of 80 MB, 15 ms for
/// 300 MB, against 0.3-0.5 ms this way (measured here). The child shares our memory and runs on
/// a stack of its own while we wait (`CLONE_VM | CLONE_VFORK`), as glibc's `posix_spawn` does;
/// unlike `posix_spawn`, it can become a worker (see `become_worker`) before it runs `program`.
#[cfg(target_os = "linux")]
mod vfork {
    use super::{become_worker, Given};
    use std::ffi::{c_char, c_int, c_void, CString, OsStr};
    use std::io;
    use std::os::unix::ffi::OsStrExt;
    use std::ptr;

    extern "C" {
        static environ: *const *const c_char;
    }

    const STACK: usize = 64 << 10;

    /// Everything the child needs, prepared by the parent: the child must not allocate.
    struct Plan {
        program: *const c_char,
        argv: *const *const c_char,
        envp: *const *const c_char,
        devnull: *const c_char,
        given: Given,
        parent: libc::pid_t,
        /// Written by the child when a step fails, before it exits: the errno.
        error: c_int,
    }

    pub(super) fn start<S: AsRef<OsStr>>(
        program: &str,
        args: &[S],
        given: Given,
        parent: libc::pid_t,
    ) -> io::Result<u32> {
        let invalid = |_| {
            let what = "a NUL byte in the program's name or an argument";
            io::Error::new(io::ErrorKind::InvalidInput, what)
        };
        let program = CString::new(program).map_err(invalid)?;
        let args = args
            .iter()
            .map(|a| CString::new(a.as_ref().as_bytes()).map_err(invalid))
            .collect::<io::Result<Vec<_>>>()?;
        let mut argv: Vec<*const c_char> = Vec::with_capacity(args.len() + 2);
        argv.push(program.as_ptr());
        argv.extend(args.iter().map(|a| a.as_ptr()));
        argv.push(ptr::null());
        let devnull = c"/dev/null";
        // SAFETY: plain libc calls on memory we own; the child only reads `plan` and writes
        // `plan.error`, and we read it only after the child has exec'd or exited (CLONE_VFORK).
        unsafe {
            let mut plan = Plan {
                program: program.as_ptr(),
                argv: argv.as_ptr(),
                envp: environ,
                devnull: devnull.as_ptr(),
                given,
                parent,
                error: 0,
            };
            let stack = libc::mmap(
                ptr::null_mut(),
                STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            if stack == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            // No handler of ours may run in the child, which shares our memory: block every
            // signal until it has exec'd (it resets the handlers and then unblocks them all).
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut ours: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut ours);
            let pid = libc::clone(
                child,
                stack.cast::<u8>().add(STACK).cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&mut plan as *mut Plan).cast(),
            );
            let cloned = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &ours, ptr::null_mut());
            libc::munmap(stack, STACK);
            if pid == -1 {
                return Err(cloned);
            }
            let error = ptr::read_volatile(&plan.error);
            if error != 0 {
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0); // it has exited: collect it
                return Err(io::Error::from_raw_os_error(error));
            }
            Ok(pid as u32)
        }
    }

    /// The child: default signal handling, the worker's descriptors, then `exec` with no signal
    /// blocked. As Node's `child_process` and Rust's `Command` start children: nothing the parent
    /// ignores or blocks (Node ignores SIGPIPE) reaches the worker. Only async-signal-safe calls;
    /// a failure is reported in `plan.error`.
    extern "C" fn child(arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the parent's `Plan`, alive while the parent waits for us.
        unsafe {
            let plan = &mut *arg.cast::<Plan>();
            let fail = |plan: &mut Plan, error: io::Error| -> c_int {
                ptr::write_volatile(&mut plan.error, error.raw_os_error().unwrap_or(libc::EIO));
                libc::_exit(127)
            };
            // First: a descriptor given may sit on descriptor 0 if our stdin was closed.
            // Signals are unblocked after it, with default handling: they may end us, never run
            // our code.
            if let Err(error) = become_worker(plan.given, plan.parent) {
                return fail(plan, error);
            }
            // Not close-on-exec: with our stdin closed, /dev/null lands on 0 and must stay.
            let null = libc::open(plan.devnull, libc::O_RDONLY);
            if null == -1 || libc::dup2(null, 0) == -1 {
                return fail(plan, io::Error::last_os_error());
            }
            if null != 0 {
                libc::close(null);
            }
            libc::execve(plan.program, plan.argv, plan.envp);
            fail(plan, io::Error::last_os_error())
        }
    }
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

/// Marks every descriptor from `first` on close-on-exec, so that descriptors some library
/// opened without that flag do not leak into the worker. Marking (not closing) keeps the pipe
/// on which the standard library reports a failed exec where it forks.
fn close_others_on_exec(first: RawFd) {
    #[cfg(target_os = "linux")]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: close_range only changes descriptor flags in this (child) process.
        let done = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
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
        for fd in first..limit {
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
            // No allocation here (before exec): ESRCH says the parent is gone.
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
