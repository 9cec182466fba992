import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import {
  Dispatcher,
  Fork,
  type Member,
  Pool,
  type PoolOptions,
  type Recruiter,
  type Team,
  Threads,
  WorkerLostError,
} from '../dist/index.js';
import { Crash, FileGated, Gated, openGate, Square } from './fixtures/tasks.js';
import { dismissInThisThread, inThisThread, memberDescriptors, reaped } from './pool-helpers.js';

// Pool: staffing the team: start-up, startTimeout, how many members start at once, recruits that fail
// and the pauses that follow, lingering idle members, zombies, and scripts that exit.

/**
 * A pool whose first member starts and whose later recruits exit before they are ready
 * (fixtures/later-members-fail.cjs). Its preload reads `marker` from this process's environment,
 * so the specs that use it run serially; removing `marker` lets the next recruit get ready.
 */
async function laterRecruitsFail(t: import('ava').ExecutionContext, options: PoolOptions) {
  const dir = await mkdtemp(join(tmpdir(), 'pyre-nexus-'));
  const marker = join(dir, 'started');
  Object.assign(process.env, { PYRE_NEXUS_TEST_MARKER: marker, PYRE_NEXUS_TEST_LATER: 'exit' });
  t.teardown(() => {
    delete process.env.PYRE_NEXUS_TEST_MARKER;
    delete process.env.PYRE_NEXUS_TEST_LATER;
  });
  const preload = join(import.meta.dirname, 'fixtures', 'later-members-fail.cjs');
  const the = new Pool({ ...options, recruiter: new Fork({ execArgv: ['--require', preload] }) });
  return { the, marker, gate: join(dir, 'gate') };
}

/** Resolves once `count` more members of `pool` have retired. */
function retirements(pool: Pool, count: number): Promise<void> {
  return new Promise((resolve) => {
    let retired = 0;
    pool.on('retired', () => {
      if (++retired === count) resolve();
    });
  });
}

test('no more members start at once than there are CPUs; the next are recruited as those report ready', async (t) => {
  const cpus = availableParallelism();
  const size = cpus + 2;
  const starting: (() => void)[] = []; // deployed members, not started yet
  let deployed = 0;
  let mostAtOnce = 0;
  class OnCue implements Recruiter {
    recruit(team: Team) {
      return Array.from({ length: team.vacancies() }, () => this.deploy());
    }
    deploy() {
      const member = inThisThread(++deployed, (work) => starting.push(work));
      mostAtOnce = Math.max(mostAtOnce, starting.length);
      return member;
    }
    dismiss = dismissInThisThread;
  }
  const the = new Pool({ size, recruiter: new OnCue() });
  const plan = the.assemble(Array.from({ length: size }, (_, n) => new Gated(n)));
  t.is(deployed, cpus, 'the first recruitment stops at one member per CPU');
  while (deployed < size) {
    const recruited = once(the, 'recruited');
    starting.shift()?.();
    await recruited; // the pool recruits the next member in the same turn, before this resumes
  }
  t.is(mostAtOnce, cpus);
  for (const start of starting.splice(0)) start();
  openGate();
  t.deepEqual(
    (await plan).outcomes.map((o) => o.result),
    Array.from({ length: size }, (_, n) => n),
  );
  t.is(deployed, size);
  await the.close();
});

for (const [recruiting, Recruiter] of [
  ['processes', Fork],
  ['threads', Threads],
] as const) {
  test(`members that hang before they are ready are replaced after startTimeout, then fail the queued tasks (${recruiting})`, async (t) => {
    const hang = join(import.meta.dirname, 'fixtures', 'hang-at-start.cjs');
    const the = new Pool({ size: 1, startTimeout: 0.2, recruiter: new Recruiter({ execArgv: ['--require', hang] }) });
    const retired: number[] = [];
    the.on('retired', (member) => retired.push(member.id));
    const error = await t.throwsAsync(the.submit(new Square(2)), { instanceOf: WorkerLostError });
    t.regex(
      error?.message ?? '',
      /crew members fail to get ready \(3 in a row; the last did not get ready within 0.2 s \(startTimeout\)\)/,
    );
    t.is(retired.length, 3, 'each hung member was given up on once, and no more were recruited');
    await the.close();
    if (recruiting === 'processes') for (const pid of retired) t.true(reaped(pid), `member ${pid} reaped`);
  });
}

test('workers that die before they are ready fail the queued tasks instead of being recruited forever', async (t) => {
  const the = new Pool({ size: 2, recruiter: new Fork({ execArgv: ['--no-such-node-option'] }) });
  const recruited: number[] = [];
  the.on('retired', (member) => recruited.push(member.id));
  const error = await t.throwsAsync(the.submit(new Square(2)), { instanceOf: WorkerLostError });
  t.regex(error?.message ?? '', /crew members fail to get ready \(3 in a row; the last ended/);
  t.true(recruited.length >= 3 && recruited.length <= 4, `${recruited.length} recruits, not an endless stream`);
  await the.close();
  for (const pid of recruited) t.true(reaped(pid));
});

// Serial: it counts the process's descriptors, which concurrent specs open too.
(process.platform === 'linux' ? test.serial : test.skip)(
  'threads that die before they take their channel fail the queued tasks at once, and leave no descriptor',
  async (t) => {
    // A preload that throws ends each thread before the member's code runs: the team must hear of
    // it from the thread's exit, not after startTimeout (an hour here: a hang fails the spec).
    const throwing = fileURLToPath(new URL('./fixtures/throwing-module.js', import.meta.url));
    const dispatcher = new Dispatcher(); // one the pool makes is let go only after close() resolves
    const before = memberDescriptors();
    const the = new Pool({
      size: 2,
      dispatcher,
      startTimeout: 3600,
      recruiter: new Threads({ execArgv: ['--import', throwing] }),
    });
    const error = await t.throwsAsync(the.submit(new Square(2)), { instanceOf: WorkerLostError });
    t.regex(error?.message ?? '', /fail to get ready .*this module refuses to load/);
    await the.close();
    t.deepEqual(memberDescriptors(), before);
    dispatcher.close();
  },
);

// Serial: see laterRecruitsFail.
test.serial(
  'a team whose recruits fail to get ready carries on with its member, then recruits again when it loses it',
  async (t) => {
    // The tasks wait at a gate while three recruits fail: queued, they must wait for the one
    // member, not be aborted as they are when no member works.
    const { the, marker, gate } = await laterRecruitsFail(t, { size: 2 });
    const recruited = once(the, 'recruited');
    const results = [the.submit(new FileGated(gate, 0))]; // one task: one recruit
    const [member] = (await recruited) as [Member];
    const threeFailed = retirements(the, 3);
    for (let n = 1; n < 6; n++) results.push(the.submit(new FileGated(gate, n)));
    await threeFailed;
    t.is(the.vacancies(), 0, 'no recruit while it carries on shorthanded');
    t.is(the.counts.aborted, 0);
    // Its member lost, it recruits again at once; with the marker gone, a recruit gets ready.
    await rm(marker);
    const replaced = once(the, 'recruited');
    process.kill(member.id, 'SIGKILL');
    t.not(((await replaced) as [Member])[0].id, member.id);
    await writeFile(gate, '');
    t.deepEqual(await Promise.all(results), [0, 1, 2, 3, 4, 5]);
    await the.close();
  },
);

// Serial: see laterRecruitsFail.
test.serial(
  'a team carrying on shorthanded recruits again when the pause ends, while its member is still busy',
  async (t) => {
    // Its one member is held at a gate: no report, no new task and no lost member comes to end
    // the pause, so only the pool's own alarm can recruit the member the queued tasks need.
    // One task a member, so that the first holds none of the queued ones behind its gate.
    const { the, marker, gate } = await laterRecruitsFail(t, { size: 2, pipeline: 1 });
    const recruited = once(the, 'recruited');
    const gated = the.submit(new FileGated(gate, 0));
    const [first] = (await recruited) as [Member];
    const threeFailed = retirements(the, 3);
    const squares = [the.submit(new Square(2)), the.submit(new Square(3))];
    await threeFailed;
    t.is(the.vacancies(), 0, 'no recruit while the pause lasts');
    await rm(marker); // the next recruit gets ready
    const [second] = (await once(the, 'recruited')) as [Member];
    t.not(second.id, first.id);
    t.deepEqual(await Promise.all(squares), [4, 9], 'the new member ran them while the first was held');
    await writeFile(gate, '');
    t.is(await gated, 0);
    await the.close();
  },
);

test('a recruiter failing part-way returns the members it deployed, and the pool carries on with them', async (t) => {
  // Thrown away with the error, they would run unknown to the team, never reaped.
  class Faltering extends Fork {
    deployed = 0;
    override deploy(team: Team) {
      if (this.deployed === 1) throw new Error('out of processes');
      this.deployed++;
      return super.deploy(team);
    }
  }
  const recruiter = new Faltering();
  const team = { size: 2, vacancies: () => 2 } as unknown as Team;
  const recruits = recruiter.recruit(team);
  t.is(recruits.length, 1);
  await recruiter.dismiss(team, recruits[0] as Member, true);
  t.true(reaped((recruits[0] as Member).id));
  t.throws(() => recruiter.recruit(team), { message: 'out of processes' }, 'with none deployed, it throws');

  // A pool whose recruiter fails while its one member is still starting carries on with it: the
  // second submit asks for a recruit at once, before the first member is ready.
  const the = new Pool({ size: 2, recruiter: new Faltering() });
  t.deepEqual(await Promise.all([the.submit(new Square(2)), the.submit(new Square(3))]), [4, 9]);
  await the.close();
});

test('no zombie after dismissal, and a child_process elsewhere still gets its exit event', async (t) => {
  const the = new Pool({ size: 4 });
  const pids: number[] = [];
  the.on('recruited', (member) => pids.push(member.id));
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => process.exit(7), 200)']);
  const exited = once(other, 'exit');
  const report = await the.assemble([new Crash(), ...Array.from({ length: 400 }, (_, i) => new Square(i))]);
  t.is(report.completed, 400);
  const closing = the.close();
  t.is(the.retired.size, the.retired.size + the.active.size, 'all members dismissed at once, not one by one');
  await closing;
  t.deepEqual(await exited, [7, null], 'reaping by pid left the other child to child_process');
  t.true(pids.length >= 4);
  for (const pid of pids) t.true(reaped(pid), `worker ${pid} reaped`);
});

for (const [timeout, hang] of [
  [0, ''],
  [3600, ''],
  [0, 'hang'],
] as const) {
  test(`a script that never closes its pool still exits once idle members have lingered (task timeout ${timeout} s${hang ? ', a member hung starting' : ''})`, async (t) => {
    // Its members are idle more than once: each idle spell must count. Alarms armed for deadlines
    // (a task's timeout, a member's start-up) must go with them, or the script would wait an hour;
    // a member hung starting must not be waited for.
    const linger = join(import.meta.dirname, 'fixtures', 'linger.ts');
    const marker = join(await mkdtemp(join(tmpdir(), 'pyre-nexus-')), 'started');
    const script = spawn(process.execPath, ['--import', 'tsx', linger, String(timeout), hang], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PYRE_NEXUS_TEST_MARKER: marker, PYRE_NEXUS_TEST_LATER: 'hang' },
    });
    let output = '';
    script.stdout.on('data', (d) => (output += d));
    t.deepEqual(await once(script, 'exit'), [0, null]);
    t.is(output, '16\n25 36\n');
  });
}
