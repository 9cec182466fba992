// Ping-pong benchmark harness: 64-byte round trips between two processes, every implementation
// measured in the same run and reported side by side, as ratios.
//
//   node bench/run.js            (from the repo root; `npm run bench` builds the library first)
//
// Environment:
//   BENCH_ROUNDTRIPS  counted round trips per run (default 100000)
//   BENCH_WARMUP      uncounted warm-up round trips done first in each run (default 5% of the above)
//   BENCH_REPEATS     runs per implementation; the best (fastest) run is reported, the median is
//                     kept too (default 3)
//   BENCH_TIMEOUT_MS  hard limit per run (default 120000); the run's process group is killed
//   BENCH_ONLY        comma-separated substrings; only entries whose "impl/transport" contains
//                     one of them are run (e.g. BENCH_ONLY=native,pyre-nexus)
//
// Writes bench/results.json, bench/results.md (BENCHMARKS.md-ready) and bench/pingpong.svg.
//
// Contract for every implementation (see IMPLEMENTATIONS below): it is started as
//   <command...> <roundTrips> <warmup>
// from the repo root, with BENCH_ROUNDTRIPS, BENCH_WARMUP and BENCH_TIMEOUT_MS also in its
// environment. It does `warmup` uncounted round trips, then `roundTrips` timed ones, stops by
// itself, reaps its peer process, exits 0 and prints exactly one JSON line on stdout:
//   {"impl":"<impl>","transport":"<transport>","roundTrips":<roundTrips>,"seconds":<float>}
// where "seconds" is the wall time of the counted round trips only (not spawn/connect/warm-up).

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NATIVE_SRC = 'bench/native/pingpong.c';
const NATIVE_BIN = 'bench/.build/pingpong';

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
	// bench/pingpong/nexus.js is written by the library's authors; until it exists these two
	// entries are skipped with a note. It must follow the contract at the top of this file.
	{ impl: "pyre-nexus", transport: "socketpair", command: ["node", "bench/pingpong/nexus.js", "socketpair"] },
	{ impl: "pyre-nexus", transport: "tcp", command: ["node", "bench/pingpong/nexus.js", "tcp"] },
	// ==============================================================================
];

// Ratios: "× native" compares with the native run over the same kind of transport
// (tcp → native tcp; every local transport — socketpair, unix, ipc — → native socketpair).
// "× IPC" compares with child_process.fork IPC; json is fork()'s default serialization.
const NATIVE_REF = {
  tcp: 'tcp',
  socketpair: 'socketpair',
  unix: 'socketpair',
  ipc: 'socketpair',
};
const IPC_REFS = ['child_process-ipc-json', 'child_process-ipc-advanced'];

function envInt(name, fallback, min) {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`run.js: ${name} must be an integer >= ${min}\n`);
    process.exit(64);
  }
  return n;
}

const ROUND_TRIPS = envInt('BENCH_ROUNDTRIPS', 100_000, 1);
const WARMUP = envInt('BENCH_WARMUP', Math.ceil(ROUND_TRIPS * 0.05), 0);
const REPEATS = envInt('BENCH_REPEATS', 3, 1);
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 120_000, 100);
const ONLY = (process.env.BENCH_ONLY ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

const log = (msg) => process.stderr.write(`${msg}\n`);
const key = (e) => `${e.impl}/${e.transport}`;

function compileNative() {
  mkdirSync(join(ROOT, 'bench/.build'), { recursive: true });
  try {
    execFileSync('gcc', ['-O2', '-o', NATIVE_BIN, NATIVE_SRC], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    return {
      ok: true,
      compiler: `gcc ${execFileSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' }).trim()}`,
    };
  } catch (err) {
    return {
      ok: false,
      note: `could not compile ${NATIVE_SRC} with gcc -O2: ${err.message.split('\n')[0]}`,
    };
  }
}

// `npm run lint` runs Biome over bench/: give the generated files the project's formatting when
// Biome is installed (best effort; they are valid either way).
function formatWithBiome(file) {
  const biome = join(ROOT, 'node_modules/.bin/biome');
  if (!existsSync(biome)) return;
  try {
    execFileSync(biome, ['format', '--write', file], {
      cwd: ROOT,
      stdio: 'ignore',
    });
  } catch {}
}

// Runs one entry once, in its own process group so a timeout can take down the whole tree.
let current = null;
function runOnce(entry) {
  const [cmd, ...args] = entry.command;
  const file = cmd === 'node' ? process.execPath : resolve(ROOT, cmd);
  const env = {
    ...process.env,
    BENCH_ROUNDTRIPS: String(ROUND_TRIPS),
    BENCH_WARMUP: String(WARMUP),
    BENCH_TIMEOUT_MS: String(TIMEOUT_MS),
  };
  return new Promise((done) => {
    const child = spawn(file, [...args, String(ROUND_TRIPS), String(WARMUP)], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    current = child;
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, TIMEOUT_MS + 5_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      current = null;
      done({ error: `cannot start: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      current = null;
      killGroup(child); // nothing of the run may outlive it
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      if (timedOut) return done({ error: `timed out after ${TIMEOUT_MS + 5_000} ms` });
      if (code !== 0)
        return done({
          error: `exited with ${signal ?? code}${tail ? `: ${tail}` : ''}`,
        });
      const line = stdout
        .trim()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{'));
      let r;
      try {
        r = JSON.parse(line);
      } catch {
        return done({
          error: `no JSON line on stdout (got ${JSON.stringify(stdout.slice(0, 200))})`,
        });
      }
      if (r.impl !== entry.impl || r.transport !== entry.transport) {
        return done({
          error: `reported ${r.impl}/${r.transport}, expected ${key(entry)}`,
        });
      }
      if (r.roundTrips !== ROUND_TRIPS)
        return done({
          error: `reported roundTrips ${r.roundTrips}, expected ${ROUND_TRIPS}`,
        });
      if (typeof r.seconds !== 'number' || !(r.seconds > 0)) return done({ error: `bad "seconds": ${r.seconds}` });
      done({ seconds: r.seconds });
    });
  });
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {} // already gone
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (current !== null) killGroup(current);
    process.exit(130);
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const fmtRatio = (r) => (r === null ? '—' : `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`);
const fmtUs = (s) => (s * 1e6).toFixed(2);

async function main() {
  process.chdir(ROOT);
  const entries = IMPLEMENTATIONS.map((e) => ({
    ...e,
    status: 'pending',
    note: null,
    samples: [],
    errors: [],
  })).filter((e) => ONLY.length === 0 || ONLY.some((s) => key(e).includes(s)));

  const needsNative = entries.some((e) => e.command[0] === NATIVE_BIN);
  const native = needsNative ? compileNative() : { ok: false, note: 'not needed' };
  for (const e of entries) {
    if (e.command[0] === NATIVE_BIN && !native.ok) {
      e.status = 'skipped';
      e.note = native.note;
      continue;
    }
    const missing = e.command.filter((a) => a.includes('/') && !existsSync(resolve(ROOT, a)));
    if (missing.length > 0) {
      e.status = 'skipped';
      e.note = `${missing.join(', ')} does not exist yet`;
    }
  }
  for (const e of entries.filter((x) => x.status === 'skipped')) log(`skip  ${key(e)}: ${e.note}`);

  const active = entries.filter((e) => e.status === 'pending');
  log(
    `ping-pong: ${fmtInt(ROUND_TRIPS)} round trips (+${fmtInt(WARMUP)} warm-up) × ${REPEATS} runs, ` +
      `${active.length} implementations, ${os.cpus().length} CPUs`,
  );
  // Repeats are interleaved (run 1 of everything, then run 2, …) so slow drift on the machine
  // affects all implementations alike instead of whichever happened to run last.
  for (let rep = 1; rep <= REPEATS; rep++) {
    for (const e of active) {
      const r = await runOnce(e);
      if (r.error) {
        e.errors.push(r.error);
        log(`run ${rep}/${REPEATS}  ${key(e).padEnd(36)} FAILED: ${r.error}`);
      } else {
        e.samples.push(r.seconds);
        log(`run ${rep}/${REPEATS}  ${key(e).padEnd(36)} ${fmtInt(ROUND_TRIPS / r.seconds).padStart(10)} rt/s`);
      }
    }
  }

  for (const e of active) {
    if (e.samples.length === 0) {
      e.status = 'failed';
      e.note = e.errors[0];
      continue;
    }
    e.status = 'ok';
    if (e.errors.length > 0) e.note = `${e.errors.length} of ${REPEATS} runs failed: ${e.errors[0]}`;
    e.bestSeconds = Math.min(...e.samples);
    e.medianSeconds = median(e.samples);
    e.roundTripsPerSec = ROUND_TRIPS / e.bestSeconds;
    e.medianRoundTripsPerSec = ROUND_TRIPS / e.medianSeconds;
    e.usPerRoundTrip = (e.bestSeconds * 1e6) / ROUND_TRIPS;
  }
  const ok = entries.filter((e) => e.status === 'ok');
  const find = (impl, transport) =>
    ok.find((e) => e.impl === impl && (transport === undefined || e.transport === transport));
  for (const e of ok) {
    const nat = find('native', NATIVE_REF[e.transport] ?? 'socketpair');
    e.nativeRef = nat ? key(nat) : null;
    e.vsNative = nat ? e.roundTripsPerSec / nat.roundTripsPerSec : null;
    e.vsIpc = {};
    for (const ref of IPC_REFS) {
      const ipc = find(ref);
      e.vsIpc[ref] = ipc ? e.roundTripsPerSec / ipc.roundTripsPerSec : null;
    }
  }
  ok.sort((a, b) => b.roundTripsPerSec - a.roundTripsPerSec);

  const meta = {
    date: new Date().toISOString(),
    roundTrips: ROUND_TRIPS,
    warmup: WARMUP,
    repeats: REPEATS,
    reported: 'best of the runs (highest round trips/s); median kept alongside',
    payloadBytes: 64,
    framing: '4-byte little-endian length + payload (native, node-net); Node IPC framing for child_process',
    node: process.version,
    compiler: native.ok ? native.compiler : null,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
  };
  const results = [...ok, ...entries.filter((e) => e.status !== 'ok')].map((e) => ({
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
    nativeRef: e.nativeRef ?? null,
    vsNative: e.vsNative ?? null,
    vsIpc: e.vsIpc ?? null,
  }));

  // A run where nothing succeeded (e.g. a BENCH_ONLY typo) leaves the previous outputs alone.
  if (ok.length > 0) {
    writeFileSync(join(ROOT, 'bench/results.json'), `${JSON.stringify({ meta, results }, null, '\t')}\n`);
    writeFileSync(join(ROOT, 'bench/results.md'), markdown(meta, ok, entries));
    writeFileSync(join(ROOT, 'bench/pingpong.svg'), svg(meta, ok));
    for (const f of ['results.json', 'results.md', 'pingpong.svg']) {
      formatWithBiome(`bench/${f}`);
    }
  }

  // Console table.
  const rows = [
    ['impl', 'transport', 'rt/s (best)', 'rt/s (median)', 'µs/rt', '× native', '× IPC json', '× IPC adv'],
    ...ok.map((e) => [
      e.impl,
      e.transport,
      fmtInt(e.roundTripsPerSec),
      fmtInt(e.medianRoundTripsPerSec),
      fmtUs(e.bestSeconds / ROUND_TRIPS),
      fmtRatio(e.vsNative),
      fmtRatio(e.vsIpc[IPC_REFS[0]]),
      fmtRatio(e.vsIpc[IPC_REFS[1]]),
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  log('');
  for (const [n, r] of rows.entries()) {
    log(r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
    if (n === 0) log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  for (const e of entries.filter((x) => x.status !== 'ok')) log(`${e.status}: ${key(e)} — ${e.note}`);
  if (ok.length > 0) {
    log('\nwrote bench/results.json, bench/results.md, bench/pingpong.svg');
  } else {
    log('\nnothing was measured; bench/results.* left as they were');
  }
  process.exitCode = ok.length === 0 || entries.some((e) => e.status === 'failed') ? 1 : 0;
}

function markdown(meta, ok, entries) {
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
        `| ${e.impl === 'pyre-nexus' ? '**pyre-nexus**' : e.impl} | ${e.transport} | ${fmtInt(e.roundTripsPerSec)} | ` +
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
      '(`bench/pingpong/nexus.js`).',
    '- **× native** is round trips/s divided by the native run over the same kind of transport ' +
      '(tcp → native tcp; socketpair, unix and ipc → native socketpair). **× IPC** divides by the ' +
      'child_process IPC run. Above 1× is faster than the reference.',
    '',
    `Machine: ${meta.cpu}, ${meta.cpus} CPUs, ${meta.platform}; Node ${meta.node}` +
      `${meta.compiler ? `; ${meta.compiler}` : ''}. Measured ${meta.date.slice(0, 10)}.`,
    'Both processes of a pair are busy, so on a 2-CPU machine the pair has the CPUs to itself and numbers ' +
      'vary with scheduling: compare ratios within one run rather than absolute numbers across machines.',
    '',
    `Reproduce: \`npm run bench\` (or \`node bench/run.js\`; \`BENCH_ROUNDTRIPS=${meta.roundTrips}\` sets the size).`,
  ];
  const other = entries.filter((e) => e.status !== 'ok');
  if (other.length > 0) {
    lines.push('', 'Not measured in this run:', '');
    for (const e of other) lines.push(`- ${e.impl} / ${e.transport} — ${e.status}: ${e.note}`);
  }
  return `${lines.join('\n')}\n`;
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

const COLORS = {
  native: '#555555',
  'node-net': '#3b82c4',
  'child_process-ipc-json': '#e08a2c',
  'child_process-ipc-advanced': '#c96a12',
  'pyre-nexus': '#d0342c',
};

function svg(meta, ok) {
  const width = 860;
  const labelW = 290;
  const barMax = 360;
  const rowH = 30;
  const top = 64;
  const height = top + Math.max(ok.length, 1) * rowH + 36;
  const max = Math.max(1, ...ok.map((e) => e.roundTripsPerSec));
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`,
    '<title>Ping-pong: 64-byte round trips between two processes, round trips per second (higher is better)</title>',
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="17" font-weight="600" fill="#222">Ping-pong: 64-byte round trips between two processes (higher is better)</text>`,
    `<text x="16" y="46" font-size="12" fill="#666">${esc(
      `${fmtInt(meta.roundTrips)} round trips, best of ${meta.repeats} · ${meta.cpu}, ${meta.cpus} CPUs · Node ${meta.node} · ${meta.date.slice(0, 10)}`,
    )}</text>`,
  ];
  ok.forEach((e, i) => {
    const y = top + i * rowH;
    const w = Math.max(1, (e.roundTripsPerSec / max) * barMax);
    const color = COLORS[e.impl] ?? '#7a5cc4';
    const weight = e.impl === 'pyre-nexus' ? ' font-weight="700"' : '';
    const ratio = e.vsNative === null ? '' : ` · ${fmtRatio(e.vsNative)} native`;
    out.push(
      `<text x="${labelW - 10}" y="${y + 18}" font-size="13" text-anchor="end" fill="#222"${weight}>${esc(`${e.impl} · ${e.transport}`)}</text>`,
      `<rect x="${labelW}" y="${y + 5}" width="${w.toFixed(1)}" height="${rowH - 10}" rx="2" fill="${color}"/>`,
      `<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 18}" font-size="12" fill="#333">${esc(`${fmtInt(e.roundTripsPerSec)} rt/s${ratio}`)}</text>`,
    );
  });
  if (ok.length === 0) out.push(`<text x="16" y="${top + 18}" font-size="13" fill="#a00">no results</text>`);
  out.push(
    `<line x1="${labelW}" y1="${top}" x2="${labelW}" y2="${top + Math.max(ok.length, 1) * rowH}" stroke="#999"/>`,
    `<text x="16" y="${height - 12}" font-size="11" fill="#888">× native: vs the native C program over the same kind of transport (tcp vs tcp, local vs socketpair)</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}

await main();
