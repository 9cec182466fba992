/* paced.c: what one message costs a receiver that sleeps between messages, as a pool's parent
 * does between the reports of long tasks.
 *
 * Usage:   paced <gapMicroseconds> <messages> <warmup> <receiver command...>
 *          paced echo
 *
 * The first form starts the receiver with one end of a socketpair(AF_UNIX, SOCK_STREAM) on its
 * descriptor 3, then sends it `warmup` uncounted and `messages` counted 64-byte frames (a 4-byte
 * little-endian length + payload), one at a time: it busy-waits `gapMicroseconds` (as a worker
 * running a task keeps its CPU), sends a frame and reads the echo back whole. Over the counted
 * messages it measures the receiver's CPU time, all its threads together, from
 * /proc/<pid>/task/<tid>/schedstat (nanoseconds on a CPU), and the round trip. Prints one line:
 *   {"messages":400,"gapUs":2500,"cpuUsPerMessage":12.345,"roundTripUs":67.890}
 *
 * `paced echo` is the native receiver: blocking read and write of whatever arrives on fd 3.
 * Exit status: 0 on success, 1 on a failed system call or a wrong echo, 64 on bad usage. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

enum { PAYLOAD = 64, FRAME = 4 + PAYLOAD };

static int echo(void) {
    char buf[4096];
    for (;;) {
        ssize_t n = read(3, buf, sizeof buf);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("paced echo: read");
            return 1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(3, buf + off, (size_t)(n - off));
            if (w < 0) {
                perror("paced echo: write");
                return 1;
            }
            off += w;
        }
    }
}

/* Nanoseconds every thread of `pid` has spent on a CPU so far; -1 if none can be read. */
static long long cpu_ns(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (!dir) return -1;
    long long total = 0;
    int threads = 0;
    for (struct dirent *d; (d = readdir(dir)) != NULL;) {
        if (d->d_name[0] == '.') continue;
        char file[300];
        snprintf(file, sizeof file, "/proc/%d/task/%s/schedstat", (int)pid, d->d_name);
        FILE *f = fopen(file, "r");
        long long ns = 0;
        if (f && fscanf(f, "%lld", &ns) == 1) {
            total += ns;
            threads++;
        }
        if (f) fclose(f);
    }
    closedir(dir);
    return threads > 0 ? total : -1;
}

static void spin_until(double t) {
    while (now_seconds() < t) {
    }
}

/* The receiver's CPU time once it has had a millisecond to finish with the last echo: schedstat
 * leaves out a thread's current stretch on a CPU. */
static long long settled_cpu_ns(pid_t pid) {
    spin_until(now_seconds() + 1e-3);
    return cpu_ns(pid);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "echo") == 0) return echo();
    if (argc < 5) {
        fprintf(stderr, "usage: %s <gapMicroseconds> <messages> <warmup> <receiver command...> | echo\n", argv[0]);
        return 64;
    }
    long gap_us = atol(argv[1]), messages = atol(argv[2]), warmup = atol(argv[3]);
    if (gap_us < 0 || messages < 1 || warmup < 0) {
        fprintf(stderr, "paced: bad <gapMicroseconds> <messages> <warmup>\n");
        return 64;
    }
    /* A receiver that dies must fail the run with a message, not kill the sender with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("paced: socketpair");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("paced: fork");
        return 1;
    }
    if (pid == 0) {
        /* The receiver's end goes on descriptor 3, whatever number it had. */
        close(sv[0]);
        if (sv[1] != 3) {
            if (dup2(sv[1], 3) < 0) _exit(127);
            close(sv[1]);
        }
        execvp(argv[4], argv + 4);
        perror("paced: exec");
        _exit(127);
    }
    close(sv[1]);
    int fd = sv[0];

    unsigned char out[FRAME] = {0}, in[FRAME];
    uint32_t len = PAYLOAD; /* little-endian on every machine this runs on */
    memcpy(out, &len, 4);
    long long cpu_start = 0;
    double rtt = 0;
    for (long i = 0; i < warmup + messages; i++) {
        if (i == warmup) cpu_start = settled_cpu_ns(pid);
        spin_until(now_seconds() + (double)gap_us / 1e6);
        memcpy(out + 4, &i, sizeof i); /* a sequence number, checked in the echo */
        double sent = now_seconds();
        ssize_t w = write(fd, out, FRAME);
        if (w != FRAME) {
            fprintf(stderr, "paced: write: %s\n", w < 0 ? strerror(errno) : "short write");
            return 1;
        }
        for (size_t got = 0; got < FRAME;) {
            ssize_t n = read(fd, in + got, FRAME - got);
            if (n <= 0) {
                fprintf(stderr, "paced: the receiver %s\n", n == 0 ? "closed the connection" : strerror(errno));
                return 1;
            }
            got += (size_t)n;
        }
        if (i >= warmup) rtt += now_seconds() - sent;
        if (memcmp(in, out, FRAME) != 0) {
            fprintf(stderr, "paced: echo %ld differs from what was sent\n", i);
            return 1;
        }
    }
    long long cpu_end = settled_cpu_ns(pid);
    close(fd);
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) {
        perror("paced: waitpid");
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status)) fprintf(stderr, "paced: the receiver was killed by signal %d\n", WTERMSIG(status));
        else fprintf(stderr, "paced: the receiver exited with status %d\n", WEXITSTATUS(status));
        return 1;
    }
    if (cpu_start < 0 || cpu_end < 0) {
        fprintf(stderr, "paced: cannot read the receiver's CPU time from /proc\n");
        return 1;
    }
    printf("{\"messages\":%ld,\"gapUs\":%ld,\"cpuUsPerMessage\":%.3f,\"roundTripUs\":%.3f}\n", messages, gap_us,
           (double)(cpu_end - cpu_start) / 1e3 / (double)messages, rtt * 1e6 / (double)messages);
    return 0;
}
