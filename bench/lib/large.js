// Large messages: 1 MiB payloads ping-ponged between two processes, framed as usual (a 4-byte
// little-endian length + payload), reported as bytes per second. The same programs as the
// ping-pong benchmark (bench/lib/pingpong.js, whose contract they follow), given the payload size
// in $BENCH_PAYLOAD; they then add "payloadBytes" to their JSON line, which is checked here.
//
// Environment (besides the harness's own, see bench/run.js):
//   BENCH_LARGE_PAYLOAD     payload bytes per message (default 1048576)
//   BENCH_LARGE_ROUNDTRIPS  counted round trips per run (default 1000)
//   BENCH_LARGE_WARMUP      uncounted warm-up round trips first (default 5% of the above)
import { envInt } from '../peers/common.js';
import { NATIVE_BIN, roundTripEntries, roundTripRecord, runRoundTrips } from './pingpong.js';
import { barChart, endReport, fmtInt, fmtRatio, fmtUs, log, machineLine, printTable, summarise } from './report.js';

const TARGET = 0.8; // issue 5: pyre-nexus >= 0.8x native bytes/s

// biome-ignore format: keep one line per implementation
const IMPLEMENTATIONS = [
	{ impl: "native", transport: "socketpair", command: [NATIVE_BIN, "socketpair"] },
	{ impl: "pyre-nexus", transport: "socketpair", command: ["node", "bench/pingpong/nexus.js", "socketpair"] },
	{ impl: "pyre-nexus-into", transport: "socketpair", command: ["node", "bench/pingpong/nexus.js", "socketpair"], env: { BENCH_INTO: "1" } },
	{ impl: "node-net", transport: "unix", command: ["node", "bench/peers/net.js", "unix"] },
	{ impl: "child_process-ipc-advanced", transport: "ipc", command: ["node", "bench/peers/ipc.js", "advanced"] },
];

const key = (e) => `large/${e.impl}/${e.transport}`;
const fmtGBs = (bytesPerSec) => (bytesPerSec / 1e9).toFixed(2);
const fmtSize = (n) =>
  n % 1048576 === 0 ? `${n / 1048576} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${fmtInt(n)} bytes`;

function settingsOf(s) {
  const roundTrips = envInt('BENCH_LARGE_ROUNDTRIPS', 1000);
  return {
    payload: Math.max(4, envInt('BENCH_LARGE_PAYLOAD', 1048576)),
    roundTrips: Math.max(1, roundTrips),
    warmup: envInt('BENCH_LARGE_WARMUP', Math.ceil(roundTrips * 0.05)),
    repeats: s.repeats,
  };
}

/** Runs the selected implementations; returns { meta, results }, or null when none was selected. */
export async function measure(s) {
  const prepared = roundTripEntries(IMPLEMENTATIONS, s, key);
  if (prepared === null) return null;
  const { entries, native } = prepared;
  const l = settingsOf(s);
  const active = entries.filter((e) => e.status === 'pending');
  log(
    `large messages: ${fmtSize(l.payload)} payloads, ${fmtInt(l.roundTrips)} round trips (+${fmtInt(l.warmup)} ` +
      `warm-up) × ${l.repeats} runs, ${active.length} implementations, ${s.machine.cpus} CPUs`,
  );
  const bytesPerRoundTrip = 2 * l.payload; // the payload goes there and back
  for (let rep = 1; rep <= l.repeats; rep++) {
    for (const e of active) {
      const r = await runRoundTrips(e, s, l);
      if (r.error) {
        e.errors.push(r.error);
        log(`run ${rep}/${l.repeats}  ${key(e).padEnd(44)} FAILED: ${r.error}`);
      } else {
        e.samples.push(r.seconds);
        const gbs = fmtGBs((bytesPerRoundTrip * l.roundTrips) / r.seconds);
        log(`run ${rep}/${l.repeats}  ${key(e).padEnd(44)} ${gbs.padStart(6)} GB/s`);
      }
    }
  }

  for (const e of active) summarise(e, l.roundTrips, l.repeats);
  const ok = entries.filter((e) => e.status === 'ok');
  const nat = ok.find((e) => e.impl === 'native');
  for (const e of ok) {
    e.bytesPerSec = e.roundTripsPerSec * bytesPerRoundTrip;
    e.medianBytesPerSec = e.medianRoundTripsPerSec * bytesPerRoundTrip;
    e.vsNative = nat ? e.roundTripsPerSec / nat.roundTripsPerSec : null;
    e.medianVsNative = nat ? e.medianRoundTripsPerSec / nat.medianRoundTripsPerSec : null;
  }
  ok.sort((a, b) => b.bytesPerSec - a.bytesPerSec);

  const meta = {
    ...s.machine,
    reproduce: 'BENCH_ONLY=large node bench/run.js',
    compiler: native?.ok ? native.compiler : null,
    payloadBytes: l.payload,
    roundTrips: l.roundTrips,
    warmup: l.warmup,
    repeats: l.repeats,
    target: TARGET,
    reported: 'best of the runs (highest bytes/s); median kept alongside',
    bytesCounted: 'payload bytes both ways: 2 × payload per round trip (frame headers not counted)',
  };
  const results = [...ok, ...entries.filter((e) => e.status !== 'ok')].map((e) => ({
    ...roundTripRecord(e),
    bytesPerSec: e.bytesPerSec ?? null,
    medianBytesPerSec: e.medianBytesPerSec ?? null,
    vsNative: e.vsNative ?? null,
    medianVsNative: e.medianVsNative ?? null,
  }));

  printTable(
    [
      ['impl', 'transport', 'GB/s (best)', 'GB/s (median)', 'rt/s', 'µs/rt', '× native'],
      ...ok.map((e) => [
        e.impl,
        e.transport,
        fmtGBs(e.bytesPerSec),
        fmtGBs(e.medianBytesPerSec),
        fmtInt(e.roundTripsPerSec),
        fmtUs(e.bestSeconds / l.roundTrips),
        fmtRatio(e.vsNative),
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
  const size = fmtSize(meta.payloadBytes);
  const nexus = ok.find((e) => e.impl === 'pyre-nexus');
  const into = ok.find((e) => e.impl === 'pyre-nexus-into');
  const target = (label, e) =>
    e
      ? `| ${label} ≥ ${TARGET}× native bytes/s | ${fmtRatio(e.vsNative)} (medians ${fmtRatio(e.medianVsNative)}) | ` +
        `**${e.vsNative >= TARGET ? 'met' : 'not met'}** |`
      : `| ${label} ≥ ${TARGET}× native bytes/s | — | not measured |`;
  const lines = [
    `## Large messages: ${size} round trips between two processes`,
    '',
    '![large messages, bytes per second](bench/large.svg)',
    '',
    `${fmtInt(meta.roundTrips)} round trips of a ${size} payload per run after ${fmtInt(meta.warmup)} uncounted ` +
      `warm-up round trips; each implementation run ${meta.repeats}× (interleaved), the **best** run is reported ` +
      'and the median shown next to it. One process sends a framed message, the other echoes it whole, the next ' +
      'one leaves when the echo is back. **Bytes/s** counts the payload both ways (2 × payload per round trip; ' +
      'GB = 10⁹ bytes). Higher is better.',
    '',
    '| Implementation | Transport | GB/s (best) | Median | Round trips/s | µs / round trip | × native | × native (medians) |',
    '|---|---|--:|--:|--:|--:|--:|--:|',
    ...ok.map(
      (e) =>
        `| ${e.impl.startsWith('pyre-nexus') ? `**${e.impl}**` : e.impl} | ${e.transport} | ${fmtGBs(e.bytesPerSec)} | ` +
        `${fmtGBs(e.medianBytesPerSec)} | ${fmtInt(e.roundTripsPerSec)} | ${fmtUs(e.bestSeconds / meta.roundTrips)} | ` +
        `${fmtRatio(e.vsNative)} | ${fmtRatio(e.medianVsNative)} |`,
    ),
    '',
    '| Target (issue 5) | Measured | |',
    '|---|--:|---|',
    target('pyre-nexus, `recvFrame`', nexus),
    target('pyre-nexus, `recvFrameInto`', into),
    '',
    '- **native**: `bench/native/pingpong.c` with `BENCH_PAYLOAD`: blocking `write` of the whole frame, ' +
      'buffered `read`s into one buffer; the echo side writes each frame back from that buffer, no copy.',
    '- **pyre-nexus**: `bench/pingpong/nexus.js` with `BENCH_PAYLOAD`: `sendFrame` / `recvFrame` on a `pipe()` ' +
      'socket pair, each side in a `Dispatcher`; the default channel settings (output bound 1 MiB, ' +
      'largest frame 64 MiB). Each received frame is a Buffer of its own. **pyre-nexus-into** is the same ' +
      'with `BENCH_INTO=1`: each side receives with `recvFrameInto` into one buffer of its own, reused for every ' +
      'frame, as the native program does: nothing for the collector, and most of each frame read straight into that buffer.',
    "- **node-net**: `bench/peers/net.js unix`, Node's `net` over a Unix-domain socket, same framing, the " +
      'chunks of a frame joined once it is whole.',
    "- **child_process-ipc-advanced**: `bench/peers/ipc.js advanced`, `fork` IPC with `serialization: 'advanced'`, " +
      `a ${size} Buffer each way.`,
    '',
    machineLine(meta),
    '',
    `Reproduce: \`${meta.reproduce}\` (\`BENCH_LARGE_PAYLOAD\` and \`BENCH_LARGE_ROUNDTRIPS\` set the size, ` +
      '`BENCH_REPEATS` the runs).',
  ];
  return endReport(lines, results, (e) => `${e.impl} / ${e.transport}`);
}

export function chart({ meta, results }) {
  const ok = results.filter((e) => e.status === 'ok');
  return barChart({
    title: `Large messages: ${fmtSize(meta.payloadBytes)} round trips, bytes per second (higher is better)`,
    subtitle: `${fmtInt(meta.roundTrips)} round trips, best of ${meta.repeats}, payload counted both ways · ${meta.cpu}, ${meta.cpus} CPUs · Node ${meta.node} · ${meta.date.slice(0, 10)}`,
    footer: `× native: vs the native C program over a socketpair; issue 5 target for pyre-nexus: ≥ ${TARGET}×`,
    groups: [
      {
        bars: ok.map((e) => ({
          impl: e.impl,
          label: `${e.impl} · ${e.transport}`,
          value: e.bytesPerSec,
          text: `${fmtGBs(e.bytesPerSec)} GB/s${e.vsNative === null ? '' : ` · ${fmtRatio(e.vsNative)} native`}`,
        })),
      },
    ],
  });
}
