// Scale: what idle connections cost an echo server (issue 5).
//   rate    the echo rate of 10 active connections (bench/native/echo-load.c, 64-byte ping-pong)
//           with no idle connection open, and with 10,000 idle ones open to the same server
//           (held by bench/native/idle-conns.c, which connects and then never writes);
//   memory  the server's resident memory (VmRSS in /proc/<pid>/status) before and after the
//           10,000 idle connections are opened and accepted, divided by 10,000;
//   cpu     a server with 1,000 idle connections: CPU time (utime + stime in /proc/<pid>/stat)
//           used over 10 s, as a share of one core.
// The servers are those of the echo benchmark (same contract, see bench/lib/echo.js). Each is
// started through `sh -c 'ulimit -n <hard limit>'` so that it may hold the connections.
//
// One repeat, per server, all in one server process: a run with no idle connection, then the
// idle connections are opened and the server's descriptors counted until it has accepted them
// all, memory is read (1.5 s later, the highest reading on the way kept too), a run with them
// open, the idle connections are closed (the server must not have closed any, nor sent a byte),
// and a second run with none; the 0-idle figure takes both of its runs. Repeats are interleaved.
// The idle-CPU measurement is done once per server (pyre-nexus and node-net), after the repeats.
//
// Environment (besides the harness's own, see bench/run.js):
//   BENCH_SCALE_ROUNDTRIPS   counted round trips per echo run, over the active connections (default
//                            50000), after BENCH_SCALE_WARMUP uncounted ones (default 2500)
//   BENCH_SCALE_IDLE         idle connections for rate and memory (default 10000)
//   BENCH_SCALE_ACTIVE       active connections (default 10)
//   BENCH_SCALE_CPU_IDLE     idle connections for the CPU measurement (default 1000)
//   BENCH_SCALE_CPU_SECONDS  length of the CPU measurement (default 10)
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { envInt } from '../peers/common.js';
import { runLoad } from './echo.js';
import { commandFile, startHelper, startServer } from './proc.js';
import { barChart, fmtInt, fmtRatio, log, machineLine, median, printTable } from './report.js';

const LOAD_SRC = 'bench/native/echo-load.c';
const LOAD_BIN = 'bench/.build/echo-load';
const SERVER_SRC = 'bench/native/echo-server.c';
const SERVER_BIN = 'bench/.build/echo-server';
const IDLE_SRC = 'bench/native/idle-conns.c';
const IDLE_BIN = 'bench/.build/idle-conns';

// Issue 5's targets, for pyre-nexus.
const TARGETS = { rate: 0.9, bytesPerConnection: 4096, cpuShare: 0.01 };

// `cpu`: the idle-CPU measurement is made for this server. `env`: extra environment for it.
// biome-ignore format: keep one line per server
const SERVERS = [
	{ server: "native", command: [SERVER_BIN], cpu: false },
	{ server: "node-net", command: ["node", "bench/echo/net.js"], cpu: true },
	{ server: "pyre-nexus", command: ["node", "--import", "tsx", "bench/echo/nexus.js"], cpu: true, maxConnections: true, needs: ["dist/index.js", "examples/services/echo.ts"] },
];

const key = (e) => `scale/${e.server}`;

function settingsOf(s) {
  return {
    idle: Math.max(1, envInt('BENCH_SCALE_IDLE', 10_000)),
    active: Math.max(1, envInt('BENCH_SCALE_ACTIVE', 10)),
    cpuIdle: Math.max(1, envInt('BENCH_SCALE_CPU_IDLE', 1_000)),
    cpuSeconds: Math.max(1, envInt('BENCH_SCALE_CPU_SECONDS', 10)),
    roundTrips: Math.max(1, envInt('BENCH_SCALE_ROUNDTRIPS', 50_000)),
    warmup: envInt('BENCH_SCALE_WARMUP', 2_500),
    repeats: s.repeats,
  };
}

const hardNofile = () => Number(execFileSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim());
const clockTicks = () => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
};

/** The server's command, run with the soft descriptor limit raised to the hard one; `exec`
 *  keeps the pid, so /proc/<pid> is the server's. */
function wrapped(command, root) {
  const [cmd, ...args] = command;
  const file = commandFile(root, cmd);
  return ['/bin/sh', '-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', file, ...args];
}

const fdCount = (pid) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
};
/** Resident memory in bytes, or null once the process is gone. */
const rss = (pid) => {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) * 1024 : null;
  } catch {
    return null;
  }
};
/** utime + stime in clock ticks (every thread of the process). */
const cpuTicks = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd on
  return Number(fields[11]) + Number(fields[12]); // utime (14th) and stime (15th)
};

/** Waits until `test(fdCount)` holds, sampling RSS on the way; { ok, fds, peak, ms }. */
async function waitFds(pid, test, timeoutMs) {
  const t0 = performance.now();
  let peak = 0;
  for (;;) {
    const fds = fdCount(pid);
    peak = Math.max(peak, rss(pid) ?? 0);
    if (fds !== null && test(fds)) return { ok: true, fds, peak, ms: performance.now() - t0 };
    if (fds === null || performance.now() - t0 > timeoutMs) return { ok: false, fds, peak, ms: performance.now() - t0 };
    await sleep(50);
  }
}

async function openIdle(port, n, s) {
  const env = { ...process.env, BENCH_TIMEOUT_MS: String(s.timeoutMs) };
  return startHelper(s.root, [IDLE_BIN, String(port), String(n)], { env, timeoutMs: s.timeoutMs });
}

/** Closes the idle connections; an error if the helper failed or the server closed any or wrote. */
async function closeIdle(helper) {
  const r = await helper.stop();
  if (r.error) return `idle-conns: ${r.error}`;
  if (r.last.closedByServer !== 0 || r.last.bytesReceived !== 0) {
    return `the server closed ${r.last.closedByServer} idle connections and sent ${r.last.bytesReceived} bytes on them`;
  }
  return null;
}

async function rateRun(port, l, s) {
  const r = await runLoad(port, l.active, { ...s, roundTrips: l.roundTrips, warmup: l.warmup });
  return r.error ? r : { rate: l.roundTrips / r.seconds };
}

/** One repeat for one server: rates without and with the idle connections, and memory. */
async function repeatOnce(e, l, s) {
  const out = { rate0: [], rateIdle: [], memory: null, errors: [] };
  const env = {
    ...process.env,
    ...(e.maxConnections ? { BENCH_MAX_CONNECTIONS: String(l.idle + l.active + 100) } : {}),
  };
  const server = await startServer(s.root, wrapped(e.command, s.root), { env, timeoutMs: s.timeoutMs });
  if (server.error) return { ...out, errors: [server.error] };
  const said = () => (server.stderr() ? ` (server stderr: ${server.stderr()})` : '');
  const fdsStart = fdCount(server.pid);
  try {
    let r = await rateRun(server.port, l, s);
    if (r.error) {
      out.errors.push(`no idle: ${r.error}${said()}`);
      return out;
    }
    out.rate0.push(r.rate);

    // The load generator's connections may still be closing on the server's side.
    await waitFds(server.pid, (n) => n <= fdsStart, 5_000);
    const fdsBefore = fdCount(server.pid);
    const rssBefore = rss(server.pid);
    const t0 = performance.now();
    const helper = await openIdle(server.port, l.idle, s);
    if (helper.error) {
      out.errors.push(`opening ${l.idle} idle connections: ${helper.error}${said()}`);
      return out;
    }
    const accepted = await waitFds(server.pid, (n) => n >= fdsBefore + l.idle, 30_000);
    if (!accepted.ok) {
      await helper.stop();
      const had = accepted.fds === null ? 'the server is gone' : `${accepted.fds - fdsBefore} more descriptors`;
      out.errors.push(`after 30 s the server had accepted ${l.idle} idle connections: ${had}${said()}`);
      return out;
    }
    const acceptMs = performance.now() - t0;
    const settled = await waitFds(server.pid, () => false, 1_500);
    const rssAfter = rss(server.pid);
    out.memory = {
      rssBefore,
      rssAfter,
      rssPeak: Math.max(accepted.peak, settled.peak, rssAfter),
      bytesPerConnection: (rssAfter - rssBefore) / l.idle,
      peakBytesPerConnection: (Math.max(accepted.peak, settled.peak, rssAfter) - rssBefore) / l.idle,
      connectSeconds: helper.ready.seconds,
      acceptSeconds: acceptMs / 1000,
    };

    r = await rateRun(server.port, l, s);
    if (r.error) out.errors.push(`with ${l.idle} idle: ${r.error}${said()}`);
    else out.rateIdle.push(r.rate);

    const closed = await closeIdle(helper);
    if (closed) out.errors.push(closed);
    const released = await waitFds(server.pid, (n) => n <= fdsBefore + 5, 15_000);
    if (!released.ok)
      out.errors.push(
        `15 s after the idle connections closed the server still had ${released.fds} descriptors (${fdsBefore} before)`,
      );

    r = await rateRun(server.port, l, s);
    if (r.error) out.errors.push(`no idle, after: ${r.error}${said()}`);
    else out.rate0.push(r.rate);
    return out;
  } finally {
    const stopped = await server.stop();
    if (stopped.error) out.errors.push(stopped.error);
  }
}

/** CPU used by a fresh server holding `cpuIdle` idle connections, over `cpuSeconds`. */
async function idleCpu(e, l, s, ticksPerSec) {
  const env = {
    ...process.env,
    ...(e.maxConnections ? { BENCH_MAX_CONNECTIONS: String(l.idle + l.active + 100) } : {}),
  };
  const server = await startServer(s.root, wrapped(e.command, s.root), { env, timeoutMs: s.timeoutMs });
  if (server.error) return { error: server.error };
  let result;
  try {
    const fdsBefore = fdCount(server.pid);
    const helper = await openIdle(server.port, l.cpuIdle, s);
    if (helper.error) return { error: `opening ${l.cpuIdle} idle connections: ${helper.error}` };
    const accepted = await waitFds(server.pid, (n) => n >= fdsBefore + l.cpuIdle, 30_000);
    if (!accepted.ok) {
      await helper.stop();
      return { error: `after 30 s the server had ${accepted.fds - fdsBefore} of ${l.cpuIdle} more descriptors` };
    }
    // A freshly started Node is not idle yet: some 8 s after start-up V8's memory reducer runs
    // compacting GCs, in the main isolate and in the loader thread's one (tsx), seen with
    // --trace-gc. So two windows are measured back to back: the first (5 s after accepting)
    // holds that one-off work, the second is the idle cost the target is about.
    await sleep(5_000);
    const window = async () => {
      const c0 = cpuTicks(server.pid);
      const t0 = performance.now();
      await sleep(l.cpuSeconds * 1000);
      const cpuSeconds = (cpuTicks(server.pid) - c0) / ticksPerSec;
      const wallSeconds = (performance.now() - t0) / 1000;
      return { cpuSeconds, wallSeconds, share: cpuSeconds / wallSeconds };
    };
    const first = await window();
    const steady = await window();
    result = { connections: l.cpuIdle, ...steady, first, rss: rss(server.pid) };
    const closed = await closeIdle(helper);
    if (closed) result = { error: closed };
  } finally {
    const stopped = await server.stop();
    if (stopped.error && !result?.error) result = { error: stopped.error };
  }
  return result;
}

/** Runs the selected servers; returns { meta, results }, or null when none was selected. */
export async function measure(s) {
  const servers = SERVERS.filter((e) => s.selected(key(e))).map((e) => ({
    ...e,
    status: 'pending',
    note: null,
    rate0: [],
    rateIdle: [],
    memory: [],
    errors: [],
    cpu: e.cpu ? null : undefined,
  }));
  if (servers.length === 0) return null;
  const l = settingsOf(s);

  const load = s.compile(LOAD_SRC, LOAD_BIN);
  const idle = s.compile(IDLE_SRC, IDLE_BIN);
  const native = servers.some((e) => e.command[0] === SERVER_BIN) ? s.compile(SERVER_SRC, SERVER_BIN) : null;
  const hard = hardNofile();
  for (const e of servers) {
    if (!load.ok) e.note = load.note;
    else if (!idle.ok) e.note = idle.note;
    else if (e.command[0] === SERVER_BIN && !native.ok) e.note = native.note;
    else if (hard < l.idle + l.active + 100)
      e.note = `the hard descriptor limit (${hard}) is below ${l.idle + l.active + 100}`;
    else
      e.note =
        (e.needs ?? []).filter((f) => !existsSync(resolve(s.root, f))).map((f) => `${f} does not exist yet`)[0] ?? null;
    if (e.note === null) continue;
    e.status = 'skipped';
    log(`skip  ${key(e)}: ${e.note}`);
  }
  const active = servers.filter((e) => e.status === 'pending');
  log(
    `scale: ${l.active} active connections (${fmtInt(l.roundTrips)} round trips +${fmtInt(l.warmup)} warm-up) with 0 and ` +
      `${fmtInt(l.idle)} idle × ${l.repeats} runs; idle CPU with ${fmtInt(l.cpuIdle)} idle over ${l.cpuSeconds} s; ` +
      `${active.length} servers, ${s.machine.cpus} CPUs`,
  );

  for (let rep = 1; rep <= l.repeats; rep++) {
    for (const e of active) {
      const r = await repeatOnce(e, l, s);
      e.rate0.push(...r.rate0);
      e.rateIdle.push(...r.rateIdle);
      if (r.memory) e.memory.push(r.memory);
      e.errors.push(...r.errors);
      const m = r.memory;
      log(
        `run ${rep}/${l.repeats}  ${key(e).padEnd(18)} 0 idle ${r.rate0.map(fmtInt).join(', ').padStart(16)} rt/s · ` +
          `${fmtInt(l.idle)} idle ${r.rateIdle.map(fmtInt).join(', ').padStart(7)} rt/s · ` +
          `${m ? `${fmtInt(m.bytesPerConnection)} B/conn (peak ${fmtInt(m.peakBytesPerConnection)}), accepted in ${m.acceptSeconds.toFixed(2)} s` : 'no memory reading'}` +
          `${r.errors.length ? ` · FAILED: ${r.errors.join('; ')}` : ''}`,
      );
    }
  }
  const ticks = clockTicks();
  for (const e of active.filter((x) => x.cpu === null)) {
    e.cpu = await idleCpu(e, l, s, ticks);
    if (e.cpu.error) {
      e.errors.push(`idle CPU: ${e.cpu.error}`);
      log(`idle CPU  ${key(e)} FAILED: ${e.cpu.error}`);
    } else {
      log(
        `idle CPU  ${key(e)}: ${e.cpu.cpuSeconds.toFixed(2)} s of CPU in ${e.cpu.wallSeconds.toFixed(1)} s with ` +
          `${fmtInt(e.cpu.connections)} idle connections = ${(e.cpu.share * 100).toFixed(2)}% of a core ` +
          `(the window before: ${(e.cpu.first.share * 100).toFixed(2)}%)`,
      );
    }
  }

  for (const e of active) {
    e.status = e.rate0.length > 0 || e.memory.length > 0 ? 'ok' : 'failed';
    if (e.errors.length > 0) e.note = `${e.errors.length} failure(s): ${e.errors[0]}`;
    const best = (xs) => (xs.length ? Math.max(...xs) : null);
    e.rate0Best = best(e.rate0);
    e.rateIdleBest = best(e.rateIdle);
    e.rate0Median = e.rate0.length ? median(e.rate0) : null;
    e.rateIdleMedian = e.rateIdle.length ? median(e.rateIdle) : null;
    e.rateRatio = e.rate0Best && e.rateIdleBest ? e.rateIdleBest / e.rate0Best : null;
    e.rateRatioMedian = e.rate0Median && e.rateIdleMedian ? e.rateIdleMedian / e.rate0Median : null;
    e.bytesPerConnection = e.memory.length ? median(e.memory.map((m) => m.bytesPerConnection)) : null;
    e.peakBytesPerConnection = e.memory.length ? median(e.memory.map((m) => m.peakBytesPerConnection)) : null;
  }

  const meta = {
    ...s.machine,
    reproduce: 'BENCH_ONLY=scale node bench/run.js',
    compiler: load.ok ? load.compiler : null,
    idle: l.idle,
    active: l.active,
    cpuIdle: l.cpuIdle,
    cpuSeconds: l.cpuSeconds,
    roundTrips: l.roundTrips,
    warmup: l.warmup,
    repeats: l.repeats,
    nofileHardLimit: hard,
    targets: TARGETS,
    pyreNexusMaxConnections: l.idle + l.active + 100,
  };
  const results = [...servers.filter((e) => e.status === 'ok'), ...servers.filter((e) => e.status !== 'ok')].map(
    (e) => ({
      server: e.server,
      command: e.command,
      status: e.status,
      note: e.note,
      rate0Samples: e.rate0,
      rateIdleSamples: e.rateIdle,
      rate0Best: e.rate0Best ?? null,
      rateIdleBest: e.rateIdleBest ?? null,
      rate0Median: e.rate0Median ?? null,
      rateIdleMedian: e.rateIdleMedian ?? null,
      rateRatio: e.rateRatio ?? null,
      rateRatioMedian: e.rateRatioMedian ?? null,
      memorySamples: e.memory,
      bytesPerConnection: e.bytesPerConnection ?? null,
      peakBytesPerConnection: e.peakBytesPerConnection ?? null,
      idleCpu: e.cpu ?? null,
    }),
  );

  const ok = results.filter((e) => e.status === 'ok');
  printTable(
    [
      ['server', '0 idle rt/s', 'idle rt/s', 'ratio', 'B/conn', 'peak B/conn', 'idle CPU'],
      ...ok.map((e) => [
        e.server,
        e.rate0Best === null ? '—' : fmtInt(e.rate0Best),
        e.rateIdleBest === null ? '—' : fmtInt(e.rateIdleBest),
        fmtRatio(e.rateRatio),
        e.bytesPerConnection === null ? '—' : fmtInt(e.bytesPerConnection),
        e.peakBytesPerConnection === null ? '—' : fmtInt(e.peakBytesPerConnection),
        e.idleCpu && !e.idleCpu.error ? `${(e.idleCpu.share * 100).toFixed(2)}%` : '—',
      ]),
    ],
    1,
  );
  for (const e of results.filter((x) => x.note)) log(`${e.status}: ${key(e)} — ${e.note}`);
  log('');
  return { meta, results };
}

const fmtPct = (x) => `${(x * 100).toFixed(2)}%`;
const fmtKiB = (b) => `${(b / 1024).toFixed(2)} KiB`;
const verdict = (met) => (met ? '**met**' : '**not met**');

/** The BENCHMARKS.md section for a { meta, results } from measure() (or from an earlier results.json). */
export function markdown({ meta, results }) {
  const ok = results.filter((e) => e.status === 'ok');
  const name = (e) => (e.server === 'pyre-nexus' ? '**pyre-nexus**' : e.server);
  const num = (x) => (x === null ? '—' : fmtInt(x));
  const nexus = ok.find((e) => e.server === 'pyre-nexus');
  const T = meta.targets;
  const idleN = fmtInt(meta.idle);
  const lines = [
    `## Scale: ${meta.active} active connections beside ${idleN} idle ones`,
    '',
    '![scale: echo rate with idle connections, memory and CPU per idle connection](bench/scale.svg)',
    '',
    `Each server of the echo benchmark is started afresh for every run (${meta.repeats} runs, interleaved). In ` +
      `a run, ${meta.active} connections play 64-byte ping-pong (${fmtInt(meta.roundTrips)} round trips after ` +
      `${fmtInt(meta.warmup)} warm-up, \`bench/native/echo-load.c\`) with no idle connection open; then ` +
      `\`bench/native/idle-conns.c\` opens ${idleN} TCP connections to the same server and never writes on ` +
      "them, the server's open descriptors are counted until it has accepted them all, and its resident " +
      `memory is read 1.5 s later; the ${meta.active} connections play again with the ${idleN} idle ones open; ` +
      `the idle ones are closed (no server closed or wrote on any) and the ${meta.active} play once more. The ` +
      '0-idle figures take both of their runs. Every server runs with its soft descriptor limit raised to ' +
      `the hard one (${fmtInt(meta.nofileHardLimit)}).`,
    '',
    `### Echo rate, ${meta.active} active connections`,
    '',
    `| Server | 0 idle: round trips/s (best) | Median | ${idleN} idle: round trips/s (best) | Median | ${idleN} idle ÷ 0 idle | (medians) |`,
    '|---|--:|--:|--:|--:|--:|--:|',
    ...ok.map(
      (e) =>
        `| ${name(e)} | ${num(e.rate0Best)} | ${num(e.rate0Median)} | ${num(e.rateIdleBest)} | ${num(e.rateIdleMedian)} | ` +
        `${fmtRatio(e.rateRatio)} | ${fmtRatio(e.rateRatioMedian)} |`,
    ),
    '',
    `### Memory per idle connection (${idleN} connections)`,
    '',
    `| Server | VmRSS before | VmRSS after | Per connection | Highest VmRSS on the way, per connection | Time to connect / to accept all |`,
    '|---|--:|--:|--:|--:|--:|',
    ...ok
      .filter((e) => e.memorySamples.length > 0)
      .map((e) => {
        // The run whose per-connection figure is the median one.
        const m = [...e.memorySamples].sort((a, b) => a.bytesPerConnection - b.bytesPerConnection)[
          (e.memorySamples.length - 1) >> 1
        ];
        return (
          `| ${name(e)} | ${(m.rssBefore / 1048576).toFixed(1)} MiB | ${(m.rssAfter / 1048576).toFixed(1)} MiB | ` +
          `${fmtInt(e.bytesPerConnection)} bytes | ${fmtInt(e.peakBytesPerConnection)} bytes | ` +
          `${m.connectSeconds.toFixed(2)} s / ${m.acceptSeconds.toFixed(2)} s |`
        );
      }),
    '',
    'Per connection: (VmRSS after − VmRSS before) ÷ connections, the median of the runs (the row shows that ' +
      "run's readings). Kernel socket memory is not in VmRSS and not counted.",
    '',
    `### Idle CPU, ${fmtInt(meta.cpuIdle)} idle connections`,
    '',
    '| Server | First window: CPU time | Share of one core | Second window: CPU time | Share of one core |',
    '|---|--:|--:|--:|--:|',
    ...ok
      .filter((e) => e.idleCpu && !e.idleCpu.error)
      .map((e) => {
        const { first, cpuSeconds, share } = e.idleCpu;
        const ms = (x) => `${(x * 1000).toFixed(0)} ms`;
        return `| ${name(e)} | ${ms(first.cpuSeconds)} | ${fmtPct(first.share)} | ${ms(cpuSeconds)} | ${fmtPct(share)} |`;
      }),
    '',
    `A fresh server, ${fmtInt(meta.cpuIdle)} idle connections opened and accepted, 5 s to settle, then utime + ` +
      `stime from \`/proc/<pid>/stat\` (every thread) over two back-to-back windows of ${meta.cpuSeconds} s; one ` +
      'measurement per server, clock-tick resolution (10 ms). The first window holds the last of start-up: about ' +
      "8 s after start V8's memory reducer runs compacting GCs (seen with `--trace-gc`, in the main isolate and in " +
      "tsx's loader thread). The second window is the idle cost, and the target is judged on it.",
    '',
    '### Issue 5 targets',
    '',
    '| Target | Measured | |',
    '|---|--:|---|',
  ];
  if (nexus) {
    lines.push(
      nexus.rateRatio === null
        ? `| rate with ${idleN} idle ≥ ${T.rate}× the rate with none | — | **not met** (not measured: see below) |`
        : `| rate with ${idleN} idle ≥ ${T.rate}× the rate with none | ${fmtRatio(nexus.rateRatio)} (medians ${fmtRatio(nexus.rateRatioMedian)}) | ${verdict(nexus.rateRatio >= T.rate)} |`,
      nexus.bytesPerConnection === null
        ? `| memory per idle connection ≤ ${fmtKiB(T.bytesPerConnection)} | — | **not met** (not measured) |`
        : `| memory per idle connection ≤ ${fmtKiB(T.bytesPerConnection)} | ${fmtKiB(nexus.bytesPerConnection)} | ${verdict(nexus.bytesPerConnection <= T.bytesPerConnection)} |`,
      !nexus.idleCpu || nexus.idleCpu.error
        ? `| idle CPU with ${fmtInt(meta.cpuIdle)} idle connections < ${fmtPct(T.cpuShare)} of a core | — | **not met** (not measured) |`
        : `| idle CPU with ${fmtInt(meta.cpuIdle)} idle connections < ${fmtPct(T.cpuShare)} of a core | ${fmtPct(nexus.idleCpu.share)} | ${verdict(nexus.idleCpu.share < T.cpuShare)} |`,
    );
  } else {
    lines.push('| (pyre-nexus not measured) | — | — |');
  }
  lines.push(
    '',
    `- **pyre-nexus** is \`bench/echo/nexus.js\` (the example \`EchoServer\` in a \`Node\`) with ` +
      `\`maxConnections\` raised to ${fmtInt(meta.pyreNexusMaxConnections)} through \`BENCH_MAX_CONNECTIONS\`: at ` +
      `the default limit of 10,000 the ${idleN} idle connections take every place and the ${meta.active} active ` +
      'ones wait in the listen queue, unanswered (as documented). Its idle timeout (300 s) is far longer than a run.',
    "- **node-net** is `bench/echo/net.js` (Node's `net`, no connection limit); **native** is " +
      '`bench/native/echo-server.c` (C, epoll).',
    '',
    machineLine(meta),
    '',
    `Reproduce: \`${meta.reproduce}\` (\`BENCH_SCALE_IDLE\`, \`BENCH_SCALE_ACTIVE\`, \`BENCH_SCALE_CPU_IDLE\`, ` +
      '`BENCH_SCALE_CPU_SECONDS`, `BENCH_SCALE_ROUNDTRIPS` and `BENCH_REPEATS` set the sizes).',
  );
  const noted = results.filter((e) => e.note);
  if (noted.length > 0) {
    lines.push('', 'Failures and skips in this run:', '');
    for (const e of noted) lines.push(`- ${e.server} — ${e.status}: ${e.note}`);
  }
  return `${lines.join('\n')}\n`;
}

export function chart({ meta, results }) {
  const ok = results.filter((e) => e.status === 'ok');
  const idleN = fmtInt(meta.idle);
  return barChart({
    title: `Scale: ${meta.active} active connections beside ${idleN} idle ones`,
    subtitle: `best of ${meta.repeats} runs for rates, median for memory · ${meta.cpu}, ${meta.cpus} CPUs · Node ${meta.node} · ${meta.date.slice(0, 10)}`,
    footer: `issue 5 targets for pyre-nexus: rate with ${idleN} idle ≥ ${meta.targets.rate}× none; ≤ 4 KiB per idle connection; idle CPU < 1% of a core`,
    groups: [
      {
        heading: `Echo rate of ${meta.active} connections, round trips/s (higher is better)`,
        ownScale: true,
        bars: ok.flatMap((e) =>
          [
            [`${e.server} · 0 idle`, e.rate0Best, ''],
            [`${e.server} · ${idleN} idle`, e.rateIdleBest, e.rateRatio === null ? '' : ` · ${fmtRatio(e.rateRatio)}`],
          ]
            .filter(([, v]) => v !== null)
            .map(([label, value, extra]) => ({ impl: e.server, label, value, text: `${fmtInt(value)} rt/s${extra}` })),
        ),
      },
      {
        heading: 'Resident memory per idle connection, bytes (lower is better)',
        ownScale: true,
        bars: ok
          .filter((e) => e.bytesPerConnection !== null)
          .map((e) => ({
            impl: e.server,
            label: e.server,
            value: Math.max(0, e.bytesPerConnection),
            text: `${fmtInt(e.bytesPerConnection)} bytes`,
          })),
      },
      {
        heading: `CPU with ${fmtInt(meta.cpuIdle)} idle connections, % of one core (lower is better)`,
        ownScale: true,
        bars: ok
          .filter((e) => e.idleCpu && !e.idleCpu.error)
          .map((e) => ({
            impl: e.server,
            label: e.server,
            value: e.idleCpu.share * 100,
            text: fmtPct(e.idleCpu.share),
          })),
      },
    ],
  });
}
