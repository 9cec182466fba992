// One measurement of the pool benchmark: one contender, one scenario, in a process of its own.
//
//   node bench/pool/driver.js <contender> <scenario> <workers> <tasks> <taskMs>
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
// Every result is checked. Prints one JSON line on stdout: {"contender","scenario","seconds",…}
// with "seconds" the wall time measured; exits non-zero, saying why on stderr, otherwise.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CONTENDERS } from './contenders.js';

const [contender, scenario, workersArg, tasksArg, msArg] = process.argv.slice(2);
const workers = Number(workersArg);
const count = Number(tasksArg);
const taskMs = Number(msArg);
const range = (n) => Array.from({ length: n }, (_, i) => i);

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

async function measure(create) {
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

if (!['trivial-all', 'trivial-seq', 'cpu-all', 'cpu-seq', 'startup'].includes(scenario)) fail('unknown scenario');
if (!(workers >= 1 && count >= 1 && taskMs >= 0)) fail('bad <workers> <tasks> <taskMs>');
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
