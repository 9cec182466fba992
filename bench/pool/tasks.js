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
