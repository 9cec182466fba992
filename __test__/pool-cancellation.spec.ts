import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Pool, type Task, TaskTimeoutError } from '../dist/index.js';
import { Chancy, FileGated, Hang, Square, Whoami } from './fixtures/tasks.js';
import { executions, logFile, reaped } from './pool-helpers.js';

// Pool: stopping tasks before they end: timeouts, abort signals, and listeners that cancel.

test('a task that hangs is timed out and its worker replaced', async (t) => {
  // A generous pool-wide limit, and a short one for the task that hangs.
  const the = new Pool({ size: 1, timeout: 30 });
  t.teardown(() => the.close({ force: true }));
  const hung = await the.submit(new Whoami());
  const error = await t.throwsAsync(the.submit(new Hang(), { timeout: 1 }), { instanceOf: TaskTimeoutError });
  t.regex(error?.message ?? '', /ran longer than its timeout of 1 s; crew member \d+ was replaced/);
  const next = await the.submit(new Whoami());
  t.not(next, hung, 'a new worker runs the next task');
  await the.close();
  t.true(reaped(hung));
});

test("a task module's import does not count against the task's timeout, however long it takes", async (t) => {
  const the = new Pool({ size: 1 });
  t.teardown(() => the.close({ force: true }));
  const slow = new URL('./fixtures/slow-import.js', import.meta.url).href;
  const { SlowToImport } = (await import(slow)) as { SlowToImport: new () => Task<string> };
  t.is(await the.submit(new SlowToImport(), { timeout: 1 }), 'ran', 'a 1.5 s import, a 1 s timeout');
  t.is(the.counts.aborted, 0);
  await the.close();
});

test('seconds far beyond any alarm (timeout, startTimeout, linger) are taken as they are', async (t) => {
  // A dispatcher's alarm takes less than 1e9 s: the pool's own alarms ring at most a day ahead
  // and are armed again, rather than handing such a deadline to the dispatcher as it is.
  const the = new Pool({ size: 1, timeout: 1e12, startTimeout: 1e12, linger: 1e12 });
  t.is(await the.submit(new Square(3)), 9);
  t.is(await the.submit(new Square(4), { timeout: 1e10 }), 16);
  await the.close();
});

test('cancellation: a queued task is dropped, a running one stops its worker, a workplan stops reading', async (t) => {
  const the = new Pool({ size: 1 });
  t.teardown(() => the.close({ force: true }));
  const running = new AbortController();
  const hang = the.submit(new Hang(), { signal: running.signal });
  const queued = new AbortController();
  const waiting = the.submit(new Square(2), { signal: queued.signal });
  queued.abort();
  const reason = await waiting.then(
    () => null,
    (error: unknown) => error as DOMException,
  );
  t.is(reason?.name, 'AbortError');
  const started = await new Promise<number>((resolve) => the.once('started', () => resolve(the.counts.running)));
  t.is(started, 1);
  running.abort(new Error('enough'));
  await t.throwsAsync(hang, { message: 'enough' });
  t.is(await the.submit(new Square(3)), 9, 'the pool goes on with a new worker');

  // A signal aborted before the task is submitted: the promise still settles, with its reason.
  const early = the.submit(new Square(4), { signal: AbortSignal.abort(new Error('too late')) });
  await t.throwsAsync(early, { message: 'too late' });
  await t.throwsAsync(the.submit(new Square(4), { timeout: -1 }), {
    message: /submit: option "timeout" must be a non-negative/,
  });
  t.throws(() => the.assemble([], { signal: 'stop' as never }), {
    message: /assemble: option "signal" must be an AbortSignal/,
  });

  const stop = new AbortController();
  let read = 0;
  function* endless() {
    for (;;) {
      read++;
      yield new Square(read);
    }
  }
  const plan = the.assemble(endless(), { signal: stop.signal });
  let outcomes = 0;
  for await (const _ of plan) {
    if (++outcomes === 100) stop.abort();
  }
  const report = await plan;
  t.true(report.completed >= 100);
  t.true(read <= report.outcomes.length + 1, 'nothing read after the abort, beyond the task in hand');
  await the.close();
});

test('aborting one workplan cancels its own tasks only', async (t) => {
  const the = new Pool({ size: 2 });
  t.teardown(() => the.close({ force: true }));
  const stop = new AbortController();
  const squares = (n: number) => Array.from({ length: n }, (_, i) => new Square(i));
  const aborted = the.assemble(squares(2000), { signal: stop.signal });
  const kept = the.assemble(squares(2000));
  // Aborted while both workplans have tasks at the members: the running ones of the first cost
  // their members, and the second's tasks queued behind them go to the new ones.
  let seen = 0;
  for await (const _ of aborted) if (++seen === 10) stop.abort(new Error('stop the first'));
  const [first, second] = await Promise.all([aborted, kept]);
  t.true(first.aborted > 0, 'the aborted workplan lost tasks');
  t.is(second.completed, 2000, 'the other workplan ran every task');
  t.is(second.aborted, 0);
  t.deepEqual(
    second.outcomes.map((o) => o.result),
    squares(2000).map((_, i) => i * i),
  );
});

test("a 'failed' listener that cancels the failed task leaves the tasks behind it alone", async (t) => {
  const the = new Pool({ size: 1 });
  t.teardown(() => the.close({ force: true }));
  const stop = new AbortController();
  the.on('failed', () => stop.abort(new Error('no retries, thanks')));
  const failing = the.submit(new Chancy(1, 'recoverable', ''), { signal: stop.signal });
  const behind = the.submit(new Square(4));
  await t.throwsAsync(failing, { message: 'no retries, thanks' });
  t.is(await behind, 16, 'the task sent behind it still reports');
  t.like(the.counts, { queued: 0, running: 0, aborted: 1, completed: 1 });
  await the.close();
});

test('a task cancelled while it waits behind a running one never runs, and the next task is still timed', async (t) => {
  const log = await logFile();
  const dir = await mkdtemp(join(tmpdir(), 'nexus-cancel-'));
  const gate = join(dir, 'gate');
  const the = new Pool({ size: 1, pipeline: 4 });
  await Promise.all([the.submit(new FileGated(join(dir, 'open'), 0)), writeFile(join(dir, 'open'), '')]);
  await the.submit(new Chancy(0, 'ok', log)); // both classes imported
  const running = the.submit(new FileGated(gate, 1));
  const cancel = new AbortController();
  const waiting = the.submit(new Chancy(1, 'ok', log), { signal: cancel.signal });
  await once(the, 'started'); // dealt behind the running one
  cancel.abort(new Error('not wanted'));
  await t.throwsAsync(waiting, { message: 'not wanted' });
  await writeFile(gate, '');
  t.is(await running, 1);
  // A task that hangs after it is still timed out: the member's deadlines were not lost.
  await t.throwsAsync(the.submit(new Hang(), { timeout: 0.3 }), { code: 'ERR_NEXUS_TASK_TIMEOUT' });
  await the.close();
  t.deepEqual([...(await executions(log)).keys()], [0], 'the cancelled task never ran');
  await rm(dir, { recursive: true });
});

test('a finished task whose report its member held back is not timed out for the long task after it', async (t) => {
  // A member sends reports several to a frame: a short task's report can wait while the member
  // runs a long task it began after it. That long task is not the short one overrunning.
  const the = new Pool({ size: 1, retries: 0 });
  await the.submit(new Whoami(0));
  const [first, second, long] = await Promise.all([
    the.submit(new Whoami(0), { timeout: 1 }),
    the.submit(new Whoami(0), { timeout: 1 }),
    the.submit(new Whoami(2000), { timeout: 30 }),
  ]);
  t.true(first === second && second === long, 'all three completed, on the one member');
  await the.close();
});
