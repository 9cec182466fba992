// Echo server: one load generator (bench/native/echo-load.c) drives each server in turn over 1 and
// over 64 TCP connections, each connection doing 64-byte ping-pong. The client is the same native
// program for every server, so the servers are the only thing that differs.
//
// Contract for every server in SERVERS: started from the repo root with <command...>, it listens
// on 127.0.0.1, prints its TCP port as the first line on stdout, echoes every byte of every
// connection back, and exits (status 0 or by the signal itself) on SIGTERM.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { runToEnd, startServer } from './proc.js';
import { barChart, endReport, fmtInt, fmtRatio, log, machineLine, printTable, summarise } from './report.js';

const LOAD_SRC = 'bench/native/echo-load.c';
const LOAD_BIN = 'bench/.build/echo-load';
const SERVER_SRC = 'bench/native/echo-server.c';
const SERVER_BIN = 'bench/.build/echo-server';

// One entry per server. 'node' as the first word means the Node running this harness.
// `needs`: files that must exist, or 'module#name' for a module that must export `name`; until
// they do, the entry is skipped with a note (the service side of the library is being written).
// biome-ignore format: keep one line per server
const SERVERS = [
	{ server: "native", command: [SERVER_BIN] },
	{ server: "node-net", command: ["node", "bench/echo/net.js"] },
	{ server: "pyre-nexus", command: ["node", "--import", "tsx", "bench/echo/nexus.js"], needs: ["examples/services/echo.ts", "dist/index.js#Node"] },
	{ server: "pyre-nexus-spin", command: ["node", "--import", "tsx", "bench/echo/nexus.js"], env: { BENCH_SPIN: "300" }, needs: ["examples/services/echo.ts", "dist/index.js#Node"] },
];

const key = (e) => `echo/${e.server}`;
const plural = (n) => `${n} connection${n === 1 ? '' : 's'}`;

/** Why an entry cannot run yet, or null. Exports are checked in a child process so that the
 *  harness itself never loads the addon. */
async function missing(entry, s) {
  for (const need of entry.needs ?? []) {
    const [file, name] = need.split('#');
    if (!existsSync(resolve(s.root, file))) return `${file} does not exist yet`;
    if (name === undefined) continue;
    // Exit status 3: the module loads but lacks the export; any other failure is its load error.
    const probe = `import('./${file}').then((m) => process.exit(typeof m[${JSON.stringify(name)}] === 'function' ? 0 : 3))`;
    const r = await runToEnd(s.root, ['node', '--input-type=module', '-e', probe], { timeoutMs: 60_000 });
    if (r.error === 'exited with 3') return `${file} does not export ${name} yet`;
    if (r.error) return `${file} does not load: ${r.error}`;
  }
  return null;
}

/** One run of the native load generator against the server at `port`: { seconds } or { error }. */
export async function runLoad(port, connections, s) {
  const command = [LOAD_BIN, String(port), String(connections), String(s.roundTrips), String(s.warmup)];
  const env = { ...process.env, BENCH_TIMEOUT_MS: String(s.timeoutMs) };
  const run = await runToEnd(s.root, command, { env, timeoutMs: s.timeoutMs + 5_000 });
  if (run.error) return run;
  let r;
  try {
    r = JSON.parse(run.stdout.trim().split('\n').pop());
  } catch {
    return { error: `no JSON line from echo-load (got ${JSON.stringify(run.stdout.slice(0, 200))})` };
  }
  if (r.connections !== connections || r.roundTrips !== s.roundTrips) {
    return { error: `echo-load reported ${JSON.stringify(r)}` };
  }
  if (typeof r.seconds !== 'number' || !(r.seconds > 0)) return { error: `bad "seconds": ${r.seconds}` };
  return { seconds: r.seconds };
}

/** Runs the selected servers; returns { meta, results }, or null when none was selected. */
export async function measure(s) {
  const servers = SERVERS.filter((e) => s.selected(key(e))).map((e) => ({ ...e, note: null }));
  if (servers.length === 0) return null;
  // One row per (server, connection count): that is what gets a number, a ratio and a bar.
  const rows = new Map(
    servers.flatMap((e) =>
      s.connections.map((n) => [
        `${e.server}/${n}`,
        { ...e, connections: n, samples: [], errors: [], status: 'pending' },
      ]),
    ),
  );
  const rowsOf = (e) => s.connections.map((n) => rows.get(`${e.server}/${n}`));

  const load = s.compile(LOAD_SRC, LOAD_BIN);
  const native = servers.some((e) => e.command[0] === SERVER_BIN) ? s.compile(SERVER_SRC, SERVER_BIN) : null;
  for (const e of servers) {
    if (!load.ok) e.note = load.note;
    else if (e.command[0] === SERVER_BIN && !native.ok) e.note = native.note;
    else e.note = await missing(e, s);
    if (e.note === null) continue;
    for (const row of rowsOf(e)) Object.assign(row, { status: 'skipped', note: e.note });
    log(`skip  ${key(e)}: ${e.note}`);
  }

  const active = servers.filter((e) => e.note === null);
  log(
    `echo: ${fmtInt(s.roundTrips)} round trips (+${fmtInt(s.warmup)} warm-up) over ${s.connections.map(plural).join(' and ')} ` +
      `× ${s.repeats} runs, ${active.length} servers, ${s.machine.cpus} CPUs`,
  );
  // Interleaved like the ping-pong, and each server is started afresh for every repeat so that a
  // run never inherits another run's connections or heap.
  for (let rep = 1; rep <= s.repeats; rep++) {
    for (const e of active) {
      const server = await startServer(s.root, e.command, {
        env: { ...process.env, ...e.env },
        timeoutMs: s.timeoutMs,
      });
      for (const row of rowsOf(e)) {
        const r = server.error ? server : await runLoad(server.port, row.connections, s);
        const label = `${key(e)} × ${plural(row.connections)}`.padEnd(40);
        if (r.error) {
          // When the load failed, the server's last words usually say why.
          const said = server.error ? '' : server.stderr();
          row.errors.push(`${r.error}${said ? ` (server stderr: ${said})` : ''}`);
          log(`run ${rep}/${s.repeats}  ${label} FAILED: ${row.errors.at(-1)}`);
        } else {
          row.samples.push(r.seconds);
          log(`run ${rep}/${s.repeats}  ${label} ${fmtInt(s.roundTrips / r.seconds).padStart(10)} rt/s`);
        }
      }
      if (server.error) continue;
      const stopped = await server.stop();
      if (stopped.error) {
        for (const row of rowsOf(e)) row.errors.push(stopped.error);
        log(`run ${rep}/${s.repeats}  ${key(e)}: ${stopped.error}`);
      }
    }
  }

  const all = [...rows.values()];
  for (const row of all.filter((r) => r.status === 'pending')) summarise(row, s.roundTrips, s.repeats);
  const ok = all.filter((r) => r.status === 'ok');
  // Ratios are taken at the same connection count: "× native" against the C epoll server,
  // "× node-net" against Node's own net server.
  const ref = (server, n) => ok.find((r) => r.server === server && r.connections === n);
  for (const r of ok) {
    const nat = ref('native', r.connections);
    const net = ref('node-net', r.connections);
    r.vsNative = nat ? r.roundTripsPerSec / nat.roundTripsPerSec : null;
    r.vsNet = net ? r.roundTripsPerSec / net.roundTripsPerSec : null;
    // Little's law: with n connections always in flight, each waits n / throughput for its echo.
    r.latencyUs = (r.connections * 1e6) / r.roundTripsPerSec;
  }
  ok.sort((a, b) => a.connections - b.connections || b.roundTripsPerSec - a.roundTripsPerSec);

  const meta = {
    ...s.machine,
    compiler: load.ok ? load.compiler : null,
    roundTrips: s.roundTrips,
    warmup: s.warmup,
    repeats: s.repeats,
    connections: s.connections,
    reported: 'best of the runs (highest round trips/s); median kept alongside',
    payloadBytes: 64,
    loadGenerator: LOAD_SRC,
  };
  const results = [...ok, ...all.filter((r) => r.status !== 'ok')].map((r) => ({
    server: r.server,
    connections: r.connections,
    command: r.command,
    status: r.status,
    note: r.note ?? null,
    samplesSeconds: r.samples,
    bestSeconds: r.bestSeconds ?? null,
    medianSeconds: r.medianSeconds ?? null,
    roundTripsPerSec: r.roundTripsPerSec ?? null,
    medianRoundTripsPerSec: r.medianRoundTripsPerSec ?? null,
    latencyUs: r.latencyUs ?? null,
    vsNative: r.vsNative ?? null,
    vsNet: r.vsNet ?? null,
  }));

  printTable(
    [
      ['server', 'conns', 'rt/s (best)', 'rt/s (median)', 'latency µs', '× native', '× node-net'],
      ...ok.map((r) => [
        r.server,
        String(r.connections),
        fmtInt(r.roundTripsPerSec),
        fmtInt(r.medianRoundTripsPerSec),
        r.latencyUs.toFixed(2),
        fmtRatio(r.vsNative),
        fmtRatio(r.vsNet),
      ]),
    ],
    1,
  );
  for (const r of all.filter((x) => x.status !== 'ok')) log(`${r.status}: ${key(r)} × ${r.connections} — ${r.note}`);
  log('');
  return { meta, results };
}

/** The BENCHMARKS.md section for a { meta, results } from measure() (or from an earlier results.json). */
export function markdown({ meta, results }) {
  const ok = results.filter((r) => r.status === 'ok');
  const conns = meta.connections.map(plural).join(' and ');
  const lines = [
    `## Echo server: 64-byte ping-pong over ${conns}`,
    '',
    `${fmtInt(meta.roundTrips)} round trips per run (over all connections together) after ${fmtInt(meta.warmup)} ` +
      `uncounted warm-up round trips; each server started afresh and run ${meta.repeats}× (interleaved), the ` +
      '**best** run is reported and the median shown next to it. Every connection sends 64 bytes and waits for ' +
      'the same 64 bytes to come back before sending the next; all connections are in flight at once. ' +
      'Higher is better.',
    '',
    '| Server | Connections | Round trips/s (best) | Median | Mean latency (µs) | × native | × node-net |',
    '|---|--:|--:|--:|--:|--:|--:|',
    ...ok.map(
      (r) =>
        `| ${r.server.startsWith('pyre-nexus') ? `**${r.server}**` : r.server} | ${r.connections} | ${fmtInt(r.roundTripsPerSec)} | ` +
        `${fmtInt(r.medianRoundTripsPerSec)} | ${r.latencyUs.toFixed(2)} | ${fmtRatio(r.vsNative)} | ${fmtRatio(r.vsNet)} |`,
    ),
    '',
    '- **load generator** (every row): `bench/native/echo-load.c`, C with epoll, `TCP_NODELAY`, every echo ' +
      "checked byte for byte; it and the server share the machine's CPUs.",
    '- **native**: `bench/native/echo-server.c`, C, `gcc -O2`, one thread, level-triggered epoll, one `read` ' +
      'and one `write` per wakeup — the practical limit.',
    "- **node-net**: `bench/echo/net.js`, Node's `net` server (`noDelay`), `socket.pipe(socket)`.",
    '- **pyre-nexus**: `bench/echo/nexus.js`, a `Node` of this library hosting the example `EchoServer` ' +
      'service (`examples/services/echo.ts`). **pyre-nexus-spin** is the same node given ' +
      '`new Dispatcher({ spin: 300 })` (`BENCH_SPIN=300`): it polls up to 300 µs before it sleeps, so it is ' +
      'awake when the next request comes, and keeps a CPU busy meanwhile, where the other servers sleep.',
    '- **Mean latency** is connections ÷ round trips/s: how long each connection waits for its echo. ' +
      '**× native** and **× node-net** divide by that server at the same number of connections.',
    '',
    machineLine(meta),
    '',
    `Reproduce: \`${meta.reproduce ?? 'npm run bench'}\` (\`BENCH_ONLY=echo node bench/run.js\` for this ` +
      'benchmark alone; `BENCH_ROUNDTRIPS` sets the size).',
  ];
  return endReport(lines, results, (r) => `${r.server} × ${plural(r.connections)}`);
}

export function chart({ meta, results }) {
  const ok = results.filter((r) => r.status === 'ok');
  return barChart({
    title: 'Echo server: 64-byte ping-pong, round trips per second (higher is better)',
    subtitle: `${fmtInt(meta.roundTrips)} round trips, best of ${meta.repeats}, one native load generator · ${meta.cpu}, ${meta.cpus} CPUs · Node ${meta.node} · ${meta.date.slice(0, 10)}`,
    footer: '× native: vs the C epoll echo server at the same number of connections; all bars on one scale',
    groups: meta.connections.map((n) => ({
      heading: plural(n),
      bars: ok
        .filter((r) => r.connections === n)
        .map((r) => ({
          impl: r.server,
          label: r.server,
          value: r.roundTripsPerSec,
          text: `${fmtInt(r.roundTripsPerSec)} rt/s${r.vsNative === null ? '' : ` · ${fmtRatio(r.vsNative)} native`}`,
        })),
    })),
  });
}
