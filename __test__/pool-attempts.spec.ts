// The attempts ledger (ts/nexus/pool/ledger.ts): no task runs more often than it says, whatever
// kills its members, and when.
import test from 'ava';
import { type Outcome, Pool, type Recruiter, TaskStatus, Threads, WorkerLostError } from '../dist/index.js';
import { Chancy, Mortal } from './fixtures/tasks.js';
import { executions, logFile, reaped, seededRandom } from './pool-helpers.js';

/** Checks the ledger's promises for every outcome against the runs the tasks logged. */
function checkRuns(
  t: import('ava').ExecutionContext,
  outcomes: Outcome<number>[],
  runs: Map<number, number>,
  retries: number,
): void {
  const broken: string[] = [];
  outcomes.forEach((outcome, id) => {
    const ran = runs.get(id) ?? 0;
    if (outcome.index !== id) broken.push(`outcome ${id} is task ${outcome.index}'s`);
    if (ran > outcome.attempts) broken.push(`task ${id} ran ${ran} times in ${outcome.attempts} attempts`);
    if (ran > 1 + retries) broken.push(`task ${id} ran ${ran} times with retries ${retries}`);
    if (outcome.status === TaskStatus.completed && (ran < 1 || outcome.result !== id)) {
      broken.push(`task ${id} completed with ${String(outcome.result)} after ${ran} runs`);
    }
    if (outcome.status === TaskStatus.aborted && !(outcome.error instanceof WorkerLostError)) {
      broken.push(`task ${id} aborted with ${String(outcome.error)}`);
    }
  });
  t.deepEqual(broken.slice(0, 10), [], `${broken.length} broken promises`);
}

for (const retries of [0, 3]) {
  test(`SIGKILL storm on 4 Fork members, killing only members ready 150 ms or more, retries ${retries}: no task runs more often than its attempts`, async (t) => {
    const log = await logFile();
    const the = new Pool({ size: 4, retries });
    const readyAt = new Map<number, number>();
    const killed = new Set<number>();
    the.on('recruited', (member) => readyAt.set(member.id, performance.now()));
    the.on('completed', () => {
      if (the.counts.completed % 250 !== 0 || killed.size >= 12) return;
      const ready = [...the.active].filter((m) => performance.now() - (readyAt.get(m.id) ?? 0) >= 150);
      const victim = ready[Math.floor(Math.random() * ready.length)];
      if (victim === undefined || killed.has(victim.id)) return;
      killed.add(victim.id);
      process.kill(victim.id, 'SIGKILL');
    });
    const report = await the.assemble(Array.from({ length: 10_000 }, (_, id) => new Chancy(id, 'ok', log)));
    await the.close();
    t.true(killed.size > 0, 'members were killed');
    t.is(report.outcomes.length, 10_000);
    t.is(report.completed + report.aborted, 10_000);
    checkRuns(t, report.outcomes as Outcome<number>[], await executions(log), retries);
    for (const pid of killed) t.true(reaped(pid), `killed member ${pid} reaped`);
  });

  test(`Threads members that die at random (process.exit, an uncaught asynchronous throw), retries ${retries}: no task runs more often than its attempts`, async (t) => {
    const log = await logFile();
    const recruiter: Recruiter = new Threads();
    const the = new Pool({ size: 4, retries, recruiter });
    // About one task in 400 takes its member down, chosen by a seed a failure prints.
    const seed = Number(process.env.POOL_DEATH_SEED ?? Date.now() % 1_000_000);
    t.log(`POOL_DEATH_SEED=${seed}`);
    const random = seededRandom(seed);
    const deaths = ['exit', 'throw'] as const;
    const plan = Array.from({ length: 4000 }, (_, id) => {
      const death = random() < 1 / 400 ? deaths[Math.floor(random() * 2)] : 'none';
      return new Mortal(id, log, death);
    });
    let lost = 0;
    the.on('retired', () => lost++);
    const report = await the.assemble(plan);
    t.true(lost > 0 || plan.every((task) => task.death === 'none'), 'members died');
    await the.close();
    t.is(report.completed + report.aborted, 4000);
    checkRuns(t, report.outcomes as Outcome<number>[], await executions(log), retries);
  });
}
