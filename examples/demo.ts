// The main job: count the primes below 5,000,000 with a team of two worker processes, in chunks
// of 10,000 (examples/tasks/primes.ts). Halfway through, one worker is killed with SIGKILL: the
// pool runs its chunks elsewhere, recruits a replacement, and the total still matches π(5,000,000).
import { Pool, TaskStatus } from 'pyre-nexus';
import { workplan } from './tasks/primes.ts';

const LIMIT = 5_000_000;
const KNOWN = 348_513; // π(5,000,000)

const pool = new Pool({ size: 2 });
pool.on('recruited', (member) => console.log(`worker ${member.id} joined the team`));
let killed = false;
pool.on('completed', (_outcome, counts) => {
  if (killed || counts.completed < 250) return;
  const [victim] = pool.active;
  if (victim === undefined) return;
  killed = true;
  console.log(`killing worker ${victim.id} halfway, with tasks in hand`);
  process.kill(victim.id, 'SIGKILL');
});

const report = await pool.assemble(workplan(String(LIMIT)));
await pool.close();

const primes = report.outcomes.reduce((sum, o) => sum + (o.status === TaskStatus.completed ? (o.result ?? 0) : 0), 0);
const rerun = report.outcomes.filter((o) => o.attempts > 1).length;
console.log(
  `${report.outcomes.length} tasks: ${report.completed} completed, ${report.aborted} aborted, ` +
    `${rerun} run again after the kill, in ${report.seconds.toFixed(2)} s`,
);
console.log(`primes below ${LIMIT}: ${primes} (expected ${KNOWN})`);
if (primes !== KNOWN) {
  console.error('wrong total');
  process.exit(1);
}
