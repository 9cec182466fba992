import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  Dispatcher,
  HybridMarshaler,
  Member,
  NOTHING,
  type Outcome,
  Pool,
  pipe,
  type Recruiter,
  TaskStatus,
  type Team,
  Threads,
  WorkerLostError,
} from '../dist/index.js';
import { READY, REPORTS, TASKS } from '../dist/nexus/crew/protocol.js';
import { Chancy, Crash, FileGated, Garbage, ShellGated, Square, SquareOrCrash } from './fixtures/tasks.js';
import { dismissInThisThread, executions, logFile, reaped } from './pool-helpers.js';

// Pool: attempts and crashes: crashes charged to the right task, retries, members killed or lost,
// malformed reports and garbage, and a dispatcher stopped on an error.

test('a crash is charged to the task that caused it and to finished tasks whose reports it lost, never to tasks it had not begun', async (t) => {
  // A member holds finished reports back for up to a millisecond while it has more to run, so
  // when it dies, tasks it finished may have gone unreported: they ran, and with no retries they
  // must not run again. The begun word tells the team which task was running and which it had
  // not begun yet. The warm-up loads the class (the crash then runs at once, with no import
  // first) and deepens the pipeline.
  const the = new Pool({ size: 1, retries: 0 });
  const warm = Array.from({ length: 200 }, (_, i) => new SquareOrCrash(i));
  t.deepEqual(
    (await the.assemble(warm)).outcomes.map((o) => o.result),
    warm.map((task) => task.n * task.n),
  );
  const plan = [1, 2, 3, 4, 0, 5].map((n) => new SquareOrCrash(n, n === 0));
  const { outcomes } = await the.assemble(plan);
  for (const outcome of outcomes.slice(0, 4)) {
    t.is(outcome.attempts, 1, 'ran once, and never again');
    if (outcome.status === TaskStatus.completed) t.is(outcome.result, (outcome.index + 1) ** 2);
    else
      t.regex(outcome.error?.message ?? '', /ended before it reported task #\d+ \(SquareOrCrash\), 1 time: given up/);
  }
  t.like(outcomes[4], { status: TaskStatus.aborted, attempts: 1 });
  t.true(outcomes[4]?.error instanceof WorkerLostError);
  t.regex(outcomes[4]?.error?.message ?? '', /ended while running task #4 \(SquareOrCrash\), 1 time: given up/);
  t.like(outcomes[5], { status: TaskStatus.completed, result: 25, attempts: 1 }, 'not begun: run elsewhere, uncharged');
  await the.close();
});

test('a worker that crashes is replaced; its task runs elsewhere, then gives up past the retries', async (t) => {
  const the = new Pool({ size: 2, retries: 2 });
  const pids = new Set<number>();
  the.on('recruited', (member) => pids.add(member.id));
  const report = await the.assemble([new Crash(), ...Array.from({ length: 50 }, (_, i) => new Square(i))]);
  const crashed = report.outcomes[0] as Outcome;
  t.like(crashed, { status: TaskStatus.aborted, attempts: 3 });
  t.true(crashed.error instanceof WorkerLostError);
  t.regex(crashed.error?.message ?? '', /ended while running task #0 \(Crash\), 3 times/);
  t.deepEqual(
    report.outcomes.slice(1).map((o) => o.result),
    Array.from({ length: 50 }, (_, i) => i * i),
  );
  t.true(pids.size >= 3, 'a crashed member was replaced while work remained');
  await the.close();
  for (const pid of pids) t.true(reaped(pid), `worker ${pid} reaped`);
});

test('a member that dies with tasks unread in its socket ended; it did not break the protocol', async (t) => {
  // Its team then reads a connection reset instead of an end of file.
  const hybrid = new HybridMarshaler();
  const memberSide = new Dispatcher();
  class DiesUnread implements Recruiter {
    recruit(team: Team) {
      return Array.from({ length: team.vacancies() }, () => this.deploy());
    }
    deploy() {
      const [ours, theirs] = pipe();
      let exited: { code: number } | null = null;
      hybrid.send([READY, 7], theirs);
      memberSide.whenReadReady(theirs, (ch) => {
        ch.abort(); // dies as its tasks arrive, without reading them
        exited = { code: 1 };
        return false;
      });
      void memberSide.watch();
      return new Member(7, ours, { kill: () => theirs.abort(), exited: () => exited });
    }
    dismiss = dismissInThisThread;
  }
  const the = new Pool({ size: 1, retries: 0, recruiter: new DiesUnread() });
  const error = await t.throwsAsync(the.submit(new Square(3)), { instanceOf: WorkerLostError });
  t.regex(error?.message ?? '', /crew member 7 ended while running task Square, 1 time: given up/);
  await the.close();
});

/** Members that answer each task with the next of `replies` (one reply a member, in turn). */
class Answering implements Recruiter {
  readonly hybrid = new HybridMarshaler();
  readonly memberSide = new Dispatcher();
  #deployed = 0;
  constructor(readonly replies: ((id: number) => unknown)[]) {}
  recruit(team: Team) {
    return Array.from({ length: team.vacancies() }, () => this.deploy());
  }
  deploy() {
    const { hybrid, memberSide } = this;
    const reply = this.replies[this.#deployed++ % this.replies.length] as (id: number) => unknown;
    const [ours, theirs] = pipe();
    let exited: { code: number } | null = null;
    hybrid.send([READY, this.#deployed], theirs);
    memberSide.whenReadReady(theirs, (ch) => {
      for (let message = hybrid.recv(ch); message !== NOTHING; message = hybrid.recv(ch)) {
        const [kind, , tasks] = message as [number, unknown, number[]];
        if (kind === TASKS) hybrid.send(reply(tasks[0] as number), ch);
      }
      if (!ch.atEnd) return true;
      ch.close();
      exited = { code: 0 };
      return false;
    });
    if (!memberSide.watching) void memberSide.watch();
    const kill = () => {
      theirs.abort();
      exited = { code: 1 };
    };
    return new Member(this.#deployed, ours, { kill, exited: () => exited });
  }
  dismiss = dismissInThisThread;
}

test('a member whose reports are malformed is retired for it, and its task is not lost', async (t) => {
  // Each member answers a task with a report that cannot be taken: no task id, a list cut short,
  // or a failure with no error record. The task must still be settled.
  const recruiter = new Answering([
    (_id) => [REPORTS, ['one', 0, 0, 9, 0]],
    (id) => [REPORTS, [id, 0, 0]],
    (id) => [REPORTS, [id, 0, TaskStatus.failed, null, 0]],
  ]);
  const the = new Pool({ size: 1, retries: 2, recruiter });
  const error = await t.throwsAsync(the.submit(new Square(3)), { instanceOf: WorkerLostError });
  t.regex(
    error?.message ?? '',
    /broke the crew protocol \(a malformed report: task 1 did not complete, and carries no error record\) while running task Square, 3 times: given up/,
  );
  await the.close();
  recruiter.memberSide.close();
});

test('a member that answers with undefined breaks the protocol: it is not taken for silence', async (t) => {
  const recruiter = new Answering([() => undefined]);
  const the = new Pool({ size: 1, retries: 0, recruiter });
  const error = await t.throwsAsync(the.submit(new Square(3)), { instanceOf: WorkerLostError });
  t.regex(
    error?.message ?? '',
    /broke the crew protocol \(a message that is not a list: undefined\) while running task Square, 1 time: given up/,
  );
  await the.close();
  recruiter.memberSide.close();
});

test('a worker that sends garbage is retired like one that crashed', async (t) => {
  const the = new Pool({ size: 1, retries: 1 });
  const outcome = (await the.assemble([new Garbage(), new Square(5)])).outcomes;
  t.like(outcome[0], { status: TaskStatus.aborted, attempts: 2 });
  t.regex(outcome[0]?.error?.message ?? '', /broke the crew protocol/);
  t.like(outcome[1], { status: TaskStatus.completed, result: 25 });
  await the.close();
});

test('10,000 tasks while workers are killed with SIGKILL: every task accounted for exactly once', async (t) => {
  const log = await logFile();
  const the = new Pool({ size: 2, retries: 5 });
  const killed = new Set<number>();
  the.on('started', () => {
    // Every 200th task start, kill a random active member (20 times in all).
    if (the.counts.completed % 200 !== 0 || killed.size >= 20) return;
    const members = [...the.active];
    const victim = members[Math.floor(Math.random() * members.length)];
    if (victim !== undefined && !killed.has(victim.id)) {
      killed.add(victim.id);
      process.kill(victim.id, 'SIGKILL');
    }
  });
  const report = await the.assemble(Array.from({ length: 10_000 }, (_, id) => new Chancy(id, 'ok', log)));
  await the.close();
  t.true(killed.size > 0);
  t.is(report.outcomes.length, 10_000);
  const runs = await executions(log);
  let completed = 0;
  report.outcomes.forEach((outcome, id) => {
    t.is(outcome.index, id);
    if (outcome.status === TaskStatus.completed) {
      completed++;
      t.is(outcome.result, id);
    } else t.true(outcome.error instanceof WorkerLostError);
    // A task whose worker was killed may have run without reporting: never more than its attempts.
    const ran = runs.get(id) ?? 0;
    if (ran > outcome.attempts || (outcome.status === TaskStatus.completed && ran < 1)) {
      t.fail(`task ${id} ran ${ran} times in ${outcome.attempts} attempts`);
    }
  });
  t.is(completed + report.aborted, 10_000);
  for (const pid of killed) t.true(reaped(pid), `killed worker ${pid} reaped`);
});

test('killing the team process with SIGKILL leaves no worker alive a second later', async (t) => {
  const team = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'team.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(team.stdout, 'data')) as [Buffer];
  const workers = JSON.parse(line.toString()) as number[];
  t.is(workers.length, 2);
  for (const pid of workers) t.false(reaped(pid), 'the workers run hanging tasks');
  team.kill('SIGKILL');
  await once(team, 'exit');
  const deadline = Date.now() + 1000;
  const alive = () => workers.filter((pid) => !gone(pid));
  while (alive().length > 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(alive(), []);
});

/** A process that has ended: reaped, or a zombie waiting for its new parent to reap it. */
function gone(pid: number): boolean {
  if (reaped(pid)) return true;
  try {
    const state =
      process.platform === 'linux'
        ? (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '')
        : execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    return state.startsWith('Z');
  } catch {
    return reaped(pid);
  }
}

test('a shared dispatcher stopped by a throwing handler aborts the running and queued tasks, then the pool recovers', async (t) => {
  // Stopped, the loop reads no report: the running task would otherwise never settle.
  const dir = await mkdtemp(join(tmpdir(), 'pyre-nexus-'));
  const gate = join(dir, 'gate');
  const shared = new Dispatcher();
  const the = new Pool({ size: 1, pipeline: 1, linger: 3600, dispatcher: shared });
  const recruited = once(the, 'recruited');
  // A task of a class its member has imported has its timeout timed from the start: an alarm.
  await writeFile(join(dir, 'open'), '');
  t.is(await the.submit(new FileGated(join(dir, 'open'), 1)), 1);
  const [member] = (await recruited) as [Member];
  const started = once(the, 'started');
  const running = the.submit(new FileGated(gate, 0), { timeout: 3600 });
  const queued = the.submit(new Square(2));
  await started; // tasks submitted together are dealt once the code that submits them ends
  t.is(shared.handlerCount, 3, "the member's channel, the task's timeout and the idle spell's linger");
  shared.alarm(0, () => {
    throw new Error('the application broke');
  });
  for (const task of [running, queued]) {
    const error = await t.throwsAsync(task, { code: 'ERR_NEXUS_DISPATCHER_STOPPED' });
    t.regex(error?.message ?? '', /the pool's dispatcher stopped on an error: the application broke/);
    t.is((error?.cause as Error | undefined)?.message, 'the application broke');
  }
  t.is(the.counts.running + the.counts.queued, 0);
  await shared.watch(); // it ends: no alarm of the pool's is left to keep it up for an hour
  t.is(await the.submit(new Square(3)), 9, 'the next task recruits afresh and watches again');
  await the.close();
  t.true(reaped(member.id), 'the member whose work was lost is stopped and reaped');
  shared.close();
  await rm(dir, { recursive: true });
});

test('a task submitted by a listener while a stopped dispatcher is abandoned runs on a new member', async (t) => {
  // Submitted as the first of two busy members retires, it must not be dealt to the second,
  // which has room for it (two tasks a member) and is stopped next: it would never settle.
  const dir = await mkdtemp(join(tmpdir(), 'pyre-nexus-'));
  const shared = new Dispatcher();
  const the = new Pool({ size: 2, dispatcher: shared });
  // Both members ready and idle first, so that the gated tasks go one to each.
  let ready = 0;
  const bothReady = new Promise<void>((resolve) => the.on('recruited', () => ++ready === 2 && resolve()));
  const warmUp = [0, 1].map((n) => the.submit(new FileGated(join(dir, 'warm'), n)));
  await bothReady;
  await writeFile(join(dir, 'warm'), '');
  await Promise.all(warmUp);
  const gated = [0, 1].map((n) => the.submit(new FileGated(join(dir, 'gate'), n)));
  let again: Promise<number> | undefined;
  the.once('retired', () => {
    again = the.submit(new Square(5));
  });
  shared.alarm(0, () => {
    throw new Error('the application broke');
  });
  for (const task of gated) await t.throwsAsync(task, { code: 'ERR_NEXUS_DISPATCHER_STOPPED' });
  t.is(await again, 25);
  await the.close();
  shared.close();
  await rm(dir, { recursive: true });
});

test('a close() waiting for the work ends when a shared dispatcher stops on an error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pyre-nexus-'));
  const shared = new Dispatcher();
  const the = new Pool({ size: 1, dispatcher: shared });
  const started = once(the, 'started');
  const running = the.submit(new FileGated(join(dir, 'gate'), 0));
  await started;
  const closed = the.close();
  shared.alarm(0, () => {
    throw new Error('the application broke');
  });
  await t.throwsAsync(running, { code: 'ERR_NEXUS_DISPATCHER_STOPPED' });
  await closed;
  shared.close();
  await rm(dir, { recursive: true });
});

test('the tasks queued behind a task that timed out run elsewhere at once, though its thread cannot be stopped yet', async (t) => {
  // The member is in a native call that terminate() cannot interrupt: its tasks must not wait for
  // it to be gone, since the begun word, fenced, already says which of them it began.
  t.timeout(60_000, 'the queued task waited for the stuck member to be reaped');
  const dir = await mkdtemp(join(tmpdir(), 'nexus-stuck-'));
  const gate = join(dir, 'gate');
  const the = new Pool({ size: 1, pipeline: 4, recruiter: new Threads() });
  await writeFile(join(dir, 'open'), '');
  t.is(await the.submit(new ShellGated(join(dir, 'open'), 0)), 0); // the class, imported
  const stuck = the.submit(new ShellGated(gate, 1), { timeout: 0.3 });
  const behind = the.submit(new Square(7));
  await t.throwsAsync(stuck, { code: 'ERR_NEXUS_TASK_TIMEOUT' });
  t.is(await behind, 49, 'run by the next member while the stuck one still waits on its gate');
  await writeFile(gate, '');
  await the.close();
  await rm(dir, { recursive: true });
});
