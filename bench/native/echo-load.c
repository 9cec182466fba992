/*
 * echo-load.c — the one load generator for every echo server, so that servers differ and the
 * client does not. Written in C with epoll so the client stays cheaper than any server it
 * measures: on a 2-CPU machine it gets one CPU and the server the other.
 *
 * Usage:   echo-load <port> <connections> <roundTrips> <warmup>
 *   Opens <connections> TCP connections (TCP_NODELAY) to 127.0.0.1:<port>. Each one plays
 *   ping-pong on its own: send 64 bytes, wait until the same 64 bytes are back, send the next.
 *   All connections are in flight at once. <warmup> round trips (summed over the connections)
 *   are done uncounted, then the clock runs for the next <roundTrips>. The total is fixed rather
 *   than the duration so that every run does the same work whatever the server's speed; the
 *   last few in flight when the count is reached are simply left unanswered.
 *   $BENCH_TIMEOUT_MS  hard limit for the whole run (default 120000), after which it exits 3.
 *
 * Every payload is different (connection, sequence number) and is compared byte for byte with
 * what comes back: an echo that is wrong, short, long or missing fails the run (exit 2).
 *
 * Output (stdout, one line):
 *   {"connections":64,"roundTrips":100000,"warmup":5000,"seconds":0.123456789}
 *
 * Build: gcc -O2 -Wall -Wextra -o bench/.build/echo-load bench/native/echo-load.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define PAYLOAD 64

typedef struct {
    int fd;
    uint32_t id;
    uint32_t seq;                 /* sequence number of the ping in flight */
    size_t got;                   /* bytes of its echo received so far */
    unsigned char sent[PAYLOAD];
    unsigned char back[PAYLOAD * 2]; /* room for more than was sent, so an over-long echo shows */
} conn_t;

static void fail(const char *what, int with_errno) {
    fprintf(stderr, "echo-load[%d]: %s%s%s\n", (int)getpid(), what, with_errno ? ": " : "",
            with_errno ? strerror(errno) : "");
    exit(2);
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "echo-load: timeout, giving up\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(3);
}

static long arg_long(const char *s, long min, const char *name) {
    char *end;
    long n = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || n < min) {
        fprintf(stderr, "echo-load: %s must be an integer >= %ld, got '%s'\n", name, min, s);
        exit(64);
    }
    return n;
}

/* A payload nobody could produce without reading this one: a stale or shifted echo mismatches. */
static void send_ping(conn_t *c) {
    c->seq++;
    for (int i = 0; i < PAYLOAD; i++) c->sent[i] = (unsigned char)(c->seq * 131u + c->id * 17u + (unsigned)i * 7u);
    memcpy(c->sent, &c->seq, sizeof c->seq);
    memcpy(c->sent + 4, &c->id, sizeof c->id);
    c->got = 0;
    /* At most 64 bytes are ever outstanding, far below any socket buffer: a short write can only
     * mean the connection is broken, so it is an error rather than something to wait out. */
    ssize_t n;
    do n = write(c->fd, c->sent, PAYLOAD);
    while (n < 0 && errno == EINTR);
    if (n != PAYLOAD) fail(n < 0 ? "write" : "short write", n < 0);
}

/* Reads what is there; returns 1 when the whole echo is back and correct. */
static int receive(conn_t *c) {
    ssize_t n = read(c->fd, c->back + c->got, sizeof c->back - c->got);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        fail("read", 1);
    }
    if (n == 0) fail("the server closed a connection", 0);
    c->got += (size_t)n;
    if (c->got > PAYLOAD) fail("more bytes came back than were sent", 0);
    if (c->got < PAYLOAD) return 0;
    if (memcmp(c->back, c->sent, PAYLOAD) != 0) fail("the echo differs from what was sent", 0);
    return 1;
}

static int connect_one(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket", 1);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* Blocking connect: simplest, and on loopback the handshake is done by the kernel whether or
     * not the server has accepted yet. */
    int r;
    do r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    while (r < 0 && errno == EINTR);
    if (r < 0) fail("connect 127.0.0.1", 1);
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) fail("TCP_NODELAY", 1);
    /* Reads must never block the loop, whatever epoll said a moment ago. */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) fail("O_NONBLOCK", 1);
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s <port> <connections> <roundTrips> <warmup>\n", argv[0]);
        return 64;
    }
    int port = (int)arg_long(argv[1], 1, "port");
    long nconn = arg_long(argv[2], 1, "connections");
    long round_trips = arg_long(argv[3], 1, "roundTrips");
    long warmup = arg_long(argv[4], 0, "warmup");
    if (port > 65535) fail("port must be <= 65535", 0);

    signal(SIGPIPE, SIG_IGN); /* a server that died shows as a failed write, with a message */
    signal(SIGALRM, on_alarm);
    alarm((unsigned)((env_long("BENCH_TIMEOUT_MS", 120000, 1) + 999) / 1000));

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1", 1);
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    if (!conns) fail("calloc", 1);
    for (long i = 0; i < nconn; i++) {
        conns[i].fd = connect_one(port);
        conns[i].id = (uint32_t)i;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) fail("epoll_ctl", 1);
    }

    /* Round trips are counted over all connections together; a connection sends its next ping
     * only while the total has room, so exactly warmup + roundTrips are sent. */
    const long total = warmup + round_trips;
    long issued = 0, done = 0;
    double t0 = now_seconds(), t1 = t0;
    for (long i = 0; i < nconn && issued < total; i++, issued++) send_ping(&conns[i]);

    struct epoll_event events[256];
    while (done < total) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("epoll_wait", 1);
        }
        for (int i = 0; i < n && done < total; i++) {
            conn_t *c = events[i].data.ptr;
            if (!receive(c)) continue;
            done++;
            if (done == warmup) t0 = now_seconds();
            if (issued < total) {
                send_ping(c);
                issued++;
            }
        }
    }
    t1 = now_seconds();

    for (long i = 0; i < nconn; i++) close(conns[i].fd);
    free(conns);
    printf("{\"connections\":%ld,\"roundTrips\":%ld,\"warmup\":%ld,\"seconds\":%.9f}\n", nconn, round_trips, warmup,
           t1 - t0);
    return 0;
}
