/**
 * `nexus run`: carries out a workplan with a pool, draws a progress bar on a terminal, and
 * prints a summary with the first aborted tasks and why.
 */

import type { Task } from './nexus/crew/crossing.js';
import { Fork } from './nexus/fork.js';
import type { Counts } from './nexus/pool/jobs.js';
import { Pool } from './nexus/pool/pool.js';
import type { Outcome, WorkplanReport } from './nexus/pool/workplan.js';
import { Threads } from './nexus/threads.js';

export interface RunSettings {
  size?: number;
  retries?: number;
  timeout?: number;
  pending?: number;
  pipeline?: number;
  recruiter?: 'fork' | 'threads';
  progress?: 'auto' | 'on' | 'off';
}

/** Runs `workplan`; resolves to the exit status: 0 when every task completed, 1 otherwise. */
export async function runWorkplan(workplan: unknown, settings: RunSettings): Promise<number> {
  const { recruiter, progress = 'auto', ...options } = settings;
  const pool = new Pool({ ...options, recruiter: recruiter === 'threads' ? new Threads() : new Fork() });
  const showBar = progress === 'on' || (progress === 'auto' && process.stderr.isTTY === true);
  const started = performance.now();
  let submitted = 0;
  pool.on('queued', () => submitted++);
  // The report keeps counts only, so that a workplan of millions needs no memory per task; the
  // first aborted tasks are kept for the summary.
  const aborted: Outcome[] = [];
  pool.on('aborted', (outcome: Outcome) => {
    if (aborted.length < 10) aborted.push(outcome);
  });
  const draw = () => process.stderr.write(`\r${bar(pool.counts, submitted, started)}\x1b[K`);
  const ticker = showBar ? setInterval(draw, 100) : null;
  let report: WorkplanReport;
  let failure: Error | null = null;
  try {
    report = await pool.assemble(workplan as Iterable<Task>, { keep: false });
  } catch (error) {
    failure = error as Error;
    report = (error as { report?: WorkplanReport }).report ?? { outcomes: [], completed: 0, aborted: 0, seconds: 0 };
  } finally {
    if (ticker !== null) {
      clearInterval(ticker);
      draw();
      process.stderr.write('\n');
    }
    await pool.close();
  }
  process.stdout.write(`${summary(report, pool.counts.failed)}\n`);
  for (const outcome of aborted) {
    const name = (outcome.task as object).constructor.name;
    process.stdout.write(`  task #${outcome.index} (${name}): ${outcome.error?.name}: ${outcome.error?.message}\n`);
  }
  if (failure !== null) process.stderr.write(`nexus: ${failure.message}\n`);
  return report.aborted > 0 || failure !== null ? 1 : 0;
}

/** One line: a bar of finished tasks, then the counts and the time. */
export function bar(counts: Counts, submitted: number, since: number): string {
  const done = counts.completed + counts.aborted;
  const width = 24;
  const filled = submitted === 0 ? 0 : Math.round((width * done) / submitted);
  const seconds = ((performance.now() - since) / 1000).toFixed(1);
  return (
    `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${submitted} · ` +
    `${counts.completed} completed · ${counts.aborted} aborted · ${counts.failed} retried · ` +
    `${counts.running} running · ${seconds} s`
  );
}

function summary(report: WorkplanReport, retried: number): string {
  const total = report.completed + report.aborted;
  const rate = report.seconds > 0 ? ` (${Math.round(total / report.seconds)} tasks/s)` : '';
  return (
    `${total} tasks: ${report.completed} completed, ${report.aborted} aborted, ` +
    `${retried} attempts retried, in ${report.seconds.toFixed(2)} s${rate}`
  );
}
