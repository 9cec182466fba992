//! Recruiting primitives: the worker's descriptors, exit statuses, and reaping by pid only.
#![cfg(unix)]

use pyre_nexus_core::recruit::{
    kill, reap, spawn, take_back_stderr, Output, SHARED_FD, STDERR_SPARE_FD,
};
use pyre_nexus_core::{
    Call, Dispatcher, Exit, ReadOutcome, Readiness, SharedChannel, SharedRegion,
};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
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
    // SAFETY: duplicates our own stderr; the copy is closed below.
    let leaked = unsafe { libc::fcntl(2, libc::F_DUPFD, 10) };
    assert!(leaked >= 10);
    let said = open_descriptors(None, Output::Inherit);
    // SAFETY: the copy made above, closed once.
    unsafe { libc::close(leaked) };
    assert_eq!(said, "open: 1 2 3");
}

#[test]
fn a_worker_given_a_region_gets_it_on_fd_4_and_no_other_descriptor() {
    // SAFETY: as in the test above.
    let leaked = unsafe { libc::fcntl(2, libc::F_DUPFD, 10) };
    assert!(leaked >= 10);
    let (_region, fd) = SharedRegion::create(4).unwrap();
    let said = open_descriptors(Some(fd.as_raw_fd()), Output::Inherit);
    // SAFETY: as in the test above.
    unsafe { libc::close(leaked) };
    assert_eq!(said, "open: 1 2 3 4");
}

#[test]
fn a_worker_whose_output_is_captured_or_watched_gets_no_other_descriptor() {
    // SAFETY: as in the test above.
    let leaked = unsafe { libc::fcntl(2, libc::F_DUPFD, 10) };
    assert!(leaked >= 10);
    let captured = open_descriptors(None, Output::Capture);
    let watched = open_descriptors(None, Output::WatchStart);
    let (_region, fd) = SharedRegion::create(4).unwrap();
    let watched_with_region = open_descriptors(Some(fd.as_raw_fd()), Output::WatchStart);
    // SAFETY: as in the test above.
    unsafe { libc::close(leaked) };
    assert_eq!(captured, "open: 1 2 3");
    assert_eq!(watched, "open: 1 2 3 5");
    assert_eq!(watched_with_region, "open: 1 2 3 4 5");
}

#[test]
fn a_worker_whose_output_is_captured_writes_into_pipes_of_ours() {
    let script = "echo out; echo err >&2; echo done >&3";
    let recruit = spawn("/bin/sh", &["-c", script], None, Output::Capture).unwrap();
    let (pid, stdout, stderr) = (
        recruit.pid,
        recruit.stdout.unwrap(),
        recruit.stderr.unwrap(),
    );
    assert_eq!(read_to_end(recruit.channel.shared()), "done\n");
    assert_eq!(wait(pid), Exit::Code(0));
    assert_eq!(read_all(stdout), "out\n");
    assert_eq!(read_all(stderr), "err\n");
}

#[cfg(target_os = "linux")]
#[test]
fn a_worker_watched_starting_writes_to_us_until_it_takes_our_stderr_back_from_fd_5() {
    // `exec 2>&5 5>&-` is the shell's take_back_stderr.
    let script = "echo starting >&2; exec 2>&5 5>&-; \
                  readlink /proc/self/fd/2 >&3; [ -e /dev/fd/5 ] || echo 'fd 5 closed' >&3";
    let recruit = spawn("/bin/sh", &["-c", script], None, Output::WatchStart).unwrap();
    assert!(recruit.stdout.is_none(), "standard output stays ours");
    let (pid, stderr) = (recruit.pid, recruit.stderr.unwrap());
    let said = read_to_end(recruit.channel.shared());
    assert_eq!(wait(pid), Exit::Code(0));
    let ours = std::fs::read_link("/proc/self/fd/2").unwrap();
    assert_eq!(said, format!("{}\nfd 5 closed\n", ours.display()));
    assert_eq!(
        read_all(stderr),
        "starting\n",
        "what it wrote once started went to ours"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn take_back_stderr_puts_ours_on_fd_2_and_closes_fd_5() {
    let exe = std::env::current_exe().unwrap();
    let script = "NEXUS_WORKER_SIDE=1 exec \"$0\" --ignored --exact --nocapture take_back_side >&3";
    let recruit = spawn(
        "/bin/sh",
        &["-c", script, exe.to_str().unwrap()],
        None,
        Output::WatchStart,
    )
    .unwrap();
    let (pid, stderr) = (recruit.pid, recruit.stderr.unwrap());
    let said = read_to_end(recruit.channel.shared());
    assert_eq!(wait(pid), Exit::Code(0), "the worker side failed: {said}");
    let ours = std::fs::read_link("/proc/self/fd/2").unwrap();
    assert!(
        said.contains(&format!("fd 2: {}\n", ours.display())),
        "{said}"
    );
    assert!(read_all(stderr).contains("starting\n"));
}

/// The worker side of the test above, which runs it in a worker; a no-op anywhere else.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "run by take_back_stderr_puts_ours_on_fd_2_and_closes_fd_5, in a worker"]
fn take_back_side() {
    if std::env::var_os("NEXUS_WORKER_SIDE").is_none() {
        return;
    }
    eprintln!("starting");
    take_back_stderr().unwrap();
    // SAFETY: asks the flags of a descriptor number; a closed one is an error, not undefined.
    let flags = unsafe { libc::fcntl(STDERR_SPARE_FD, libc::F_GETFD) };
    assert_eq!(flags, -1, "the spare descriptor is closed");
    let fd2 = std::fs::read_link("/proc/self/fd/2").unwrap();
    println!("fd 2: {}", fd2.display());
}

/// Everything written into a pipe of a worker's output, up to its end (the worker has exited).
fn read_all(fd: std::os::fd::OwnedFd) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text).unwrap();
    text
}

/// The descriptors from 1 to 50 that a worker finds open, as it reports them: `open: 1 2 3 ...`.
fn open_descriptors(shared: Option<i32>, output: Output) -> String {
    let script = "open=''; for fd in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 \
                  26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50; do \
                  if [ -e /dev/fd/$fd ]; then open=\"$open $fd\"; fi; done; echo \"open:$open\" >&3";
    let recruit = spawn("/bin/sh", &["-c", script], shared, output).unwrap();
    let pid = recruit.pid;
    let said = read_to_end(recruit.channel.shared());
    assert_eq!(wait(pid), Exit::Code(0));
    said.trim().to_owned()
}

#[test]
fn a_worker_given_a_region_stores_what_its_team_loads() {
    let (region, fd) = SharedRegion::create(4).unwrap();
    // The worker is this test binary running only `worker_side`, its output on the channel.
    let exe = std::env::current_exe().unwrap();
    let script = "NEXUS_WORKER_SIDE=1 exec \"$0\" --ignored --exact worker_side >&3 2>&3";
    let recruit = spawn(
        "/bin/sh",
        &["-c", script, exe.to_str().unwrap()],
        Some(fd.as_raw_fd()),
        Output::Inherit,
    )
    .unwrap();
    let pid = recruit.pid;
    let said = read_to_end(recruit.channel.shared());
    assert_eq!(wait(pid), Exit::Code(0), "the worker side failed: {said}");
    assert_eq!(region.words()[0].load(Ordering::SeqCst), 0x5eed);
}

/// The worker side of the test above, which runs it in a worker; a no-op anywhere else.
#[test]
#[ignore = "run by a_worker_given_a_region_stores_what_its_team_loads, in a worker"]
fn worker_side() {
    if std::env::var_os("NEXUS_WORKER_SIDE").is_none() {
        return;
    }
    let region = SharedRegion::inherit(4).unwrap();
    // SAFETY: as above.
    let flags = unsafe { libc::fcntl(SHARED_FD, libc::F_GETFD) };
    assert_eq!(flags, -1, "the inherited descriptor is closed once mapped");
    region.words()[0].store(0x5eed, Ordering::SeqCst);
}

/// Runs the ignored test `name` in a process of its own, where it may take descriptors and
/// change their flags (ours are shared by the tests running in parallel); it says `name: ok`.
fn in_own_process(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--nocapture"])
        .env("NEXUS_WORKER_SIDE", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(&format!("{name}: ok")), "{said}");
}

#[test]
fn the_worker_keeps_our_output_even_when_it_is_close_on_exec() {
    in_own_process("output_side");
}

/// The side of the test above that marks its standard output and error close-on-exec, as Node
/// does at start-up (libuv's `uv_disable_stdio_inheritance`).
#[test]
#[ignore = "run by the_worker_keeps_our_output_even_when_it_is_close_on_exec, in a process of its own"]
fn output_side() {
    if std::env::var_os("NEXUS_WORKER_SIDE").is_none() {
        return;
    }
    for fd in [1, 2] {
        assert_eq!(
            // SAFETY: sets a flag on our own standard output and error, in a process of its own.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) },
            0
        );
    }
    assert_eq!(open_descriptors(None, Output::Inherit), "open: 1 2 3");
    println!("output_side: ok");
}

#[cfg(target_os = "linux")]
#[test]
fn a_region_on_fd_3_or_4_lands_on_4_and_the_channel_on_3() {
    in_own_process("crossed_side");
}

/// The side of the test above that takes descriptors 3 and 4 for a region.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "run by a_region_on_fd_3_or_4_lands_on_4_and_the_channel_on_3, in a process of its own"]
fn crossed_side() {
    if std::env::var_os("NEXUS_WORKER_SIDE").is_none() {
        return;
    }
    let script = "readlink /proc/self/fd/3 /proc/self/fd/4 >&3";
    let (_region, fd) = SharedRegion::create(4).unwrap();
    // Out of the way: a fresh process's region lands on fd 3.
    // SAFETY: duplicates the region's descriptor, which is open; the copy is closed at the end.
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    drop(fd);
    for place in [3, 4] {
        assert_eq!(
            // SAFETY: asks the flags of a descriptor number; a closed one is an error, not undefined.
            unsafe { libc::fcntl(3, libc::F_GETFD) },
            -1,
            "fd 3 is taken"
        );
        assert_eq!(
            // SAFETY: as above.
            unsafe { libc::fcntl(4, libc::F_GETFD) },
            -1,
            "fd 4 is taken"
        );
        // SAFETY: `place` is free (asserted above), in a process of its own.
        assert_eq!(unsafe { libc::dup2(high, place) }, place);
        let recruit = spawn("/bin/sh", &["-c", script], Some(place), Output::Inherit).unwrap();
        // SAFETY: the copy made just above, closed once.
        unsafe { libc::close(place) };
        let pid = recruit.pid;
        let said = read_to_end(recruit.channel.shared());
        assert_eq!(wait(pid), Exit::Code(0));
        let links: Vec<&str> = said.lines().collect();
        assert!(
            links.len() == 2 && links[0].starts_with("socket:"),
            "{said}"
        );
        assert!(links[1].starts_with("/memfd:"), "{said}");
    }
    // SAFETY: the copy made at the start, closed once.
    unsafe { libc::close(high) };
    println!("crossed_side: ok");
}

#[test]
fn a_region_descriptor_that_is_not_open_fails_the_start() {
    let error = spawn("/bin/sh", &["-c", "exit 0"], Some(100_000), Output::Inherit).unwrap_err();
    assert!(
        error.to_string().starts_with("starting a worker failed"),
        "{error}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_worker_reads_nothing_from_our_terminal() {
    let script = "echo \"stdin:$(readlink /proc/$$/fd/0)\" >&3";
    let recruit = spawn("/bin/sh", &["-c", script], None, Output::Inherit).unwrap();
    let pid = recruit.pid;
    assert_eq!(
        read_to_end(recruit.channel.shared()).trim(),
        "stdin:/dev/null"
    );
    assert_eq!(wait(pid), Exit::Code(0));
}

#[test]
fn reaping_reports_the_exit_status_or_the_signal() {
    let recruit = spawn("/bin/sh", &["-c", "exit 7"], None, Output::Inherit).unwrap();
    let pid = recruit.pid;
    read_to_end(recruit.channel.shared());
    assert_eq!(wait(pid), Exit::Code(7));

    let recruit = spawn("/bin/sh", &["-c", "exec sleep 30"], None, Output::Inherit).unwrap();
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
    let recruit = spawn("/bin/sh", &["-c", "exit 0"], None, Output::Inherit).unwrap();
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
    // SAFETY: a signal set is plain data; zeroes are a valid value, emptied below.
    let mut usr1: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; filled in by pthread_sigmask.
    let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: signal disposition and mask of this thread, restored below; the sets are ours.
    unsafe {
        assert_eq!(libc::signal(libc::SIGPIPE, libc::SIG_IGN), libc::SIG_IGN);
        libc::sigemptyset(&mut usr1);
        libc::sigaddset(&mut usr1, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &usr1, &mut before);
    }
    let script = "exec grep -E '^Sig(Blk|Ign)' /proc/self/status >&3";
    let recruit = spawn("/bin/sh", &["-c", script], None, Output::Inherit);
    // SAFETY: restores the mask saved above.
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
    let error = spawn("/nonexistent/node", &["worker.js"], None, Output::Inherit).unwrap_err();
    assert_eq!(error.code(), "ERR_NEXUS_IO");
    assert!(
        error.to_string().starts_with("starting a worker failed"),
        "{error}"
    );
    assert!(error.to_string().contains("/nonexistent/node"), "{error}");
    let error = spawn("/bin/sh", &["-c", "nul\0byte"], None, Output::Inherit).unwrap_err();
    assert!(error.to_string().contains("NUL byte"), "{error}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_worker_is_killed_when_its_recruiter_goes_away() {
    // PR_SET_PDEATHSIG fires when the thread that forked ends, which lets a test show it without
    // killing itself: recruit from a thread, let the thread finish, and the worker is killed.
    let pid = std::thread::spawn(|| {
        let recruit = spawn("/bin/sh", &["-c", "exec sleep 30"], None, Output::Inherit).unwrap();
        std::mem::forget(recruit.channel); // keep the channel open: only the parent's death counts
        recruit.pid
    })
    .join()
    .unwrap();
    assert_eq!(wait(pid), Exit::Signal(libc::SIGKILL));
}
