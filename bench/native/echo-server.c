/*
 * echo-server.c — the native reference point for the echo benchmark: what one thread with epoll
 * and plain read/write gets out of the kernel, with nothing between the syscalls.
 *
 * Usage:   echo-server
 * Listens on 127.0.0.1 (an ephemeral port), prints the port as one line on stdout, then echoes
 * every byte back on every connection until it is killed. SIGTERM keeps its default action
 * (terminate): there is nothing to flush or save, so a handler would only add code.
 *
 * Level-triggered epoll, one read and one write per wakeup in the steady state. Whatever the
 * kernel does not take at once is kept and the connection waits for EPOLLOUT instead of
 * reading more, so a client that stops reading cannot make the server buffer without bound.
 *
 * Build: gcc -O2 -Wall -Wextra -o bench/.build/echo-server bench/native/echo-server.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536
#define MAX_EVENTS 128

typedef struct {
    int fd;
    size_t start, end; /* bytes read but not yet written back: buf[start..end) */
    unsigned char buf[BUF];
} conn_t;

static int ep;

static void die(const char *what) {
    fprintf(stderr, "echo-server[%d]: %s: %s\n", (int)getpid(), what, strerror(errno));
    exit(2);
}

static void watch(int op, conn_t *c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) die("epoll_ctl");
}

static void drop(conn_t *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c);
}

static void accept_all(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
            die("accept4");
        }
        int one = 1; /* echoes are small writes: never let Nagle hold one back */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = malloc(sizeof *c);
        if (!c) die("malloc");
        c->fd = fd;
        c->start = c->end = 0;
        watch(EPOLL_CTL_ADD, c, EPOLLIN);
    }
}

/* Writes back what is pending; returns 0 when all of it went, 1 when the kernel is full, -1 on error. */
static int flush(conn_t *c) {
    while (c->start < c->end) {
        ssize_t n = write(c->fd, c->buf + c->start, c->end - c->start);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 1 : -1;
        }
        c->start += (size_t)n;
    }
    c->start = c->end = 0;
    return 0;
}

/* Returns 0 when the connection is to be closed. */
static int serve(conn_t *c, unsigned events) {
    if (c->start < c->end) { /* waiting for room: EPOLLOUT (or an error) is why we are here */
        int r = flush(c);
        if (r == 0) watch(EPOLL_CTL_MOD, c, EPOLLIN);
        return r >= 0;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return 1;
    ssize_t n = read(c->fd, c->buf, BUF);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return 0; /* the client is done */
    c->end = (size_t)n;
    int r = flush(c);
    if (r == 1) watch(EPOLL_CTL_MOD, c, EPOLLOUT);
    return r >= 0;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a client that went away is an error return, not a crash */

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind 127.0.0.1");
    if (listen(lfd, SOMAXCONN) < 0) die("listen");
    socklen_t alen = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) die("getsockname");

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    /* The listener is told apart from connections by a NULL pointer. */
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) die("epoll_ctl listener");

    /* Only once it can accept: the harness connects as soon as it reads this line. */
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                accept_all(lfd);
            else if (!serve(events[i].data.ptr, events[i].events))
                drop(events[i].data.ptr);
        }
    }
}
