// The dealing policy (ts/nexus/pool/dealer.ts): every member busy while work waits, whatever the
// submission pattern.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Pool, type Recruiter, Threads } from '../dist/index.js';
import { Barrier, FileGated, WhoRuns } from './fixtures/tasks.js';

const recruiters: [string, () => Recruiter | undefined][] = [
  ['Fork', () => undefined],
  ['Threads', () => new Threads()],
];

async function folder(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'nexus-dealing-'));
}

for (const [name, recruiter] of recruiters) {
  test(`two tasks submitted together on a pool of 2 run at once, on 2 members (${name})`, async (t) => {
    const the = new Pool({ size: 2, ...withRecruiter(recruiter()) });
    const dir = await folder();
    const [a, b] = await Promise.all([the.submit(new Barrier(dir, 2)), the.submit(new Barrier(dir, 2))]);
    t.true(a.together && b.together, 'each saw the other running');
    t.not(a.member, b.member);
    // A pool that has learned a deep pipeline from short tasks still deals two to two members.
    await Promise.all(Array.from({ length: 2000 }, () => the.submit(new WhoRuns())));
    const again = await folder();
    const [c, d] = await Promise.all([the.submit(new Barrier(again, 2)), the.submit(new Barrier(again, 2))]);
    t.true(c.together && d.together);
    t.not(c.member, d.member);
    await the.close();
    await Promise.all([rm(dir, { recursive: true }), rm(again, { recursive: true })]);
  });

  test(`a member with nothing to do takes the tasks waiting behind a long one at another (${name})`, async (t) => {
    t.timeout(60_000, 'the short tasks waited for the long one');
    const the = new Pool({ size: 2, ...withRecruiter(recruiter()) });
    const dir = await folder();
    const gate = join(dir, 'gate');
    // Warm: both members up, the classes known, and each class's pipeline two deep or more.
    await Promise.all(Array.from({ length: 200 }, () => the.submit(new WhoRuns())));
    await Promise.all([
      the.submit(new FileGated(join(dir, 'open'), 1), { timeout: 0 }),
      writeFile(join(dir, 'open'), ''),
    ]);
    // One member gets the long task and short ones behind it; the other runs out of work.
    const long = the.submit(new FileGated(gate, 7));
    const short = Array.from({ length: 6 }, () => the.submit(new WhoRuns()));
    // They all finish while the long task still runs: none waited behind it.
    t.is((await Promise.all(short)).length, 6);
    await writeFile(gate, '');
    t.is(await long, 7);
    await the.close();
    await rm(dir, { recursive: true });
  });
}

for (const [name, recruiter] of recruiters) {
  test(`two members deep in long tasks both give up the tasks behind them to a third (${name})`, async (t) => {
    // The first member asked gives up its tasks, but cannot answer until its long task ends: the
    // second must still give up its own to the member with nothing to do.
    t.timeout(60_000, 'the short tasks waited for the long ones');
    const the = new Pool({ size: 3, ...withRecruiter(recruiter()) });
    const dir = await folder();
    const gate = join(dir, 'gate');
    // All three up (members start as work needs them, two at a time on two CPUs), classes known.
    for (let round = 0; round < 100 && the.active.size < 3; round++) {
      await Promise.all(Array.from({ length: 300 }, () => the.submit(new WhoRuns())));
    }
    await Promise.all([the.submit(new FileGated(join(dir, 'open'), 1)), writeFile(join(dir, 'open'), '')]);
    t.is(the.active.size, 3);
    const long = [the.submit(new FileGated(gate, 1)), the.submit(new FileGated(gate, 2))];
    const short = Array.from({ length: 6 }, () => the.submit(new WhoRuns()));
    t.is((await Promise.all(short)).length, 6, 'all ran while both long tasks still ran');
    await writeFile(gate, '');
    t.deepEqual(await Promise.all(long), [1, 2]);
    await the.close();
    await rm(dir, { recursive: true });
  });
}

test('N long tasks on N members run at once, the team larger than the CPUs', async (t) => {
  const the = new Pool({ size: 6 });
  const dir = await folder();
  const results = await Promise.all(Array.from({ length: 6 }, () => the.submit(new Barrier(dir, 6))));
  t.true(
    results.every((r) => r.together),
    'all six were running at once',
  );
  t.is(new Set(results.map((r) => r.member)).size, 6);
  // Again as one workplan, on the members now up.
  const again = await folder();
  const report = await the.assemble(Array.from({ length: 6 }, () => new Barrier(again, 6)));
  t.true(report.outcomes.every((o) => o.result?.together === true));
  await the.close();
  await Promise.all([rm(dir, { recursive: true }), rm(again, { recursive: true })]);
});

test('a burst of submit() calls after many short tasks is dealt over the members as one workplan is', async (t) => {
  // Short tasks teach a member a deep pipeline: each submit() dealing its own task at once gave
  // the whole burst to the first member. How the burst is dealt is looked at once the code that
  // submits it has ended: before any member can have answered, or taken tasks from another.
  const the = new Pool({ size: 2 });
  await Promise.all(Array.from({ length: 20_000 }, () => the.submit(new WhoRuns())));
  t.is(the.active.size, 2);
  const burst = Array.from({ length: 200 }, () => the.submit(new WhoRuns()));
  await null; // the submitting code has ended
  const held = [...the.active].map((member) => member.taskIds.length);
  // No member is dealt more than its half; a member still answering a request for tasks back
  // (the last of the short tasks may have been taken from it) gets its half once it has.
  t.true(Math.max(...held) <= 100, `dealt ${JSON.stringify(held)}`);
  t.is(the.counts.queued + held.reduce((sum, n) => sum + n, 0), 200);
  t.is((await Promise.all(burst)).length, 200);
  await the.close();
});

function withRecruiter(recruiter: Recruiter | undefined): { recruiter?: Recruiter } {
  return recruiter === undefined ? {} : { recruiter };
}
