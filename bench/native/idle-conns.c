/*
 * idle-conns.c — holds many idle TCP connections open to a server, for the scale benchmark: they
 * are connected, then never written to, while the harness measures the server.
 *
 * Usage:   idle-conns <port> <connections>
 *   Opens <connections> TCP connections to 127.0.0.1:<port>, a batch of 100 non-blocking connects
 *   at a time (a batch is connected before the next one starts, so a listen queue is not flooded).
 *   Raises its own RLIMIT_NOFILE soft limit to the hard limit when it needs more descriptors.
 *   Once every connection is up it prints one line and flushes it:
 *     {"connections":10000,"seconds":0.123456789}
 *   ("seconds": the time taken to connect them all), then holds them, reading (and counting)
 *   anything that arrives and counting connections the server closes, until SIGTERM or SIGINT.
 *   It then closes them all and prints a second line:
 *     {"closedByServer":0,"bytesReceived":0}
 *   $BENCH_TIMEOUT_MS  limit for connecting them all (default 120000), after which it exits 3.
 *
 * Exit status 2 on any failure (with a message on stderr), 64 on bad usage.
 *
 * Build: gcc -O2 -Wall -Wextra -o bench/.build/idle-conns bench/native/idle-conns.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define BATCH 100

static volatile sig_atomic_t stopping = 0;

static void on_stop(int sig) {
    (void)sig;
    stopping = 1;
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "idle-conns: timeout while connecting, giving up\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(3);
}

static void fail(const char *what, int with_errno) {
    fprintf(stderr, "idle-conns[%d]: %s%s%s\n", (int)getpid(), what, with_errno ? ": " : "",
            with_errno ? strerror(errno) : "");
    exit(2);
}

static long arg_long(const char *s, long min, const char *name) {
    char *end;
    long n = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || n < min) {
        fprintf(stderr, "idle-conns: %s must be an integer >= %ld, got '%s'\n", name, min, s);
        exit(64);
    }
    return n;
}

static void raise_nofile(long needed) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) fail("getrlimit", 1);
    if ((long)rl.rlim_cur >= needed) return;
    if (rl.rlim_max != RLIM_INFINITY && (long)rl.rlim_max < needed) {
        fprintf(stderr, "idle-conns: needs %ld descriptors, the hard limit is %ld\n", needed, (long)rl.rlim_max);
        exit(2);
    }
    rl.rlim_cur = (rlim_t)needed;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) fail("setrlimit(RLIMIT_NOFILE)", 1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <port> <connections>\n", argv[0]);
        return 64;
    }
    int port = (int)arg_long(argv[1], 1, "port");
    long nconn = arg_long(argv[2], 1, "connections");
    if (port > 65535) fail("port must be <= 65535", 0);
    raise_nofile(nconn + 64);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)((env_long("BENCH_TIMEOUT_MS", 120000, 1) + 999) / 1000));

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1", 1);
    int *fds = calloc((size_t)nconn, sizeof *fds);
    if (!fds) fail("calloc", 1);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct epoll_event events[BATCH];

    double t0 = now_seconds();
    for (long first = 0; first < nconn; first += BATCH) {
        long last = first + BATCH < nconn ? first + BATCH : nconn;
        for (long i = first; i < last; i++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) fail("socket", 1);
            if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
                fail("connect 127.0.0.1", 1);
            }
            fds[i] = fd;
            struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) fail("epoll_ctl", 1);
        }
        long waiting = last - first;
        while (waiting > 0) {
            int n = epoll_wait(ep, events, BATCH, -1);
            if (n < 0) {
                if (errno == EINTR) continue;
                fail("epoll_wait", 1);
            }
            for (int k = 0; k < n; k++) {
                long i = (long)events[k].data.u64;
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len) < 0) fail("getsockopt", 1);
                if (err != 0) {
                    errno = err;
                    fail("connecting", 1);
                }
                /* Connected: from now on only hear of data or of the server hanging up. */
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)i};
                if (epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev) < 0) fail("epoll_ctl", 1);
                waiting--;
            }
        }
    }
    double seconds = now_seconds() - t0;
    alarm(0);
    printf("{\"connections\":%ld,\"seconds\":%.9f}\n", nconn, seconds);
    fflush(stdout);

    long closed = 0;
    long long received = 0;
    unsigned char buf[4096];
    while (!stopping) {
        int n = epoll_wait(ep, events, BATCH, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("epoll_wait", 1);
        }
        for (int k = 0; k < n; k++) {
            long i = (long)events[k].data.u64;
            ssize_t r = read(fds[i], buf, sizeof buf);
            if (r > 0) {
                received += r;
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                closed++;
                epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
            }
        }
    }
    for (long i = 0; i < nconn; i++) close(fds[i]);
    free(fds);
    printf("{\"closedByServer\":%ld,\"bytesReceived\":%lld}\n", closed, received);
    return 0;
}
