// Benchmark harness: every implementation measured in the same run and reported side by side, as
// ratios. Six benchmarks, each with its own table of entries:
//   bench/lib/pingpong.js  64-byte round trips between two processes (native, net, IPC, pyre-nexus)
//   bench/lib/echo.js      an echo server under 1 and 64 connections (native, net, pyre-nexus)
//   bench/lib/pool.js      worker pools: pyre-nexus's Pool against piscina, tinypool, workerpool and
//                          two hand-written child-process round-robins
//   bench/lib/large.js     1 MiB round trips between two processes, in bytes/s (native, pyre-nexus,
//                          net, IPC); BENCH_LARGE_* settings at its top
//   bench/lib/scale.js     echo servers with 10,000 idle connections: echo rate, memory and idle
//                          CPU per idle connection; BENCH_SCALE_* settings at its top
//   bench/lib/wake.js      the CPU a message costs a receiver, back to back and after a pause
//                          (native, net, pyre-nexus); BENCH_WAKE_* settings at its top
//
//   node bench/run.js            (from the repo root; `npm run bench` builds the library first)
//
// Environment:
//   BENCH_ROUNDTRIPS  counted round trips per run, in the ping-pong and echo benchmarks (default 100000)
//   BENCH_WARMUP      uncounted warm-up round trips done first in each run (default 5% of the above)
//   BENCH_REPEATS     runs per entry; the best (fastest) run is reported, the median is kept too
//                     (default 3); the pool benchmark reports the median instead.
//   BENCH_TIMEOUT_MS  hard limit per run (default 120000); the run's process group is killed
//   BENCH_ONLY        comma-separated substrings; only entries whose key contains one of them are
//                     run. Keys are "pingpong/<impl>/<transport>", "echo/<server>",
//                     "pool/<contender>/<scenario>", "large/<impl>/<transport>",
//                     "scale/<server>" and "wake/<receiver>/<gap>", so BENCH_ONLY=echo runs one
//                     benchmark and BENCH_ONLY=native,pyre-nexus some entries of all of them.
//   BENCH_ECHO_CONNECTIONS  comma-separated connection counts for the echo benchmark (default 1,64)
//
// Writes bench/results.json, bench/results.md (BENCHMARKS.md-ready), bench/pingpong.svg,
// bench/echo.svg, bench/pool.svg, bench/large.svg, bench/scale.svg and bench/wake.svg. A
// benchmark that measured nothing in this run (not selected, or every entry failed) keeps its
// previous results, so a partial run never erases the others.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as echo from './lib/echo.js';
import * as large from './lib/large.js';
import * as pingpong from './lib/pingpong.js';
import * as pool from './lib/pool.js';
import { log } from './lib/report.js';
import * as scale from './lib/scale.js';
import * as wake from './lib/wake.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BENCHMARKS = { pingpong, echo, pool, large, scale, wake };

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

const list = (v) =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const ROUND_TRIPS = envInt('BENCH_ROUNDTRIPS', 100_000, 1);
const ONLY = list(process.env.BENCH_ONLY);
const CONNECTIONS = list(process.env.BENCH_ECHO_CONNECTIONS ?? '1,64').map(Number);
if (CONNECTIONS.length === 0 || !CONNECTIONS.every((n) => Number.isInteger(n) && n >= 1)) {
  process.stderr.write('run.js: BENCH_ECHO_CONNECTIONS must be whole numbers >= 1, comma-separated\n');
  process.exit(64);
}

// Every C program gets the same flags; warnings are errors in spirit, so they are shown.
const compiled = new Map();
function compile(src, bin) {
  if (compiled.has(src)) return compiled.get(src);
  mkdirSync(join(ROOT, 'bench/.build'), { recursive: true });
  let r;
  try {
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-o', bin, src], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    r = { ok: true, compiler: `gcc ${execFileSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' }).trim()}` };
  } catch (err) {
    r = { ok: false, note: `could not compile ${src} with gcc -O2: ${err.message.split('\n')[0]}` };
  }
  compiled.set(src, r);
  return r;
}

const settings = {
  root: ROOT,
  roundTrips: ROUND_TRIPS,
  warmup: envInt('BENCH_WARMUP', Math.ceil(ROUND_TRIPS * 0.05), 0),
  repeats: envInt('BENCH_REPEATS', 3, 1),
  timeoutMs: envInt('BENCH_TIMEOUT_MS', 120_000, 100),
  connections: CONNECTIONS,
  selected: (key) => ONLY.length === 0 || ONLY.some((s) => key.includes(s)),
  compile,
  machine: {
    // The command that reproduces this run: the BENCH_* settings it was given, then npm run bench.
    reproduce: [
      ...['BENCH_ROUNDTRIPS', 'BENCH_WARMUP', 'BENCH_REPEATS', 'BENCH_ECHO_CONNECTIONS']
        .filter((name) => process.env[name])
        .map((name) => `${name}=${process.env[name]}`),
      'npm run bench',
    ].join(' '),
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
  },
};

// `npm run lint` runs Biome over bench/: give the generated files the project's formatting when
// Biome is installed (best effort; they are valid either way).
function formatWithBiome(file) {
  const biome = join(ROOT, 'node_modules/.bin/biome');
  if (!existsSync(biome)) return;
  try {
    execFileSync(biome, ['format', '--write', file], { cwd: ROOT, stdio: 'ignore' });
  } catch {}
}

// Results of earlier runs, so a benchmark not measured now keeps its section. Files written before
// the echo benchmark existed hold the ping-pong alone at the top level.
function previousResults() {
  try {
    const prev = JSON.parse(readFileSync(join(ROOT, 'bench/results.json'), 'utf8'));
    return Object.keys(BENCHMARKS).some((name) => prev[name])
      ? prev
      : { pingpong: prev.meta ? { meta: prev.meta, results: prev.results } : null };
  } catch {
    return {};
  }
}

async function main() {
  process.chdir(ROOT);
  const prev = previousResults();
  const fresh = {};
  const measured = [];
  let failed = false;
  for (const [name, bench] of Object.entries(BENCHMARKS)) {
    const data = await bench.measure(settings);
    if (data === null) continue;
    failed ||= data.results.some((r) => r.status === 'failed');
    if (data.results.some((r) => r.status === 'ok')) {
      fresh[name] = data;
      measured.push(name);
    } else {
      log(`${name}: nothing was measured; its previous results are kept`);
    }
  }
  const out = Object.fromEntries(
    Object.keys(BENCHMARKS)
      .map((name) => [name, fresh[name] ?? prev[name]])
      .filter(([, data]) => data),
  );

  if (measured.length > 0) {
    const written = ['results.json', 'results.md'];
    writeFileSync(join(ROOT, 'bench/results.json'), `${JSON.stringify(out, null, '\t')}\n`);
    const sections = Object.entries(BENCHMARKS).filter(([name]) => out[name]);
    writeFileSync(join(ROOT, 'bench/results.md'), sections.map(([name, b]) => b.markdown(out[name])).join('\n'));
    for (const name of measured) {
      writeFileSync(join(ROOT, `bench/${name}.svg`), BENCHMARKS[name].chart(out[name]));
      written.push(`${name}.svg`);
    }
    for (const f of written) formatWithBiome(`bench/${f}`);
    log(`wrote ${written.map((f) => `bench/${f}`).join(', ')}`);
  } else {
    log('nothing was measured; bench/results.* left as they were');
  }
  process.exitCode = measured.length === 0 || failed ? 1 : 0;
}

await main();
