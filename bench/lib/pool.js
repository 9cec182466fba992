// Worker pools: pyre-nexus's Pool (Fork and Threads recruiters) side by side with piscina,
// tinypool, workerpool (child processes) and two hand-written child-process round-robins, over
// five scenarios with 2 workers: trivial tasks all at once and one at a time, 5 ms CPU-bound tasks
// all at once and one at a time, and start-up (pool creation to first result, 2 and 8 workers).
// Two more, the dealing scenarios, run pyre-nexus Fork, piscina and the framed round-robin only
// (BENCH_ONLY=dealing runs just them): a burst of 5 ms tasks submitted one by one after 20,000
// trivial ones (2 workers), and 8 tasks that sleep 200 ms each on a team of 8 (more than the CPUs).
//
// Every measurement is one run of bench/pool/driver.js in a process of its own (see its header
// for the contract): it creates the pool, warms it up (not for start-up), measures, checks every
// result and closes the pool. Runs are interleaved like the other benchmarks, the median is kept.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { runToEnd } from './proc.js';
import { barChart, endReport, fmtInt, fmtRatio, log, median, printTable } from './report.js';

const DRIVER = 'bench/pool/driver.js';
const WORKERS = 2;
const TASK_MS = 5;
/** The contenders of the dealing scenarios. */
const DEALING = ['pyre-nexus-fork', 'piscina', 'framed-rr'];

// biome-ignore format: keep one line per scenario
const SCENARIOS = [
  { id: "trivial-all", scenario: "trivial-all", workers: WORKERS, tasks: 20_000, heading: "Trivial tasks, all at once" },
  { id: "trivial-seq", scenario: "trivial-seq", workers: WORKERS, tasks: 3_000, heading: "Trivial tasks, one at a time" },
  { id: "cpu-all", scenario: "cpu-all", workers: WORKERS, tasks: 200, heading: `CPU-bound tasks (${TASK_MS} ms each), all at once` },
  { id: "cpu-seq", scenario: "cpu-seq", workers: WORKERS, tasks: 200, heading: `CPU-bound tasks (${TASK_MS} ms each), one at a time` },
  { id: "startup-2", scenario: "startup", workers: 2, tasks: 2, heading: "Start-up, 2 workers" },
  { id: "startup-8", scenario: "startup", workers: 8, tasks: 8, heading: "Start-up, 8 workers" },
  { id: "dealing-burst", scenario: "burst", workers: WORKERS, tasks: 200, trivialFirst: 20_000, contenders: DEALING, heading: `Dealing: ${TASK_MS} ms tasks submitted one by one after 20,000 trivial ones` },
  { id: "dealing-team", scenario: "team", workers: 8, tasks: 8, taskMs: 200, trivialFirst: 8, contenders: DEALING, heading: "Dealing: 8 tasks sleeping 200 ms each, 8 workers" },
];

// One entry per contender; `startupOnly`: measured in the start-up scenarios alone.
// biome-ignore format: keep one line per contender
const CONTENDERS = [
  { id: "pyre-nexus-fork", label: "pyre-nexus Fork", kind: "processes", needs: ["dist/index.js"] },
  { id: "pyre-nexus-threads", label: "pyre-nexus Threads", kind: "threads", needs: ["dist/index.js"] },
  { id: "piscina", label: "piscina", kind: "threads", needs: ["node_modules/piscina"] },
  { id: "tinypool", label: "tinypool", kind: "threads", needs: ["node_modules/tinypool"] },
  { id: "workerpool", label: "workerpool (process)", kind: "processes", needs: ["node_modules/workerpool"] },
  { id: "fork-ipc", label: "fork + IPC round-robin", kind: "processes" },
  { id: "framed-rr", label: "framed round-robin", kind: "processes" },
  { id: "node-e0", label: "node -e 0 (reference)", kind: "processes", startupOnly: true },
];

const key = (e) => `pool/${e.contender.id}/${e.scenario.id}`;
const isStartup = (sc) => sc.scenario === 'startup';
const taskMs = (sc) => sc.taskMs ?? TASK_MS;
/** What a run of the scenario would take with no overhead at all (seconds), or null. */
function ideal(sc) {
  switch (sc.scenario) {
    case 'cpu-all':
    case 'burst':
      return (sc.tasks * taskMs(sc)) / sc.workers / 1000;
    case 'cpu-seq':
      return (sc.tasks * taskMs(sc)) / 1000;
    case 'team':
      return (Math.ceil(sc.tasks / sc.workers) * taskMs(sc)) / 1000;
    default:
      return null;
  }
}
/** Scenarios timed in ms against an ideal (the others: tasks/s, or start-up). */
const isTimed = (sc) => ideal(sc) !== null;
const fmtMs = (s) => (s * 1000).toFixed(1);
const fmtPct = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;

// The sandbox these numbers were taken in sets NODE_EXTRA_CA_CERTS, which makes every Node
// process read a CA bundle at start (≈50 ms here); it has nothing to do with pools, so the
// drivers and every process they start run without it.
function driverEnv() {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

async function runOnce(e, s) {
  const sc = e.scenario;
  const command = [
    'node',
    DRIVER,
    e.contender.id,
    sc.scenario,
    String(sc.workers),
    String(sc.tasks),
    String(taskMs(sc)),
  ];
  if (sc.trivialFirst !== undefined) command.push(String(sc.trivialFirst));
  const run = await runToEnd(s.root, command, { env: driverEnv(), timeoutMs: Math.min(s.timeoutMs, 30_000) });
  if (run.error) return run;
  let r;
  try {
    r = JSON.parse(run.stdout.trim().split('\n').pop());
  } catch {
    return { error: `no JSON line on stdout (got ${JSON.stringify(run.stdout.slice(0, 200))})` };
  }
  if (r.contender !== e.contender.id || r.scenario !== sc.scenario || r.workers !== sc.workers) {
    return { error: `reported ${JSON.stringify(r)}` };
  }
  if (typeof r.seconds !== 'number' || !(r.seconds > 0)) return { error: `bad "seconds": ${r.seconds}` };
  if (sc.scenario === 'team' && !(Number.isInteger(r.peak) && r.peak >= 1)) return { error: `bad "peak": ${r.peak}` };
  return r;
}

/** Runs the selected entries; returns { meta, results }, or null when none was selected. */
export async function measure(s) {
  const entries = SCENARIOS.flatMap((scenario) =>
    CONTENDERS.filter((c) => !c.startupOnly || isStartup(scenario))
      .filter((c) => !scenario.contenders || scenario.contenders.includes(c.id))
      .map((contender) => ({ scenario, contender })),
  )
    .filter((e) => s.selected(key(e)))
    .map((e) => ({ ...e, status: 'pending', note: null, samples: [], all: [], close: [], peaks: [], errors: [] }));
  if (entries.length === 0) return null;

  for (const e of entries) {
    const missing = (e.contender.needs ?? []).filter((f) => !existsSync(resolve(s.root, f)));
    if (missing.length === 0) continue;
    e.status = 'skipped';
    e.note = `${missing.join(', ')} missing (npm install, npm run build)`;
    log(`skip  ${key(e)}: ${e.note}`);
  }
  const active = entries.filter((e) => e.status === 'pending');
  log(`pool: ${active.length} entries × ${s.repeats} runs, ${WORKERS} workers unless stated, ${s.machine.cpus} CPUs`);
  const started = performance.now();
  const cpuBefore = cpuTicks();
  for (let rep = 1; rep <= s.repeats; rep++) {
    for (const e of active) {
      const r = await runOnce(e, s);
      const label = key(e).padEnd(36);
      if (r.error) {
        e.errors.push(r.error);
        log(`run ${rep}/${s.repeats}  ${label} FAILED: ${r.error}`);
        continue;
      }
      e.samples.push(r.seconds);
      if (r.allSeconds !== undefined) e.all.push(r.allSeconds);
      if (r.closeSeconds !== undefined) e.close.push(r.closeSeconds);
      if (r.peak !== undefined) e.peaks.push(r.peak);
      const peak = r.peak === undefined ? '' : `  ${r.peak} at once at peak`;
      log(`run ${rep}/${s.repeats}  ${label} ${describe(e.scenario, r.seconds).padStart(16)}${peak}`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  // Anything else running on the machine shows in the CPU-bound and start-up scenarios first.
  const cpuAfter = cpuTicks();
  const foreign = cpuAfter && cpuBefore ? Math.max(0, cpuAfter.foreign - cpuBefore.foreign) / 100 : null;
  log(`pool: ${seconds.toFixed(0)} s; other processes used ${foreign ?? '?'} CPU-seconds meanwhile`);

  for (const e of active) {
    if (e.samples.length === 0) {
      e.status = 'failed';
      e.note = e.errors[0];
      continue;
    }
    e.status = 'ok';
    if (e.errors.length > 0) e.note = `${e.errors.length} of ${s.repeats} runs failed: ${e.errors[0]}`;
    e.medianSeconds = median(e.samples);
  }
  // Ratios: how many times faster pyre-nexus (Fork, Threads) is than the row's contender in the
  // same scenario (its time divided by pyre-nexus's; above 1× pyre-nexus is faster).
  const ok = entries.filter((e) => e.status === 'ok');
  const find = (id, sc) => ok.find((e) => e.contender.id === id && e.scenario.id === sc.id);
  for (const e of ok) {
    const fork = find('pyre-nexus-fork', e.scenario);
    const threads = find('pyre-nexus-threads', e.scenario);
    e.forkRatio = fork ? e.medianSeconds / fork.medianSeconds : null;
    e.threadsRatio = threads ? e.medianSeconds / threads.medianSeconds : null;
  }

  const meta = {
    ...s.machine,
    reproduce: `BENCH_ONLY=pool ${s.machine.reproduce}`,
    repeats: s.repeats,
    seconds: Number(seconds.toFixed(1)),
    foreignCpuSeconds: foreign,
    reported: 'median of the runs',
    workers: WORKERS,
    taskMs: TASK_MS,
    scenarios: SCENARIOS,
    contenders: CONTENDERS.map(({ id, label, kind }) => ({ id, label, kind })),
    versions: versions(s.root),
    revision: revision(s.root),
  };
  const results = entries.map((e) => ({
    contender: e.contender.id,
    label: e.contender.label,
    scenario: e.scenario.id,
    workers: e.scenario.workers,
    tasks: e.scenario.tasks,
    status: e.status,
    note: e.note,
    samplesSeconds: e.samples,
    medianSeconds: e.medianSeconds ?? null,
    minSeconds: e.samples.length ? Math.min(...e.samples) : null,
    maxSeconds: e.samples.length ? Math.max(...e.samples) : null,
    medianAllSeconds: e.all.length ? median(e.all) : null,
    medianCloseSeconds: e.close.length ? median(e.close) : null,
    peaks: e.peaks.length ? e.peaks : null,
    forkRatio: e.forkRatio ?? null,
    threadsRatio: e.threadsRatio ?? null,
  }));

  for (const sc of SCENARIOS) {
    const rows = results.filter((r) => r.scenario === sc.id && r.status === 'ok');
    if (rows.length === 0) continue;
    log(`\n${sc.heading}${isTimed(sc) ? ` (ideal ${fmtMs(ideal(sc))} ms)` : ''}`);
    const peaks = rows.some((r) => r.peaks);
    printTable(
      [
        ['pool', metricName(sc), 'min', 'max', '× Fork', '× Threads', ...(peaks ? ['at once'] : [])],
        ...rows.map((r) => [
          r.label,
          describe(sc, r.medianSeconds),
          describe(sc, r.minSeconds),
          describe(sc, r.maxSeconds),
          fmtRatio(r.forkRatio),
          fmtRatio(r.threadsRatio),
          ...(peaks ? [fmtPeaks(r.peaks)] : []),
        ]),
      ],
      1,
    );
  }
  for (const r of results.filter((x) => x.status !== 'ok'))
    log(`${r.status}: pool/${r.contender}/${r.scenario} — ${r.note}`);
  log('');
  for (const t of [...targets({ meta, results }), ...dealingTargets({ meta, results })])
    log(`target: ${t.met === null ? 'n/a' : t.met ? 'met' : 'NOT met'} — ${t.what}: ${t.got}`);
  log('');
  return { meta, results };
}

/**
 * CPU time (clock ticks, 1/100 s) the machine spent on processes other than this one and its
 * reaped descendants: every run's processes are reaped, so what remains is someone else's.
 * Linux only; null elsewhere.
 */
function cpuTicks() {
  try {
    const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]
      .split(/\s+/)
      .slice(1)
      .map(Number);
    // Fields 14–17 of /proc/self/stat (utime, stime, cutime, cstime), counted after the command
    // name, which may hold spaces.
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const own = stat
      .slice(stat.lastIndexOf(') ') + 2)
      .split(' ')
      .slice(11, 15)
      .map(Number);
    return { foreign: user + nice + system + irq + softirq - own.reduce((a, b) => a + b, 0) };
  } catch {
    return null;
  }
}

/** The commit measured, and whether the library's sources differed from it. */
function revision(root) {
  try {
    const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--', 'ts', 'src', 'crates') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes to the library' : ''}`;
  } catch {
    return null;
  }
}

function versions(root) {
  const version = (name) => {
    try {
      return JSON.parse(readFileSync(resolve(root, 'node_modules', name, 'package.json'), 'utf8')).version;
    } catch {
      return null;
    }
  };
  return { piscina: version('piscina'), tinypool: version('tinypool'), workerpool: version('workerpool') };
}

function metricName(sc) {
  if (isStartup(sc)) return 'first result (ms)';
  if (isTimed(sc)) return 'wall time (ms)';
  return 'tasks/s';
}

function describe(sc, seconds) {
  if (isStartup(sc) || isTimed(sc)) return `${fmtMs(seconds)} ms`;
  return `${fmtInt(sc.tasks / seconds)}/s`;
}

/** The most tasks that ran at once, run by run ("8" when every run agrees, else "1–8"). */
function fmtPeaks(peaks) {
  if (!peaks) return '—';
  const lo = Math.min(...peaks);
  const hi = Math.max(...peaks);
  return lo === hi ? String(lo) : `${lo}–${hi}`;
}

/** The dealing scenarios' targets: pyre-nexus Fork within 5% of the ideal in each. */
export function dealingTargets({ meta, results }) {
  const out = [];
  for (const sc of meta.scenarios.filter((x) => x.id.startsWith('dealing-'))) {
    const r = results.find((x) => x.contender === 'pyre-nexus-fork' && x.scenario === sc.id && x.status === 'ok');
    const best = ideal(sc);
    const over = r ? r.medianSeconds / best - 1 : null;
    out.push({
      what: `${sc.heading}: pyre-nexus Fork within 5% of ${fmtMs(best)} ms`,
      got: r ? `${fmtMs(r.medianSeconds)} ms (${fmtPct(over)})` : 'not measured',
      met: r ? over <= 0.05 : null,
    });
  }
  return out;
}

/** Issue 5's targets for the pool, each met, not met, or not measurable in these results. */
export function targets({ meta, results }) {
  const get = (contender, scenario) =>
    results.find((r) => r.contender === contender && r.scenario === scenario && r.status === 'ok') ?? null;
  const out = [];
  const ratio = (what, scenario, a, b, want) => {
    const x = get(a, scenario);
    const y = get(b, scenario);
    const r = x && y ? y.medianSeconds / x.medianSeconds : null;
    out.push({ what, got: r === null ? 'not measured' : fmtRatio(r), met: r === null ? null : r >= want });
  };
  ratio('trivial all at once: pyre-nexus Fork ≥ 6× piscina', 'trivial-all', 'pyre-nexus-fork', 'piscina', 6);
  ratio('trivial all at once: pyre-nexus Threads ≥ 6× piscina', 'trivial-all', 'pyre-nexus-threads', 'piscina', 6);
  ratio(
    'trivial all at once: pyre-nexus Fork ≥ the framed round-robin',
    'trivial-all',
    'pyre-nexus-fork',
    'framed-rr',
    1,
  );
  ratio('trivial one at a time: pyre-nexus Fork ≥ 1.2× piscina', 'trivial-seq', 'pyre-nexus-fork', 'piscina', 1.2);
  ratio(
    'trivial one at a time: pyre-nexus Threads ≥ 1.2× piscina',
    'trivial-seq',
    'pyre-nexus-threads',
    'piscina',
    1.2,
  );
  const sc = meta.scenarios.find((x) => x.id === 'cpu-all');
  const best = (sc.tasks * meta.taskMs) / sc.workers / 1000;
  for (const [id, label] of [
    ['pyre-nexus-fork', 'Fork'],
    ['pyre-nexus-threads', 'Threads'],
  ]) {
    const r = get(id, 'cpu-all');
    const over = r ? r.medianSeconds / best - 1 : null;
    out.push({
      what: `CPU-bound all at once: pyre-nexus ${label} within 2% of ${fmtMs(best)} ms`,
      got: r ? `${fmtMs(r.medianSeconds)} ms (${fmtPct(over)})` : 'not measured',
      met: r ? Math.abs(over) <= 0.02 : null,
    });
  }
  for (const n of [2, 8]) {
    const t = get('pyre-nexus-threads', `startup-${n}`);
    const p = get('piscina', `startup-${n}`);
    out.push({
      what: `start-up, ${n} workers: pyre-nexus Threads no slower than piscina`,
      got: t && p ? `${fmtMs(t.medianSeconds)} ms vs ${fmtMs(p.medianSeconds)} ms` : 'not measured',
      met: t && p ? t.medianSeconds <= p.medianSeconds : null,
    });
    const f = get('pyre-nexus-fork', `startup-${n}`);
    const z = get('node-e0', `startup-${n}`);
    out.push({
      what: `start-up, ${n} workers: pyre-nexus Fork no slower than node -e 0 + 15 ms`,
      got: f && z ? `${fmtMs(f.medianSeconds)} ms vs ${fmtMs(z.medianSeconds)} + 15 ms` : 'not measured',
      met: f && z ? f.medianSeconds <= z.medianSeconds + 0.015 : null,
    });
  }
  return out;
}

/** The BENCHMARKS.md section for a { meta, results } from measure() (or from an earlier results.json). */
export function markdown({ meta, results }) {
  const lines = [
    '## Worker pools: trivial, CPU-bound and start-up',
    '',
    `${meta.workers} workers unless stated; each pool is created once per run, warmed up (a trivial scenario ` +
      'is run once in full before it is timed; a CPU-bound one first runs 2,000 trivial tasks and a few of its ' +
      'own; start-up has no warm-up), measured, its results checked, and closed; every run is a process of its own, each entry ' +
      `is run ${meta.repeats}× (interleaved) and the **median** is reported, with the fastest and slowest ` +
      'run. **× Fork** and **× Threads** say how many times faster pyre-nexus with that recruiter is than ' +
      "the row's pool in the same scenario (the row's time divided by pyre-nexus's): above 1× pyre-nexus " +
      'is faster.',
  ];
  for (const sc of meta.scenarios) {
    const rows = results.filter((r) => r.scenario === sc.id && r.status === 'ok');
    if (rows.length === 0) continue;
    lines.push('', `### ${sc.heading}`, '', scenarioText(sc, meta), '');
    if (isStartup(sc)) {
      lines.push(
        `| Pool | First result (ms) | Fastest–slowest | All ${sc.workers} results (ms) | × Fork | × Threads |`,
        '|---|--:|--:|--:|--:|--:|',
        ...rows.map(
          (r) =>
            `| ${name(r)} | ${fmtMs(r.medianSeconds)} | ${fmtMs(r.minSeconds)}–${fmtMs(r.maxSeconds)} | ` +
            `${fmtMs(r.medianAllSeconds)} | ${fmtRatio(r.forkRatio)} | ${fmtRatio(r.threadsRatio)} |`,
        ),
      );
    } else if (sc.scenario === 'burst' || sc.scenario === 'team') {
      const best = ideal(sc);
      const peaks = sc.scenario === 'team';
      lines.push(
        `| Pool | Wall time (ms) | Fastest–slowest | × the ideal | × Fork |${peaks ? ' Most at once |' : ''}`,
        `|---|--:|--:|--:|--:|${peaks ? '--:|' : ''}`,
        ...rows.map(
          (r) =>
            `| ${name(r)} | ${fmtMs(r.medianSeconds)} | ${fmtMs(r.minSeconds)}–${fmtMs(r.maxSeconds)} | ` +
            `${fmtRatio(r.medianSeconds / best)} | ${fmtRatio(r.forkRatio)} |${peaks ? ` ${fmtPeaks(r.peaks)} |` : ''}`,
        ),
      );
    } else if (isTimed(sc)) {
      const best = ideal(sc);
      lines.push(
        '| Pool | Wall time (ms) | Fastest–slowest | Over the ideal | × Fork | × Threads |',
        '|---|--:|--:|--:|--:|--:|',
        ...rows.map(
          (r) =>
            `| ${name(r)} | ${fmtMs(r.medianSeconds)} | ${fmtMs(r.minSeconds)}–${fmtMs(r.maxSeconds)} | ` +
            `${fmtPct(r.medianSeconds / best - 1)} | ${fmtRatio(r.forkRatio)} | ${fmtRatio(r.threadsRatio)} |`,
        ),
      );
    } else {
      lines.push(
        '| Pool | Tasks/s | Slowest–fastest | µs / task | × Fork | × Threads |',
        '|---|--:|--:|--:|--:|--:|',
        ...rows.map(
          (r) =>
            `| ${name(r)} | ${fmtInt(r.tasks / r.medianSeconds)} | ${fmtInt(r.tasks / r.maxSeconds)}–` +
            `${fmtInt(r.tasks / r.minSeconds)} | ${((r.medianSeconds * 1e6) / r.tasks).toFixed(1)} | ` +
            `${fmtRatio(r.forkRatio)} | ${fmtRatio(r.threadsRatio)} |`,
        ),
      );
    }
  }
  const v = meta.versions ?? {};
  lines.push(
    '',
    '### The contenders',
    '',
    '- **pyre-nexus Fork**: `new Pool({ size })`, the default recruiter: one Node process per worker, joined ' +
      "by a socket pair on its fd 3; the pool's own dispatcher, like its members, polls up to 300 µs for the next " +
      'report before it sleeps while reports come that fast (the team fits the CPUs). Tasks are `Task` subclasses in `bench/pool/nexus-tasks.js`; many at once ' +
      'go through `pool.assemble(tasks)`, one at a time through `pool.submit(task)`.',
    '- **pyre-nexus Threads**: the same with `recruiter: new Threads()`: worker threads, same protocol.',
    `- **piscina** ${v.piscina ?? ''} and **tinypool** ${v.tinypool ?? ''}: worker threads, ` +
      '`minThreads = maxThreads = workers`, `pool.run(arg, { name })` per task, everything else left at its ' +
      'default.',
    `- **workerpool (process)** ${v.workerpool ?? ''}: \`workerType: 'process'\` (child_process.fork), ` +
      '`minWorkers = maxWorkers = workers`, `pool.exec(name, [arg])` per task.',
    '- **fork + IPC round-robin**: `child_process.fork` children, tasks dealt in turn, one `child.send` ' +
      '(JSON serialization) per task and one `process.send` per result (`bench/pool/contenders.js`, ' +
      '`bench/pool/ipc-worker.js`).',
    '- **framed round-robin**: the "fastest process pool we know" of issue 5: children spawned with an ' +
      "extra `'pipe'` on fd 3 (a socket pair), tasks dealt in turn as 4-byte-length-prefixed JSON frames, " +
      'the frames of one event-loop turn sent in one write; the child runs every task of a chunk it reads, ' +
      'one at a time, and writes their results in one write (`bench/pool/framing.js`, `bench/pool/framed-worker.js`).',
    '- **node -e 0**: the start-up reference: as many bare `node -e 0` processes spawned at once as the ' +
      'pool has workers, timed to the first exit.',
    '',
    'Every contender runs the same task bodies (`bench/pool/tasks.js`): the trivial task returns its input, ' +
      `the CPU-bound one spins on \`performance.now()\` for ${meta.taskMs} ms, the sleeping one waits on a ` +
      'timer and returns when it started and ended. In the dealing scenarios tasks are submitted one by one ' +
      '(`submit()`, `run()`) in a synchronous loop, and the framed round-robin deals them in turn as they come.',
    '',
    '### Issue 5 targets',
    '',
    '| Target | Measured | |',
    '|---|--:|---|',
    ...targets({ meta, results }).map(
      (t) => `| ${t.what} | ${t.got} | ${t.met === null ? '—' : t.met ? 'met' : '**not met**'} |`,
    ),
    ...dealingRows({ meta, results }),
    '',
    `Machine: ${meta.cpu}, ${meta.cpus} CPUs, ${meta.platform}; Node ${meta.node}. Measured ${meta.date.slice(0, 10)}, ` +
      `in ${Math.round(meta.seconds)} s, during which processes other than the benchmark's used ` +
      `${meta.foreignCpuSeconds ?? '(not known)'} CPU-seconds${meta.revision ? `; pyre-nexus at ${meta.revision}` : ''}. The sandbox sets \`NODE_EXTRA_CA_CERTS\`, which ` +
      'costs every Node process about 50 ms at start; the pool benchmark runs without it.',
    '',
    `Reproduce: \`${meta.reproduce}\` (\`BENCH_ONLY=pool node bench/run.js\` without rebuilding; ` +
      '`BENCH_ONLY=pool/piscina`, `BENCH_ONLY=startup` or `BENCH_ONLY=dealing` for part of it).',
  );
  return endReport(lines, results, (r) => `${r.label} / ${r.scenario}`);
}

const name = (r) => (r.contender.startsWith('pyre-nexus') ? `**${r.label}**` : r.label);

/** The dealing targets' table, when a dealing scenario was measured. */
function dealingRows({ meta, results }) {
  const rows = dealingTargets({ meta, results }).filter((t) => t.met !== null);
  if (rows.length === 0) return [];
  return [
    '',
    '### Dealing targets',
    '',
    '| Target | Measured | |',
    '|---|--:|---|',
    ...rows.map((t) => `| ${t.what} | ${t.got} | ${t.met ? 'met' : '**not met**'} |`),
  ];
}

function scenarioText(sc, meta) {
  switch (sc.scenario) {
    case 'trivial-all':
      return `${fmtInt(sc.tasks)} trivial tasks submitted at once; the clock stops at the last result. Higher is better.`;
    case 'trivial-seq':
      return `${fmtInt(sc.tasks)} trivial tasks one at a time, each awaited before the next is submitted: the round trip through the pool. Higher is better.`;
    case 'cpu-all':
      return `${fmtInt(sc.tasks)} tasks of ${meta.taskMs} ms of CPU each, submitted at once: ${fmtMs(ideal(sc))} ms is the ideal with ${sc.workers} workers. Lower is better.`;
    case 'cpu-seq':
      return `The same ${fmtInt(sc.tasks)} tasks one at a time: ${fmtMs(ideal(sc))} ms is the ideal. Lower is better.`;
    case 'burst':
      return `A fresh pool runs ${fmtInt(sc.trivialFirst)} trivial tasks at once, then ${fmtInt(sc.tasks)} tasks of ${taskMs(sc)} ms of CPU each are submitted one by one in a synchronous loop and awaited together: the clock runs from the first submit to the last result. ${fmtMs(ideal(sc))} ms is the ideal with ${sc.workers} workers. Lower is better.`;
    case 'team':
      return `${sc.workers} workers on ${meta.cpus ?? 'the'} CPUs; after ${fmtInt(sc.trivialFirst)} trivial tasks at once (and more until every member is up) and a pause of 250 ms, ${fmtInt(sc.tasks)} tasks that each sleep ${taskMs(sc)} ms on a timer are submitted one by one and awaited together. ${fmtMs(ideal(sc))} ms is the ideal; **Most at once**: the most tasks that ran at the same time (from the start and end each task returns). Lower is better.`;
    default:
      return `From creating the pool to the first result, with ${sc.workers} trivial tasks submitted at once so that every pool brings up all ${sc.workers} workers; imports are done before the clock starts, nothing is warm. Lower is better.`;
  }
}

export function chart({ meta, results }) {
  const groups = meta.scenarios
    .map((sc) => {
      const rows = results.filter((r) => r.scenario === sc.id && r.status === 'ok');
      const trivial = !isTimed(sc) && !isStartup(sc);
      return {
        heading: `${sc.heading} · ${trivial ? 'tasks/s, higher is better' : 'ms, lower is better'}${isTimed(sc) ? ` (ideal ${fmtMs(ideal(sc))} ms)` : ''}`,
        ownScale: true,
        bars: rows.map((r) => ({
          impl: r.contender,
          label: r.label,
          value: trivial ? r.tasks / r.medianSeconds : r.medianSeconds * 1000,
          text: trivial
            ? `${fmtInt(r.tasks / r.medianSeconds)} tasks/s`
            : `${fmtMs(r.medianSeconds)} ms${isTimed(sc) ? ` (${fmtPct(r.medianSeconds / ideal(sc) - 1)})` : ''}`,
        })),
      };
    })
    .filter((g) => g.bars.length > 0);
  return barChart({
    title: 'Worker pools: pyre-nexus and its peers',
    subtitle: `${meta.workers} workers unless stated, median of ${meta.repeats} · ${meta.cpu}, ${meta.cpus} CPUs · Node ${meta.node} · ${meta.date.slice(0, 10)}`,
    footer: 'each scenario on its own scale; pyre-nexus in bold',
    groups,
  });
}
