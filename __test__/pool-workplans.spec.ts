import test from 'ava';
import { Pool, TaskStatus } from '../dist/index.js';
import { Hang, Square } from './fixtures/tasks.js';

// Pool: how assemble() reads its workplans: lazily, under the pending bound, streaming without keep,
// and no further once a workplan aborts itself or the pool closes.

test('a workplan is read lazily, under the pending bound', async (t) => {
  const the = new Pool({ size: 2, pending: 16 });
  let read = 0;
  let settled = 0;
  let most = 0;
  async function* workplan() {
    for (let i = 0; i < 500; i++) {
      read++;
      most = Math.max(most, read - settled);
      yield new Square(i);
    }
  }
  the.on('completed', () => settled++);
  const report = await the.assemble(workplan());
  t.is(report.completed, 500);
  t.true(most <= 17, `at most 16 pending tasks (+1 being read), saw ${most}`);
  await the.close();
});

test('an array workplan is read as its iterator reads it: lazily, and with what is added to it meanwhile', async (t) => {
  const the = new Pool({ size: 2, pending: 16 });
  const workplan = Array.from({ length: 100 }, (_, i) => new Square(i));
  let most = 0;
  the.on('queued', () => {
    most = Math.max(most, the.counts.queued + the.counts.running);
  });
  const plan = the.assemble(workplan);
  workplan.push(new Square(100)); // read later, as an array iterator would
  const report = await plan;
  t.deepEqual(
    report.outcomes.map((o) => o.result),
    Array.from({ length: 101 }, (_, i) => i * i),
  );
  t.true(most <= 16, `at most 16 tasks read ahead, saw ${most}`);
  await the.close();
});

test('without keep, a workplan streams: its report has counts only, and a slow reader holds it back', async (t) => {
  const the = new Pool({ size: 2, pending: 32 });
  let read = 0;
  let taken = 0;
  let most = 0;
  function* workplan() {
    for (let i = 0; i < 2000; i++) {
      read++;
      most = Math.max(most, read - taken);
      yield new Square(i);
    }
  }
  const plan = the.assemble(workplan(), { keep: false });
  let sum = 0;
  for await (const outcome of plan) {
    taken++;
    sum += outcome.result ?? 0;
    if (taken % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const report = await plan;
  t.is(taken, 2000);
  t.is(sum, (1999 * 2000 * 3999) / 6);
  t.deepEqual([report.completed, report.aborted, report.outcomes.length], [2000, 0, 0]);
  t.true(most <= 33, `at most 32 tasks read ahead of the reader (+1 being read), saw ${most}`);
  await the.close();
});

test('a workplan that aborts itself as it is read is read no further', async (t) => {
  const the = new Pool({ size: 1 });
  t.teardown(() => the.close({ force: true }));
  const stop = new AbortController();
  let read = 0;
  function* workplan() {
    for (let i = 0; i < 100; i++) {
      read++;
      if (i === 3) stop.abort(new Error('enough'));
      yield new Square(i);
    }
  }
  const report = await the.assemble(workplan(), { signal: stop.signal });
  t.is(read, 4, 'nothing read after the abort');
  t.deepEqual(
    report.outcomes.map((o) => o.status),
    [TaskStatus.aborted, TaskStatus.aborted, TaskStatus.aborted],
    'the tasks read before it were cancelled; the one in hand was not queued',
  );
  t.like(the.counts, { queued: 0, running: 0 });
  await the.close();
});

test('a task whose state, as it is read, aborts its own workplan leaves the pool consistent', async (t) => {
  const the = new Pool({ size: 1 });
  t.teardown(() => the.close({ force: true }));
  const queued: unknown[] = [];
  the.on('queued', (outcome) => queued.push(outcome.task));
  const aborting = (stop: AbortController) => ({
    enumerable: true,
    get: () => {
      stop.abort(new Error('read, and stopped'));
      return 1;
    },
  });
  // A getter of the task runs as it is queued: the task before it is cancelled, the one after
  // is never read, and the task itself is never queued.
  const first = new AbortController();
  const own = Object.defineProperty(new Square(5), 'trigger', aborting(first));
  let read = 0;
  function* early() {
    for (const task of [new Square(1), own, new Square(2)]) {
      read++;
      yield task;
    }
  }
  const report = await the.assemble(early(), { signal: first.signal });
  t.deepEqual(
    report.outcomes.map((o) => o.status),
    [TaskStatus.aborted, TaskStatus.aborted],
  );
  t.is(read, 2, 'nothing read after the abort');
  t.false(queued.includes(own), 'the task that aborted was never queued');
  t.like(the.counts, { queued: 0, running: 0 });
  // A getter of a value of its fields runs as its frame is encoded, with the whole batch in
  // hand: none of it may reach the member (each task would hang it).
  const second = new AbortController();
  const nested = Object.assign(new Hang(), { trigger: Object.defineProperty({}, 'x', aborting(second)) });
  const late = await the.assemble([new Hang(), nested, new Hang()], { signal: second.signal });
  t.is(late.aborted, 3);
  t.like(the.counts, { queued: 0, running: 0 }, 'no task counted twice or left running');
  t.is(await the.submit(new Square(3), { timeout: 5 }), 9, 'the member runs the next task at once');
  await the.close();
});

test('closing the pool stops reading its workplans', async (t) => {
  const the = new Pool({ size: 1, pending: 8 });
  let read = 0;
  function* endless() {
    for (;;) {
      read++;
      yield new Square(read % 10);
    }
  }
  const plan = the.assemble(endless());
  await new Promise((resolve) => the.once('completed', resolve));
  await the.close();
  const error = await t.throwsAsync(plan.report, { code: 'ERR_NEXUS_WORKPLAN' });
  t.regex(error?.message ?? '', /the pool is closed/);
  const report = (error as Error & { report: { completed: number } }).report;
  t.is(report.completed, read - 1, 'every task read but the one in hand ran; nothing was read after');
});

test('a workplan is a promise of its report: catch and finally work on it', async (t) => {
  const the = new Pool({ size: 1 });
  let finished = false;
  const report = await the.assemble([new Square(3)]).finally(() => {
    finished = true;
  });
  t.true(finished);
  t.is(report.outcomes[0]?.result, 9);
  t.is(String(the.assemble([])), '[object Workplan]');
  const broken = (function* () {
    yield new Square(2);
    throw new Error('the plan broke');
  })();
  const caught = await the.assemble(broken).catch((error: unknown) => (error as Error).message);
  t.regex(String(caught), /the workplan could not be read: the plan broke/);
  await the.close();
});
