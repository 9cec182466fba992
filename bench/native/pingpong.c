/*
 * pingpong.c — the native reference point ("practical limit") for the ping-pong benchmark.
 *
 * Two processes (parent + forked child) exchange 64-byte messages, each framed as a
 * 4-byte little-endian length followed by the payload. The parent sends a ping, the
 * child echoes the frame back, the parent waits for it before sending the next one:
 * one round trip. Plain blocking read/write; the reader is buffered (one read() usually
 * yields a whole frame), so the steady state is one write + one read per message.
 *
 * Usage:   pingpong <socketpair|tcp> [roundTrips] [warmup]
 *   roundTrips  counted round trips (default: $BENCH_ROUNDTRIPS or 100000)
 *   warmup      extra uncounted round trips done first (default: $BENCH_WARMUP or 5% of roundTrips)
 *   $BENCH_TIMEOUT_MS  hard limit for the whole run (default 120000); on expiry the child is
 *                      killed and the program exits with status 3.
 *
 * Output (stdout, one line):
 *   {"impl":"native","transport":"socketpair","roundTrips":100000,"seconds":0.123456789}
 *
 * tcp mode: the parent listens on 127.0.0.1 (ephemeral port), the child connects; TCP_NODELAY
 * on both ends. Only loopback is ever used.
 *
 * Build: gcc -O2 -o bench/.build/pingpong bench/native/pingpong.c   (bench/run.js does this)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define PAYLOAD 64
#define HEADER 4
#define MAX_PAYLOAD 1024

static volatile pid_t child_pid = -1;

static void die(const char *what) {
    fprintf(stderr, "pingpong[%d]: %s: %s\n", (int)getpid(), what, errno ? strerror(errno) : "error");
    if (child_pid > 0) kill(child_pid, SIGKILL);
    exit(2);
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "pingpong: timeout, giving up\n";
    if (child_pid > 0) kill(child_pid, SIGKILL);
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(3);
}

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void write_full(int fd, const unsigned char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Buffered frame reader: handles frames split across reads and several frames per read. */
typedef struct {
    int fd;
    size_t start, end;
    unsigned char buf[8192];
} reader_t;

/* Reads one frame; copies its payload to out. Returns the payload length, or -1 on EOF. */
static long read_frame(reader_t *r, unsigned char *out) {
    for (;;) {
        size_t avail = r->end - r->start;
        if (avail >= HEADER) {
            uint32_t len = get_le32(r->buf + r->start);
            if (len > MAX_PAYLOAD) {
                errno = EPROTO;
                die("frame too large");
            }
            if (avail >= HEADER + len) {
                memcpy(out, r->buf + r->start + HEADER, len);
                r->start += HEADER + len;
                if (r->start == r->end) r->start = r->end = 0;
                return (long)len;
            }
        }
        if (sizeof r->buf - r->end < HEADER + MAX_PAYLOAD) { /* compact */
            memmove(r->buf, r->buf + r->start, avail);
            r->start = 0;
            r->end = avail;
        }
        ssize_t n = read(r->fd, r->buf + r->end, sizeof r->buf - r->end);
        if (n == 0) {
            if (avail != 0) {
                errno = EPROTO;
                die("EOF inside a frame");
            }
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            die("read");
        }
        r->end += (size_t)n;
    }
}

/* Child side: echo every frame back until EOF. */
static int run_echo(int fd) {
    reader_t *r = calloc(1, sizeof *r);
    if (!r) die("calloc");
    r->fd = fd;
    unsigned char frame[HEADER + MAX_PAYLOAD];
    long len;
    while ((len = read_frame(r, frame + HEADER)) >= 0) {
        put_le32(frame, (uint32_t)len);
        write_full(fd, frame, HEADER + (size_t)len);
    }
    free(r);
    close(fd);
    return 0;
}

/* Parent side: warmup + counted round trips; returns seconds for the counted ones. */
static double run_pinger(int fd, long round_trips, long warmup) {
    reader_t *r = calloc(1, sizeof *r);
    if (!r) die("calloc");
    r->fd = fd;
    unsigned char frame[HEADER + PAYLOAD];
    unsigned char reply[MAX_PAYLOAD];
    put_le32(frame, PAYLOAD);
    memset(frame + HEADER, 'x', PAYLOAD);

    double t0 = now_seconds();
    long total = warmup + round_trips;
    for (long i = 0; i < total; i++) {
        if (i == warmup) t0 = now_seconds();
        put_le32(frame + HEADER, (uint32_t)i); /* sequence number, checked on the way back */
        write_full(fd, frame, sizeof frame);
        long len = read_frame(r, reply);
        if (len != PAYLOAD || get_le32(reply) != (uint32_t)i) {
            errno = EPROTO;
            die(len < 0 ? "peer closed early" : "bad echo");
        }
    }
    double seconds = now_seconds() - t0;
    free(r);
    return seconds;
}

static void set_nodelay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("setsockopt(TCP_NODELAY)");
}

static void child_setup(void) {
    /* Die with the parent, whatever happens to it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(1);
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "socketpair") != 0 && strcmp(argv[1], "tcp") != 0)) {
        fprintf(stderr, "usage: %s <socketpair|tcp> [roundTrips] [warmup]\n", argv[0]);
        return 64;
    }
    const char *transport = argv[1];
    long round_trips = argc > 2 ? atol(argv[2]) : env_long("BENCH_ROUNDTRIPS", 100000, 0);
    long warmup = argc > 3 ? atol(argv[3]) : env_long("BENCH_WARMUP", round_trips / 20, 0);
    long timeout_ms = env_long("BENCH_TIMEOUT_MS", 120000, 0);
    if (round_trips <= 0 || warmup < 0) {
        fprintf(stderr, "pingpong: roundTrips must be > 0 and warmup >= 0\n");
        return 64;
    }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)((timeout_ms + 999) / 1000)); /* fork() does not inherit alarms: the child sets its own */

    int parent_fd = -1;
    if (strcmp(transport, "socketpair") == 0) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) die("socketpair");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            child_setup();
            alarm((unsigned)((timeout_ms + 999) / 1000) + 5);
            close(sv[0]);
            return run_echo(sv[1]);
        }
        child_pid = pid;
        close(sv[1]);
        parent_fd = sv[0];
    } else {
        int lfd = socket(AF_INET, SOCK_STREAM, 0);
        if (lfd < 0) die("socket");
        struct sockaddr_in addr;
        memset(&addr, 0, sizeof addr);
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind 127.0.0.1");
        if (listen(lfd, 1) < 0) die("listen");
        socklen_t alen = sizeof addr;
        if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) die("getsockname");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            child_setup();
            alarm((unsigned)((timeout_ms + 999) / 1000) + 5);
            close(lfd);
            int cfd = socket(AF_INET, SOCK_STREAM, 0);
            if (cfd < 0) die("socket");
            if (connect(cfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
            set_nodelay(cfd);
            return run_echo(cfd);
        }
        child_pid = pid;
        int afd;
        do afd = accept(lfd, NULL, NULL);
        while (afd < 0 && errno == EINTR);
        if (afd < 0) die("accept");
        close(lfd);
        set_nodelay(afd);
        parent_fd = afd;
    }

    double seconds = run_pinger(parent_fd, round_trips, warmup);
    close(parent_fd); /* child sees EOF and exits */

    int status = 0;
    while (waitpid(child_pid, &status, 0) < 0) {
        if (errno != EINTR) die("waitpid");
    }
    child_pid = -1;
    alarm(0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pingpong: child failed (status 0x%x)\n", status);
        return 2;
    }

    printf("{\"impl\":\"native\",\"transport\":\"%s\",\"roundTrips\":%ld,\"seconds\":%.9f}\n", transport, round_trips,
           seconds);
    return 0;
}
