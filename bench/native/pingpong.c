/*
 * pingpong.c — the native reference point ("practical limit") for the ping-pong benchmark.
 *
 * Two processes (parent + forked child) exchange 64-byte messages (or $BENCH_PAYLOAD bytes), each
 * framed as a 4-byte little-endian length followed by the payload. The parent sends a ping, the
 * child echoes the frame back, the parent waits for it before sending the next one:
 * one round trip. Plain blocking read/write; the reader is buffered (one read() usually
 * yields a whole frame), so the steady state is one write + one read per message.
 *
 * Usage:   pingpong <socketpair|tcp> [roundTrips] [warmup]
 *   roundTrips  counted round trips (default: $BENCH_ROUNDTRIPS or 100000)
 *   warmup      extra uncounted round trips done first (default: $BENCH_WARMUP or 5% of roundTrips)
 *   $BENCH_TIMEOUT_MS  hard limit for the whole run (default 120000); on expiry the child is
 *                      killed and the program exits with status 3.
 *   $BENCH_PAYLOAD     payload bytes per message (default 64, at least 4 for the sequence number,
 *                      at most 64 MiB). Frames are read into one buffer and echoed from it as they
 *                      are, so a large payload costs a read and a write per side, no copy.
 *
 * Output (stdout, one line):
 *   {"impl":"native","transport":"socketpair","roundTrips":100000,"seconds":0.123456789}
 * and, when $BENCH_PAYLOAD is set to other than 64, also "payloadBytes":<n> before "seconds".
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

#define DEFAULT_PAYLOAD 64
#define HEADER 4
#define LARGEST_PAYLOAD (64L << 20)

static size_t payload = DEFAULT_PAYLOAD;

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

/* Buffered frame reader: handles frames split across reads and several frames per read. The
 * buffer holds at least two of the largest frames expected (and 8 KiB), so a whole frame always
 * fits after compaction. */
typedef struct {
    int fd;
    size_t start, end, size;
    unsigned char *buf;
} reader_t;

static reader_t *new_reader(int fd) {
    reader_t *r = calloc(1, sizeof *r);
    if (!r) die("calloc");
    r->fd = fd;
    r->size = 2 * (HEADER + payload) > 8192 ? 2 * (HEADER + payload) : 8192;
    r->buf = malloc(r->size);
    if (!r->buf) die("malloc");
    return r;
}

static void free_reader(reader_t *r) {
    free(r->buf);
    free(r);
}

/* Reads one frame. Returns a pointer to it (header included) inside the reader's buffer, valid
 * until the next call, and sets *len to its payload length; returns NULL on EOF. */
static const unsigned char *read_frame(reader_t *r, size_t *len_out) {
    for (;;) {
        size_t avail = r->end - r->start;
        if (avail >= HEADER) {
            uint32_t len = get_le32(r->buf + r->start);
            if (len > payload) {
                errno = EPROTO;
                die("frame too large");
            }
            if (avail >= HEADER + len) {
                const unsigned char *frame = r->buf + r->start;
                r->start += HEADER + len;
                if (r->start == r->end) r->start = r->end = 0;
                *len_out = len;
                return frame;
            }
        }
        if (r->size - r->end < HEADER + payload) { /* compact */
            memmove(r->buf, r->buf + r->start, avail);
            r->start = 0;
            r->end = avail;
        }
        ssize_t n = read(r->fd, r->buf + r->end, r->size - r->end);
        if (n == 0) {
            if (avail != 0) {
                errno = EPROTO;
                die("EOF inside a frame");
            }
            return NULL;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            die("read");
        }
        r->end += (size_t)n;
    }
}

/* Child side: echo every frame back, as it lies in the read buffer, until EOF. */
static int run_echo(int fd) {
    reader_t *r = new_reader(fd);
    const unsigned char *frame;
    size_t len;
    while ((frame = read_frame(r, &len)) != NULL) write_full(fd, frame, HEADER + len);
    free_reader(r);
    close(fd);
    return 0;
}

/* Parent side: warmup + counted round trips; returns seconds for the counted ones. */
static double run_pinger(int fd, long round_trips, long warmup) {
    reader_t *r = new_reader(fd);
    unsigned char *frame = malloc(HEADER + payload);
    if (!frame) die("malloc");
    put_le32(frame, (uint32_t)payload);
    memset(frame + HEADER, 'x', payload);

    double t0 = now_seconds();
    long total = warmup + round_trips;
    for (long i = 0; i < total; i++) {
        if (i == warmup) t0 = now_seconds();
        put_le32(frame + HEADER, (uint32_t)i); /* sequence number, checked on the way back */
        write_full(fd, frame, HEADER + payload);
        size_t len = 0;
        const unsigned char *reply = read_frame(r, &len);
        if (reply == NULL || len != payload || get_le32(reply + HEADER) != (uint32_t)i) {
            errno = EPROTO;
            die(reply == NULL ? "peer closed early" : "bad echo");
        }
    }
    double seconds = now_seconds() - t0;
    free(frame);
    free_reader(r);
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
    const char *payload_env = getenv("BENCH_PAYLOAD");
    long payload_bytes = env_long("BENCH_PAYLOAD", -1, 4);
    if (payload_env && *payload_env && (payload_bytes < 0 || payload_bytes > LARGEST_PAYLOAD)) {
        fprintf(stderr, "pingpong: BENCH_PAYLOAD must be a whole number from 4 to %ld\n", LARGEST_PAYLOAD);
        return 64;
    }
    if (payload_bytes > 0) payload = (size_t)payload_bytes;
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

    if (payload == DEFAULT_PAYLOAD) {
        printf("{\"impl\":\"native\",\"transport\":\"%s\",\"roundTrips\":%ld,\"seconds\":%.9f}\n", transport,
               round_trips, seconds);
    } else {
        printf("{\"impl\":\"native\",\"transport\":\"%s\",\"roundTrips\":%ld,\"payloadBytes\":%zu,\"seconds\":%.9f}\n",
               transport, round_trips, payload, seconds);
    }
    return 0;
}
