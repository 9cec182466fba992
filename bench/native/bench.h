/* bench.h: the helpers every native benchmark program shares (header-only, so each program
 * still builds from its one .c file). */
#ifndef BENCH_H
#define BENCH_H

#include <stdlib.h>
#include <time.h>

/* Monotonic seconds, for timing the counted phase. */
static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An integer setting from the environment, or `fallback` when unset, malformed or below `min`. */
static inline long env_long(const char *name, long fallback, long min) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    long n = strtol(v, &end, 10);
    return (*end == '\0' && n >= min) ? n : fallback;
}

#endif
