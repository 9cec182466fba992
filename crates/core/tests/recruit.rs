//! Recruiting primitives: the worker's descriptors, exit statuses, and reaping by pid only.
#![cfg(unix)]

use pyre_nexus_core::recruit::{kill, reap, spawn};
use pyre_nexus_core::{Call, Dispatcher, Exit, ReadOutcome, Readiness, SharedChannel};
use std::time::{Duration, Instant};

/// Everything the worker writes on its channel, up to its end of file (waits on the dispatcher).
fn read_to_end(channel: SharedChannel) -> String {
    let mut dispatcher = Dispatcher::new().unwrap();
    dispatcher.when(&channel, Readiness::Read, ()).unwrap();
    let (mut calls, mut dropped) = (Vec::<Call>::new(), Vec::new());
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = channel.borrow_mut().read(&mut buffer).unwrap();
        match outcome {
            ReadOutcome::Data(n) => text.extend_from_slice(&buffer[..n]),
            ReadOutcome::Eof => return String::from_utf8(text).unwrap(),
            ReadOutcome::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "the worker never closed its channel"
                );
                dispatcher.poll(Some(Duration::from_secs(1))).unwrap();
                dispatcher.collect(Instant::now(), &mut calls, &mut dropped);
                dispatcher.settle();
            }
        }
    }
}

/// Waits for `pid` to end; the channel's end of file comes first, so this spins only briefly.
fn wait(pid: u32) -> Exit {
    loop {
        if let Some(exit) = reap(pid).unwrap() {
            return exit;
        }
        std::thread::yield_now();
    }
}

#[test]
fn the_worker_gets_its_channel_on_fd_3_and_no_other_descriptor() {
    // A descriptor opened without close-on-exec, as a careless library might.
    // F_DUPFD gives a copy at 10 or above without that flag (tests run in parallel, so the
    // lowest free descriptor could be 3 itself).
    let leaked = unsafe { libc::fcntl(2, libc::F_DUPFD, 10) };
    assert!(leaked >= 10);
    let script = "open=''; for fd in 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 \
                  26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50; do \
                  if [ -e /dev/fd/$fd ]; then open=\"$open $fd\"; fi; done; echo \"open:$open\" >&3";
    let recruit = spawn("/bin/sh", &["-c", script]).unwrap();
    let pid = recruit.pid;
    let said = read_to_end(recruit.channel.shared());
    unsafe { libc::close(leaked) };
    assert_eq!(said.trim(), "open: 3");
    assert_eq!(wait(pid), Exit::Code(0));
}

#[cfg(target_os = "linux")]
#[test]
fn the_worker_reads_nothing_from_our_terminal() {
    let script = "echo \"stdin:$(readlink /proc/$$/fd/0)\" >&3";
    let recruit = spawn("/bin/sh", &["-c", script]).unwrap();
    let pid = recruit.pid;
    assert_eq!(
        read_to_end(recruit.channel.shared()).trim(),
        "stdin:/dev/null"
    );
    assert_eq!(wait(pid), Exit::Code(0));
}

#[test]
fn reaping_reports_the_exit_status_or_the_signal() {
    let recruit = spawn("/bin/sh", &["-c", "exit 7"]).unwrap();
    let pid = recruit.pid;
    read_to_end(recruit.channel.shared());
    assert_eq!(wait(pid), Exit::Code(7));

    let recruit = spawn("/bin/sh", &["-c", "exec sleep 30"]).unwrap();
    assert_eq!(
        reap(recruit.pid).unwrap(),
        None,
        "a running worker is not reaped"
    );
    kill(recruit.pid, libc::SIGKILL).unwrap();
    assert_eq!(wait(recruit.pid), Exit::Signal(libc::SIGKILL));
    kill(recruit.pid, libc::SIGKILL).expect("signalling a reaped worker is not an error");
}

#[test]
fn reaping_by_pid_leaves_other_children_to_their_owners() {
    let mut other = std::process::Command::new("/bin/sh")
        .args(["-c", "exit 3"])
        .spawn()
        .unwrap();
    let recruit = spawn("/bin/sh", &["-c", "exit 0"]).unwrap();
    let pid = recruit.pid;
    read_to_end(recruit.channel.shared());
    assert_eq!(wait(pid), Exit::Code(0));
    // The other child's status is still there for whoever started it.
    assert_eq!(other.wait().unwrap().code(), Some(3));
}

#[cfg(target_os = "linux")]
#[test]
fn the_worker_starts_with_default_signal_handling_and_nothing_blocked() {
    // As Node's child_process does: no disposition or mask of ours reaches the worker. The Rust
    // runtime ignores SIGPIPE in this test process (Node does too); block SIGUSR1 here as well.
    let mut usr1: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        assert_eq!(libc::signal(libc::SIGPIPE, libc::SIG_IGN), libc::SIG_IGN);
        libc::sigemptyset(&mut usr1);
        libc::sigaddset(&mut usr1, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &usr1, &mut before);
    }
    let script = "exec grep -E '^Sig(Blk|Ign)' /proc/self/status >&3";
    let recruit = spawn("/bin/sh", &["-c", script]);
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    let recruit = recruit.unwrap();
    let pid = recruit.pid;
    let said = read_to_end(recruit.channel.shared());
    let words: Vec<&str> = said.split_whitespace().collect();
    assert_eq!((words[0], words[2]), ("SigBlk:", "SigIgn:"), "{said}");
    // Signals 1-31; glibc keeps 32 and 33 for itself, and sigaction refuses them.
    let standard = |hex: &str| u64::from_str_radix(hex, 16).unwrap() & 0x7fff_ffff;
    assert_eq!(standard(words[1]), 0, "blocked: {said}");
    assert_eq!(standard(words[3]), 0, "ignored: {said}");
    assert_eq!(wait(pid), Exit::Code(0));
}

#[test]
fn a_program_that_cannot_start_is_an_error_naming_the_step() {
    let error = spawn("/nonexistent/node", &["worker.js"]).unwrap_err();
    assert_eq!(error.code(), "ERR_NEXUS_IO");
    assert!(
        error.to_string().starts_with("starting a worker failed"),
        "{error}"
    );
    assert!(error.to_string().contains("/nonexistent/node"), "{error}");
    let error = spawn("/bin/sh", &["-c", "nul\0byte"]).unwrap_err();
    assert!(error.to_string().contains("NUL byte"), "{error}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_worker_is_killed_when_its_recruiter_goes_away() {
    // PR_SET_PDEATHSIG fires when the thread that forked ends, which lets a test show it without
    // killing itself: recruit from a thread, let the thread finish, and the worker is killed.
    let pid = std::thread::spawn(|| {
        let recruit = spawn("/bin/sh", &["-c", "exec sleep 30"]).unwrap();
        std::mem::forget(recruit.channel); // keep the channel open: only the parent's death counts
        recruit.pid
    })
    .join()
    .unwrap();
    assert_eq!(wait(pid), Exit::Signal(libc::SIGKILL));
}
