// Waking up: the CPU one 64-byte message costs a receiver, when messages come back to back and
// when the receiver sleeps between them, as a pool's parent sleeps between the reports of long
// tasks. bench/native/paced.c sends the messages, one at a time, and measures the receiver's CPU
// time (all its threads) from /proc; each receiver echoes what it gets on its descriptor 3.
//
// Environment (besides the harness's own, see bench/run.js):
//   BENCH_WAKE_GAPS_US   comma-separated pauses before each message, in µs (default 0,2500:
//                        2,500 µs is how often a report comes in the pool's CPU-bound scenario)
//   BENCH_WAKE_MESSAGES  counted messages per run (default 400), after a tenth as many uncounted
import { envInt } from '../peers/common.js';
import { commandFile, runToEnd } from './proc.js';
import { barChart, endReport, fmtInt, fmtRatio, log, machineLine, median, printTable } from './report.js';

const SRC = 'bench/native/paced.c';
const BIN = 'bench/.build/paced';

// biome-ignore format: keep one line per receiver
const RECEIVERS = [
	{ impl: "native", command: [BIN, "echo"] },
	{ impl: "node-net", command: ["node", "bench/wake/net.js"] },
	{ impl: "pyre-nexus", command: ["node", "bench/pingpong/nexus.js", "child", "socketpair"] },
];

const key = (e) => `wake/${e.impl}/${e.gapUs}`;
const fmtUs1 = (us) => us.toFixed(1);

// Checked when bench/run.js starts, so that a mistyped setting costs no run its other results.
const GAPS = (() => {
  const items = (process.env.BENCH_WAKE_GAPS_US ?? '0,2500').split(',').map((item) => item.trim());
  const gaps = items.map(Number);
  if (!items.every((item, i) => item !== '' && Number.isInteger(gaps[i]) && gaps[i] >= 0)) {
    log('run.js: BENCH_WAKE_GAPS_US must be whole numbers >= 0, comma-separated');
    process.exit(64);
  }
  return [...new Set(gaps)];
})();

async function runOnce(e, s, messages) {
  const receiver = e.command.map((word, i) => (i === 0 ? commandFile(s.root, word) : word));
  const command = [BIN, String(e.gapUs), String(messages), String(Math.ceil(messages / 10)), ...receiver];
  const run = await runToEnd(s.root, command, { timeoutMs: s.timeoutMs });
  if (run.error) return run;
  let r;
  try {
    r = JSON.parse(run.stdout.trim().split('\n').at(-1));
  } catch {
    return { error: `no JSON line on stdout (got ${JSON.stringify(run.stdout.slice(0, 200))})` };
  }
  if (r.messages !== messages || r.gapUs !== e.gapUs) return { error: `reported ${run.stdout.trim()}` };
  if (!(r.cpuUsPerMessage > 0 && r.roundTripUs > 0)) return { error: `bad figures: ${run.stdout.trim()}` };
  return r;
}

/** Runs the selected receivers at every gap; returns { meta, results }, or null when none was selected. */
export async function measure(s) {
  const entries = GAPS.flatMap((gapUs) => RECEIVERS.map((r) => ({ ...r, gapUs })))
    .filter((e) => s.selected(key(e)))
    .map((e) => ({ ...e, status: 'pending', note: null, cpu: [], rtt: [], errors: [] }));
  if (entries.length === 0) return null;
  const build = s.compile(SRC, BIN);
  if (!build.ok) {
    for (const e of entries) Object.assign(e, { status: 'skipped', note: build.note });
    log(`skip  wake: ${build.note}`);
  }
  const messages = envInt('BENCH_WAKE_MESSAGES', 400);
  const active = entries.filter((e) => e.status === 'pending');
  const gaps = GAPS.filter((gap) => entries.some((e) => e.gapUs === gap));
  log(`wake-up: ${fmtInt(messages)} messages a run, gaps ${gaps.join(', ')} µs, × ${s.repeats} runs`);
  for (let rep = 1; rep <= s.repeats; rep++) {
    for (const e of active) {
      const r = await runOnce(e, s, messages);
      if (r.error) {
        e.errors.push(r.error);
        log(`run ${rep}/${s.repeats}  ${key(e).padEnd(28)} FAILED: ${r.error}`);
      } else {
        e.cpu.push(r.cpuUsPerMessage);
        e.rtt.push(r.roundTripUs);
        log(`run ${rep}/${s.repeats}  ${key(e).padEnd(28)} ${fmtUs1(r.cpuUsPerMessage).padStart(7)} µs CPU a message`);
      }
    }
  }
  for (const e of active) {
    if (e.cpu.length === 0) Object.assign(e, { status: 'failed', note: e.errors[0] });
    else e.status = 'ok';
  }
  const results = entries.map((e) => ({
    impl: e.impl,
    gapUs: e.gapUs,
    command: e.command,
    status: e.status,
    note: e.errors.length > 0 && e.status === 'ok' ? `${e.errors.length} runs failed: ${e.errors[0]}` : e.note,
    cpuUsSamples: e.cpu,
    cpuUs: e.cpu.length > 0 ? median(e.cpu) : null,
    cpuUsRange: e.cpu.length > 0 ? [Math.min(...e.cpu), Math.max(...e.cpu)] : null,
    roundTripUs: e.rtt.length > 0 ? median(e.rtt) : null,
  }));
  for (const e of results) {
    const nat = results.find((x) => x.impl === 'native' && x.gapUs === e.gapUs && x.status === 'ok');
    e.vsNative = e.status === 'ok' && nat ? e.cpuUs / nat.cpuUs : null;
  }
  printTable(
    [
      ['receiver', 'gap µs', 'CPU µs/msg', 'round trip µs', '× native CPU'],
      ...results
        .filter((e) => e.status === 'ok')
        .map((e) => [e.impl, String(e.gapUs), fmtUs1(e.cpuUs), fmtUs1(e.roundTripUs), fmtRatio(e.vsNative)]),
    ],
    1,
  );
  for (const e of results.filter((x) => x.status !== 'ok')) log(`${e.status}: ${key(e)} — ${e.note}`);
  log('');
  const meta = {
    ...s.machine,
    reproduce: 'BENCH_ONLY=wake node bench/run.js',
    compiler: build.ok ? build.compiler : null,
    messages,
    gaps,
    repeats: s.repeats,
    reported: 'median of the runs',
  };
  return { meta, results };
}

const row = (e) =>
  `| ${e.impl === 'pyre-nexus' ? '**pyre-nexus**' : e.impl} | ${fmtUs1(e.cpuUs)} | ` +
  `${fmtUs1(e.cpuUsRange[0])}–${fmtUs1(e.cpuUsRange[1])} | ${fmtUs1(e.roundTripUs)} | ${fmtRatio(e.vsNative)} |`;

/** The BENCHMARKS.md section for a { meta, results } from measure() (or from an earlier results.json). */
export function markdown({ meta, results }) {
  const ok = results.filter((e) => e.status === 'ok');
  const lines = [
    '## Waking up: the CPU a message costs a receiver that sleeps between messages',
    '',
    '![CPU per message, back to back and with pauses](bench/wake.svg)',
    '',
    `A native sender (\`bench/native/paced.c\`) sends ${fmtInt(meta.messages)} counted 64-byte frames (after a tenth ` +
      'as many uncounted) to a receiver that echoes them, one at a time; before each it busy-waits the gap, as a ' +
      "worker running a task keeps its CPU. It measures the receiver's CPU time, all its threads together " +
      '(`/proc/<pid>/task/*/schedstat`), over the counted messages. ' +
      `Each receiver is run ${meta.repeats}× (interleaved); the **median** is reported. Lower is better.`,
  ];
  for (const gap of meta.gaps) {
    const rows = ok.filter((e) => e.gapUs === gap).sort((a, b) => a.cpuUs - b.cpuUs);
    lines.push(
      '',
      `### ${gap === 0 ? 'Back to back' : `A pause of ${fmtInt(gap)} µs before each message`}`,
      '',
      '| Receiver | CPU µs per message | Fastest–slowest | Round trip (µs) | × native |',
      '|---|--:|--:|--:|--:|',
      ...rows.map(row),
    );
  }
  lines.push(
    '',
    '- **native**: `paced echo`, blocking `read` and `write` on the socket.',
    "- **node-net**: `bench/wake/net.js`, Node's `net.Socket` on the descriptor, writing back each chunk.",
    '- **pyre-nexus**: `bench/pingpong/nexus.js child socketpair`: the channel adopted from descriptor 3, a ' +
      '`Dispatcher`, `recvFrame` and `sendFrame` in the read handler.',
    '',
    machineLine(meta),
    '',
    `Reproduce: \`${meta.reproduce}\` (\`BENCH_WAKE_GAPS_US\` and \`BENCH_WAKE_MESSAGES\` set the pauses and the size).`,
  );
  return endReport(lines, results, (e) => `${e.impl}, gap ${e.gapUs} µs`);
}

export function chart({ meta, results }) {
  const ok = results.filter((e) => e.status === 'ok');
  return barChart({
    title: 'Waking up: CPU per 64-byte message at the receiver (lower is better)',
    subtitle: `${fmtInt(meta.messages)} messages, median of ${meta.repeats} · ${meta.cpu}, ${meta.cpus} CPUs · Node ${meta.node} · ${meta.date.slice(0, 10)}`,
    footer: "CPU: the receiver's threads on a CPU (schedstat), per message; × native: against the blocking C echo",
    groups: meta.gaps.map((gap) => ({
      heading: gap === 0 ? 'back to back' : `a pause of ${fmtInt(gap)} µs before each message`,
      bars: ok
        .filter((e) => e.gapUs === gap)
        .sort((a, b) => a.cpuUs - b.cpuUs)
        .map((e) => ({
          impl: e.impl,
          label: e.impl,
          value: e.cpuUs,
          text: `${fmtUs1(e.cpuUs)} µs${e.vsNative === null ? '' : ` · ${fmtRatio(e.vsNative)} native`}`,
        })),
    })),
  });
}
