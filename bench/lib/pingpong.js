// Ping-pong: 64-byte round trips between two processes, one implementation per (library, transport).
//
// Contract for every implementation in IMPLEMENTATIONS: it is started as
//   <command...> <roundTrips> <warmup>
// from the repo root, with BENCH_ROUNDTRIPS, BENCH_WARMUP and BENCH_TIMEOUT_MS also in its
// environment. It does `warmup` uncounted round trips, then `roundTrips` timed ones, stops by
// itself, reaps its peer process, exits 0 and prints exactly one JSON line on stdout:
//   {"impl":"<impl>","transport":"<transport>","roundTrips":<roundTrips>,"seconds":<float>}
// where "seconds" is the wall time of the counted round trips only (not spawn/connect/warm-up).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { runToEnd } from './proc.js';
import { barChart, endReport, fmtInt, fmtRatio, fmtUs, log, machineLine, printTable, summarise } from './report.js';

const NATIVE_SRC = 'bench/native/pingpong.c';
export const NATIVE_BIN = 'bench/.build/pingpong';

// One entry per (implementation, transport). Adding an implementation is one line.
// 'node' as the first word means the Node running this harness (process.execPath).
// biome-ignore format: keep one line per implementation
const IMPLEMENTATIONS = [
	{ impl: "native", transport: "socketpair", command: [NATIVE_BIN, "socketpair"] },
	{ impl: "native", transport: "tcp", command: [NATIVE_BIN, "tcp"] },
	{ impl: "node-net", transport: "unix", command: ["node", "bench/peers/net.js", "unix"] },
	{ impl: "node-net", transport: "tcp", command: ["node", "bench/peers/net.js", "tcp"] },
	{ impl: "child_process-ipc-json", transport: "ipc", command: ["node", "bench/peers/ipc.js", "json"] },
	{ impl: "child_process-ipc-advanced", transport: "ipc", command: ["node", "bench/peers/ipc.js", "advanced"] },
	// ======================= pyre-nexus: the library itself =======================
	// Skipped with a note while bench/pingpong/nexus.js does not exist.
	{ impl: "pyre-nexus", transport: "socketpair", command: ["node", "bench/pingpong/nexus.js", "socketpair"] },
	{ impl: "pyre-nexus", transport: "tcp", command: ["node", "bench/pingpong/nexus.js", "tcp"] },
	{ impl: "pyre-nexus-spin", transport: "socketpair", command: ["node", "bench/pingpong/nexus.js", "socketpair"], env: { BENCH_SPIN: "300" } },
	// ==============================================================================
];

// Ratios: "× native" compares with the native run over the same kind of transport
// (tcp → native tcp; every local transport — socketpair, unix, ipc — → native socketpair).
// "× IPC" compares with child_process.fork IPC; json is fork()'s default serialization.
const NATIVE_REF = { tcp: 'tcp', socketpair: 'socketpair', unix: 'socketpair', ipc: 'socketpair' };
const IPC_REFS = ['child_process-ipc-json', 'child_process-ipc-advanced'];

const key = (e) => `pingpong/${e.impl}/${e.transport}`;

/**
 * Runs one ping-pong program and checks what it reports: `roundTrips` after `warmup`, and, when
 * `payload` is given, frames of that many bytes (BENCH_PAYLOAD). Shared with the large-message
 * benchmark.
 */
export async function runRoundTrips(entry, s, { roundTrips, warmup, payload }) {
  const env = {
    ...process.env,
    BENCH_ROUNDTRIPS: String(roundTrips),
    BENCH_WARMUP: String(warmup),
    BENCH_TIMEOUT_MS: String(s.timeoutMs),
    ...(payload === undefined ? {} : { BENCH_PAYLOAD: String(payload) }),
    ...entry.env,
  };
  const command = [...entry.command, String(roundTrips), String(warmup)];
  const run = await runToEnd(s.root, command, { env, timeoutMs: s.timeoutMs + 5_000 });
  if (run.error) return run;
  const line = run.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  let r;
  try {
    r = JSON.parse(line);
  } catch {
    return { error: `no JSON line on stdout (got ${JSON.stringify(run.stdout.slice(0, 200))})` };
  }
  if (r.impl !== entry.impl || r.transport !== entry.transport) {
    return { error: `reported ${r.impl}/${r.transport}, expected ${entry.impl}/${entry.transport}` };
  }
  if (r.roundTrips !== roundTrips) return { error: `reported roundTrips ${r.roundTrips}, expected ${roundTrips}` };
  // A program that ignored BENCH_PAYLOAD would say nothing (64 bytes) or another size.
  if (payload !== undefined && r.payloadBytes !== payload) {
    return { error: `reported payloadBytes ${r.payloadBytes}, expected ${payload}` };
  }
  if (typeof r.seconds !== 'number' || !(r.seconds > 0)) return { error: `bad "seconds": ${r.seconds}` };
  return { seconds: r.seconds };
}

/** The fields every round-trip benchmark records per entry (shared with the large-message one). */
export function roundTripRecord(e) {
  return {
    impl: e.impl,
    transport: e.transport,
    command: e.command,
    status: e.status,
    note: e.note,
    samplesSeconds: e.samples,
    bestSeconds: e.bestSeconds ?? null,
    medianSeconds: e.medianSeconds ?? null,
    roundTripsPerSec: e.roundTripsPerSec ?? null,
    medianRoundTripsPerSec: e.medianRoundTripsPerSec ?? null,
    usPerRoundTrip: e.usPerRoundTrip ?? null,
  };
}

/**
 * The selected implementations as entries to run, each with its samples to come or skipped with
 * a note when its program is missing or would not compile, and the native program's build
 * (`native`, null when none is selected); null when no implementation is selected. Shared with
 * the large-message benchmark.
 */
export function roundTripEntries(implementations, s, key) {
  const entries = implementations
    .filter((e) => s.selected(key(e)))
    .map((e) => ({ ...e, status: 'pending', note: null, samples: [], errors: [] }));
  if (entries.length === 0) return null;
  const native = entries.some((e) => e.command[0] === NATIVE_BIN) ? s.compile(NATIVE_SRC, NATIVE_BIN) : null;
  for (const e of entries) {
    const missing = e.command.filter((a) => a.includes('/') && !existsSync(resolve(s.root, a)));
    if (e.command[0] === NATIVE_BIN && !native.ok) e.note = native.note;
    else if (missing.length > 0) e.note = `${missing.join(', ')} does not exist yet`;
    else continue;
    e.status = 'skipped';
    log(`skip  ${key(e)}: ${e.note}`);
  }
  return { entries, native };
}

const runOnce = (entry, s) => runRoundTrips(entry, s, { roundTrips: s.roundTrips, warmup: s.warmup });

export async function measure(s) {
  const prepared = roundTripEntries(IMPLEMENTATIONS, s, key);
  if (prepared === null) return null;
  const { entries, native } = prepared;
  const active = entries.filter((e) => e.status === 'pending');
  log(
    `ping-pong: ${fmtInt(s.roundTrips)} round trips (+${fmtInt(s.warmup)} warm-up) × ${s.repeats} runs, ` +
      `${active.length} implementations, ${s.machine.cpus} CPUs`,
  );
  // Repeats are interleaved (run 1 of everything, then run 2, …) so slow drift on the machine
  // affects all implementations alike instead of whichever happened to run last.
  for (let rep = 1; rep <= s.repeats; rep++) {
    for (const e of active) {
      const r = await runOnce(e, s);
      if (r.error) {
        e.errors.push(r.error);
        log(`run ${rep}/${s.repeats}  ${key(e).padEnd(40)} FAILED: ${r.error}`);
      } else {
        e.samples.push(r.seconds);
        log(`run ${rep}/${s.repeats}  ${key(e).padEnd(40)} ${fmtInt(s.roundTrips / r.seconds).padStart(10)} rt/s`);
      }
    }
  }

  for (const e of active) summarise(e, s.roundTrips, s.repeats);
  const ok = entries.filter((e) => e.status === 'ok');
  const find = (impl, transport) =>
    ok.find((e) => e.impl === impl && (transport === undefined || e.transport === transport));
  for (const e of ok) {
    const nat = find('native', NATIVE_REF[e.transport] ?? 'socketpair');
    e.nativeRef = nat ? `${nat.impl}/${nat.transport}` : null;
    e.vsNative = nat ? e.roundTripsPerSec / nat.roundTripsPerSec : null;
    e.vsIpc = Object.fromEntries(
      IPC_REFS.map((ref) => [ref, find(ref) ? e.roundTripsPerSec / find(ref).roundTripsPerSec : null]),
    );
  }
  ok.sort((a, b) => b.roundTripsPerSec - a.roundTripsPerSec);

  const meta = {
    ...s.machine,
    compiler: native?.ok ? native.compiler : null,
    roundTrips: s.roundTrips,
    warmup: s.warmup,
    repeats: s.repeats,
    reported: 'best of the runs (highest round trips/s); median kept alongside',
    payloadBytes: 64,
    framing: '4-byte little-endian length + payload (native, node-net); Node IPC framing for child_process',
  };
  const results = [...ok, ...entries.filter((e) => e.status !== 'ok')].map((e) => ({
    ...roundTripRecord(e),
    nativeRef: e.nativeRef ?? null,
    vsNative: e.vsNative ?? null,
    vsIpc: e.vsIpc ?? null,
  }));

  printTable(
    [
      ['impl', 'transport', 'rt/s (best)', 'rt/s (median)', 'µs/rt', '× native', '× IPC json', '× IPC adv'],
      ...ok.map((e) => [
        e.impl,
        e.transport,
        fmtInt(e.roundTripsPerSec),
        fmtInt(e.medianRoundTripsPerSec),
        fmtUs(e.bestSeconds / s.roundTrips),
        fmtRatio(e.vsNative),
        fmtRatio(e.vsIpc[IPC_REFS[0]]),
        fmtRatio(e.vsIpc[IPC_REFS[1]]),
      ]),
    ],
    2,
  );
  for (const e of entries.filter((x) => x.status !== 'ok')) log(`${e.status}: ${key(e)} — ${e.note}`);
  log('');
  return { meta, results };
}

/** The BENCHMARKS.md section for a { meta, results } from measure() (or from an earlier results.json). */
export function markdown({ meta, results }) {
  const ok = results.filter((e) => e.status === 'ok');
  const lines = [
    '## Ping-pong: 64-byte round trips between two processes',
    '',
    `${fmtInt(meta.roundTrips)} round trips per run after ${fmtInt(meta.warmup)} uncounted warm-up round trips; ` +
      `each implementation run ${meta.repeats}× (interleaved), the **best** run is reported and the median shown ` +
      'next to it. One process sends a 64-byte message, the other echoes it, the next one leaves when the echo ' +
      'is back. Higher is better.',
    '',
    '| Implementation | Transport | Round trips/s (best) | Median | µs / round trip | × native | × IPC (json) | × IPC (advanced) |',
    '|---|---|--:|--:|--:|--:|--:|--:|',
    ...ok.map(
      (e) =>
        `| ${e.impl.startsWith('pyre-nexus') ? `**${e.impl}**` : e.impl} | ${e.transport} | ${fmtInt(e.roundTripsPerSec)} | ` +
        `${fmtInt(e.medianRoundTripsPerSec)} | ${fmtUs(e.bestSeconds / meta.roundTrips)} | ${fmtRatio(e.vsNative)} | ` +
        `${fmtRatio(e.vsIpc[IPC_REFS[0]])} | ${fmtRatio(e.vsIpc[IPC_REFS[1]])} |`,
    ),
    '',
    '- **native**: C, `gcc -O2`, blocking `read`/`write` over a `socketpair(AF_UNIX, SOCK_STREAM)` or TCP on ' +
      '127.0.0.1 (`TCP_NODELAY`), 4-byte little-endian length + payload framing — the practical limit.',
    "- **node-net**: two Node processes, Node's `net` module over a Unix-domain socket (the closest Node gets " +
      'to a socketpair) or TCP on 127.0.0.1 (`noDelay`), same framing parsed from the stream.',
    '- **child_process-ipc-json / -advanced**: `child_process.fork` IPC (`process.send` / `message`) with ' +
      "`serialization: 'json'` (a 64-character string; fork's default) or `'advanced'` (a 64-byte Buffer).",
    '- **pyre-nexus**: this library, two processes exchanging the same framed 64-byte messages ' +
      '(`bench/pingpong/nexus.js`). **pyre-nexus-spin** is the same with `new Dispatcher({ spin: 300 })` on both ' +
      'sides (`BENCH_SPIN=300`): each process polls up to 300 µs before it sleeps, so neither sleeps while the ' +
      'other answers; each then keeps a CPU busy, where the others sleep between messages.',
    '- **× native** is round trips/s divided by the native run over the same kind of transport ' +
      '(tcp → native tcp; socketpair, unix and ipc → native socketpair). **× IPC** divides by the ' +
      'child_process IPC run. Above 1× is faster than the reference.',
    '',
    machineLine(meta),
    'Both processes of a pair are busy, so on a 2-CPU machine the pair has the CPUs to itself and numbers ' +
      'vary with scheduling: compare ratios within one run rather than absolute numbers across machines.',
    '',
    `Reproduce: \`${meta.reproduce ?? 'npm run bench'}\` (\`BENCH_ONLY=pingpong node bench/run.js\` for this ` +
      'benchmark alone; `BENCH_ROUNDTRIPS` sets the size).',
  ];
  return endReport(lines, results, (e) => `${e.impl} / ${e.transport}`);
}

export function chart({ meta, results }) {
  const ok = results.filter((e) => e.status === 'ok');
  return barChart({
    title: 'Ping-pong: 64-byte round trips between two processes (higher is better)',
    subtitle: `${fmtInt(meta.roundTrips)} round trips, best of ${meta.repeats} · ${meta.cpu}, ${meta.cpus} CPUs · Node ${meta.node} · ${meta.date.slice(0, 10)}`,
    footer: '× native: vs the native C program over the same kind of transport (tcp vs tcp, local vs socketpair)',
    groups: [
      {
        bars: ok.map((e) => ({
          impl: e.impl,
          label: `${e.impl} · ${e.transport}`,
          value: e.roundTripsPerSec,
          text: `${fmtInt(e.roundTripsPerSec)} rt/s${e.vsNative === null ? '' : ` · ${fmtRatio(e.vsNative)} native`}`,
        })),
      },
    ],
  });
}
