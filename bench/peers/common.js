// Helpers shared by the benchmark peers.

/** An integer setting from the environment, or `fallback` when unset or not a whole number ≥ 0. */
export function envInt(name, fallback) {
  const v = process.env[name];
  const n = v === undefined || v === '' ? Number.NaN : Number(v);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
}

/** Reports `message` on stderr, tagged with the peer's name and pid, and exits with `code`. */
export function fail(name, message, code = 2) {
  process.stderr.write(`${name}[${process.pid}]: ${message}\n`);
  process.exit(code);
}
