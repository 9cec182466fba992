// One measurement of the pool benchmark: one contender, one scenario, in a process of its own.
//
//   node bench/pool/driver.js <contender> <scenario> <workers> <tasks> <taskMs> [<trivialFirst>]
//
// Scenarios (the pool is created once, warmed up except for start-up, and closed at the end):
//   trivial-all  <tasks> trivial tasks submitted at once
//   trivial-seq  <tasks> trivial tasks one at a time, each awaited before the next
//   cpu-all      <tasks> tasks of <taskMs> ms of CPU each, submitted at once
//   cpu-seq      the same, one at a time
//   startup      from creating the pool to the first result, with <workers> tasks submitted at
//                once so that every pool brings up all its workers (no warm-up: that is the point);
//                contender 'node-e0' instead spawns <workers> bare `node -e 0` and waits for the
//                first exit
//   burst        a fresh pool runs <trivialFirst> trivial tasks at once (its warm-up, as in
//                trivial-all), then <tasks> tasks of <taskMs> ms of CPU each are submitted one by
//                one in a synchronous loop (run() per task, all awaited together): the pool deals
//                a burst after it has learned from trivial tasks
//   team         <trivialFirst> trivial tasks at once, then more until every member is up (see
//                members() in contenders.js) and a pause of SETTLE_MS; then <tasks> tasks that
//                each sleep <taskMs> ms on a timer, submitted one by one as in burst. Also
//                reports "peak": the most tasks running at once, from the start and end each
//                task returns
// Every result is checked. Prints one JSON line on stdout: {"contender","scenario","seconds",…}
// with "seconds" the wall time measured; exits non-zero, saying why on stderr, otherwise.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CONTENDERS } from './contenders.js';

const [contender, scenario, workersArg, tasksArg, msArg, trivialArg] = process.argv.slice(2);
const workers = Number(workersArg);
const count = Number(tasksArg);
const taskMs = Number(msArg);
const trivialFirst = Number(trivialArg ?? workers);
const range = (n) => Array.from({ length: n }, (_, i) => i);
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** team: the pause between the warm-up and the timed tasks, for threads still starting. */
const SETTLE_MS = 250;

function fail(message) {
  process.stderr.write(`pool/driver.js ${contender} ${scenario}: ${message}\n`);
  process.exit(2);
}

function check(what, got, expected) {
  if (got !== expected) fail(`${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
}

function checkAll(results, expected) {
  check('number of results', results.length, expected.length);
  for (const [i, r] of results.entries()) check(`result ${i}`, r, expected[i]);
}

async function startupOfNode() {
  const started = performance.now();
  const exits = range(workers).map(() => once(spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }), 'exit'));
  await Promise.race(exits);
  const first = performance.now();
  for (const [code] of await Promise.all(exits)) check('exit status of node -e 0', code, 0);
  return { seconds: (first - started) / 1000, allSeconds: (performance.now() - started) / 1000 };
}

/** The most intervals of `spans` ([start, end] each) that overlap at one time. */
function peakOverlap(spans) {
  const edges = spans.flatMap(([start, end]) => [
    [start, 1],
    [end, -1],
  ]);
  // At equal times an end comes first: a task that starts as another ends did not overlap it.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let peak = 0;
  for (const [, step] of edges) {
    now += step;
    peak = Math.max(peak, now);
  }
  return peak;
}

/** burst and team: warm-up, then `count` tasks of `kind` submitted one by one, timed. */
async function measureBurst(create) {
  const pool = create(workers);
  const trivial = range(trivialFirst);
  checkAll(await pool.all('trivial', trivial), trivial);
  const kind = scenario === 'burst' ? 'spin' : 'sleep';
  if (kind === 'sleep') {
    const by = performance.now() + 10_000;
    while (pool.members !== undefined && pool.members() < workers) {
      if (performance.now() > by) fail(`only ${pool.members()} of ${workers} members up after 10 s`);
      checkAll(await pool.all('trivial', range(workers)), range(workers));
      await delay(10);
    }
    await delay(SETTLE_MS);
  }

  const started = performance.now();
  const results = await Promise.all(range(count).map(() => pool.run(kind, taskMs)));
  const seconds = (performance.now() - started) / 1000;
  check('number of results', results.length, count);
  let peak;
  if (kind === 'spin') {
    const expected = results.map(() => taskMs);
    checkAll(results, expected);
  } else {
    for (const [i, r] of results.entries()) {
      const ok = Array.isArray(r) && r.length === 2 && r.every(Number.isFinite) && r[1] - r[0] >= taskMs - 1;
      if (!ok) fail(`result ${i}: got ${JSON.stringify(r)}, expected [start, end] at least ${taskMs} ms apart`);
    }
    peak = peakOverlap(results);
  }
  const closing = performance.now();
  await pool.close();
  return { seconds, closeSeconds: (performance.now() - closing) / 1000, ...(peak === undefined ? {} : { peak }) };
}

async function measure(create) {
  if (scenario === 'burst' || scenario === 'team') return measureBurst(create);
  if (scenario === 'startup') {
    const started = performance.now();
    const pool = create(workers);
    const runs = range(workers).map((i) => pool.run('trivial', i));
    await Promise.race(runs);
    const first = performance.now();
    checkAll(await Promise.all(runs), range(workers));
    const all = performance.now();
    await pool.close();
    return { seconds: (first - started) / 1000, allSeconds: (all - started) / 1000 };
  }
  const pool = create(workers);
  const cpu = scenario.startsWith('cpu');
  const kind = cpu ? 'spin' : 'trivial';
  const args = cpu ? range(count).map(() => taskMs) : range(count);
  const all = scenario.endsWith('-all');
  const oneByOne = async (kind, args) => {
    const results = [];
    for (const arg of args) results.push(await pool.run(kind, arg));
    return results;
  };
  // Warm-up, until the timings settle (JIT, heap sizes): a trivial scenario is run once in full
  // first; a CPU-bound one first runs trivial tasks both ways, then a few of its own tasks.
  if (!cpu) checkAll(await (all ? pool.all(kind, args) : oneByOne(kind, args)), args);
  else {
    const trivial = range(2000);
    checkAll(await pool.all('trivial', trivial), trivial);
    checkAll(await oneByOne('trivial', trivial.slice(0, 200)), trivial.slice(0, 200));
    const few = range(2 * workers).map(() => taskMs);
    checkAll(await pool.all(kind, few), few);
    checkAll(await oneByOne(kind, few), few);
  }

  const started = performance.now();
  const results = await (all ? pool.all(kind, args) : oneByOne(kind, args));
  const seconds = (performance.now() - started) / 1000;
  checkAll(results, args);
  const closing = performance.now();
  await pool.close();
  return { seconds, closeSeconds: (performance.now() - closing) / 1000 };
}

if (!['trivial-all', 'trivial-seq', 'cpu-all', 'cpu-seq', 'startup', 'burst', 'team'].includes(scenario)) {
  fail('unknown scenario');
}
if (!(workers >= 1 && count >= 1 && taskMs >= 0 && Number.isInteger(trivialFirst) && trivialFirst >= 1)) {
  fail('bad <workers> <tasks> <taskMs> <trivialFirst>');
}
let measured;
if (contender === 'node-e0' && scenario === 'startup') measured = await startupOfNode();
else if (Object.hasOwn(CONTENDERS, contender)) measured = await measure(await CONTENDERS[contender]());
else fail('unknown contender');
process.stdout.write(`${JSON.stringify({ contender, scenario, workers, tasks: count, ...measured })}\n`);
// A pool that is closed should let the process end; say so if something still holds it open.
setTimeout(() => {
  const handles = process.getActiveResourcesInfo().join(', ');
  fail(`the process is still alive 5 s after the pool was closed (active: ${handles})`);
}, 5000).unref();
