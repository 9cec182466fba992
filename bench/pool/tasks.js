// The task bodies every contender of the pool benchmark runs, so that only the pools differ.
// piscina and tinypool run this module as it is (a named export per task); the other
// contenders' workers import it.

/** The trivial task: returns its input. */
export function trivial(n) {
  return n;
}

/** The CPU-bound task: keeps the CPU busy for `ms` milliseconds, then returns `ms`. */
export function spin(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
  return ms;
}

/**
 * The long task that leaves the CPU free: waits `ms` milliseconds on a timer. Resolves to when it
 * started and ended, in milliseconds since the epoch (`performance.timeOrigin` + `now()`), so that
 * the driver can tell how many tasks ran at once across workers.
 */
export function sleep(ms) {
  const start = performance.timeOrigin + performance.now();
  return new Promise((resolve) => setTimeout(() => resolve([start, performance.timeOrigin + performance.now()]), ms));
}
