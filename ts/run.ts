/**
 * `nexus run`: carries out a workplan with a pool, draws a progress bar on a terminal, prints
 * each outcome as a line of JSON if asked, and a summary with the first failed tasks and why.
 * Ctrl-C stops the workers and says what finished.
 */

import { inspect } from 'node:util';
import { NexusError } from './errors.js';
import type { Task } from './nexus/crew/crossing.js';
import { Fork } from './nexus/fork.js';
import { Pool } from './nexus/pool/pool.js';
import type { Outcome } from './nexus/pool/workplan.js';
import { Threads } from './nexus/threads.js';
import { TaskStatus } from './task.js';

export interface RunSettings {
  size?: number;
  retries?: number;
  timeout?: number;
  pending?: number;
  pipeline?: number;
  recruiter?: 'fork' | 'threads';
  progress?: 'auto' | 'on' | 'off';
  /** Prints each outcome as a line of JSON on standard output (and the summary on standard error). */
  results?: boolean;
}

/** The exit status of a run that Ctrl-C stopped: 128 + SIGINT, as a shell reports it. */
export const INTERRUPTED = 130;

/** Where a run stands, as the bar and the summary show it. */
export interface Progress {
  /** Tasks read from the workplan. */
  submitted: number;
  done: number;
  failed: number;
  /** Attempts that raised a RecoverableError and ran again. */
  retried: number;
  running: number;
  seconds: number;
}

/**
 * Runs `workplan`; resolves to the exit status: 0 when every task completed, 1 otherwise, and
 * {@link INTERRUPTED} when Ctrl-C stopped it.
 */
export async function runWorkplan(workplan: unknown, settings: RunSettings): Promise<number> {
  const { recruiter, progress = 'auto', results = false, ...options } = settings;
  const pool = new Pool({ ...options, recruiter: recruiter === 'threads' ? new Threads() : new Fork() });
  const showBar = progress === 'on' || (progress === 'auto' && process.stderr.isTTY === true);
  const started = performance.now();
  // Counted here, not read from a report: a report that keeps no outcomes still needs memory
  // for none, and an interrupted run has to say what finished before its report is complete.
  const tally = { submitted: 0, done: 0, failed: 0 };
  const interrupt = new AbortController();
  const interruption = new NexusError('interrupted (SIGINT)', 'ERR_NEXUS_INTERRUPTED');
  const current = (): Progress => ({
    ...tally,
    retried: pool.counts.failed,
    running: pool.counts.running,
    seconds: (performance.now() - started) / 1000,
  });
  const draw = () => process.stderr.write(`\r${renderBar(current(), terminalWidth())}\x1b[K`);
  // On one terminal, a result line would run into the bar: the bar is wiped and drawn anew.
  const wipeBar = showBar && process.stdout.isTTY === true ? () => process.stderr.write('\r\x1b[K') : () => {};
  const firstFailures: Outcome[] = [];
  pool.on('queued', () => tally.submitted++);
  const settled = (outcome: Outcome) => {
    const cancelled = outcome.error === interruption;
    if (outcome.status === TaskStatus.completed) tally.done++;
    else if (!cancelled) {
      tally.failed++;
      if (firstFailures.length < 10) firstFailures.push(outcome);
    }
    if (results) {
      wipeBar();
      process.stdout.write(`${resultLine(outcome, cancelled)}\n`);
    }
  };
  pool.on('completed', settled);
  pool.on('aborted', settled);

  const onInterrupt = () => {
    if (interrupt.signal.aborted) process.exit(INTERRUPTED); // a second Ctrl-C: at once
    interrupt.abort(interruption);
  };
  process.on('SIGINT', onInterrupt);
  const ticker = showBar ? setInterval(draw, 100) : null;
  let failure: Error | null = null;
  try {
    await pool.assemble(workplan as Iterable<Task>, { keep: false, signal: interrupt.signal });
  } catch (error) {
    failure = error as Error;
  } finally {
    if (ticker !== null) {
      clearInterval(ticker);
      draw();
      process.stderr.write('\n');
    }
    // Interrupted, members still at a task are killed rather than waited for.
    await pool.close({ force: interrupt.signal.aborted });
    process.removeListener('SIGINT', onInterrupt);
  }

  const out = results ? process.stderr : process.stdout;
  if (interrupt.signal.aborted) {
    out.write(`${interruptedSummary(current())}\n`);
    return INTERRUPTED;
  }
  out.write(`${summary(current())}\n`);
  for (const outcome of firstFailures) {
    out.write(
      `  task #${outcome.index} (${nameOf(outcome.task)}): ${outcome.error?.name}: ${outcome.error?.message}\n`,
    );
  }
  if (failure !== null) process.stderr.write(`nexus: ${failure.message}\n`);
  return tally.failed > 0 || failure !== null ? 1 : 0;
}

/**
 * One outcome as a line of JSON: the task's place in the workplan and class, `done` with its
 * `value`, `failed` (the pool gave up on it) or `aborted` (Ctrl-C cancelled it) with its
 * `error`, and its attempts. A value that JSON cannot carry is given as util.inspect shows it.
 */
export function resultLine(outcome: Outcome, cancelled = false): string {
  const line: Record<string, unknown> = { index: outcome.index, task: nameOf(outcome.task) };
  if (outcome.status === TaskStatus.completed) {
    line.status = 'done';
    line.value = outcome.result ?? null;
  } else {
    const error = outcome.error;
    line.status = cancelled ? 'aborted' : 'failed';
    line.error = { name: error?.name, message: error?.message, code: (error as { code?: unknown })?.code };
  }
  line.attempts = outcome.attempts;
  try {
    return JSON.stringify(line);
  } catch {
    // A BigInt, or a cycle.
    return JSON.stringify({ ...line, value: inspect(line.value) });
  }
}

/**
 * The progress bar for a terminal `columns` wide. It never reaches the last column, where some
 * terminals wrap: when the line is too long, the bar narrows (to 10), then the least telling
 * counts go, then the bar, and the rest is cut.
 */
export function renderBar(progress: Progress, columns: number): string {
  const room = Math.max(columns - 1, 1);
  const finished = progress.done + progress.failed;
  // In the order they are shown; each with its rank, 0 the last to go.
  const parts: [string, number][] = [
    [`${finished}/${progress.submitted}`, 0],
    [`${progress.done} done`, 4],
    [`${progress.failed} failed`, 1],
    [`${progress.retried} retried`, 5],
    [`${progress.running} running`, 3],
    [`${progress.seconds.toFixed(1)} s`, 2],
  ];
  for (let kept = parts.length; kept > 0; kept--) {
    const text = parts
      .filter(([, rank]) => rank < kept)
      .map(([part]) => part)
      .join(' · ');
    const width = Math.min(24, room - text.length - 3);
    if (width < 10) continue;
    const filled = progress.submitted === 0 ? 0 : Math.round((width * finished) / progress.submitted);
    return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`;
  }
  return `${finished}/${progress.submitted}`.slice(0, room);
}

/**
 * The width of the terminal the bar is drawn on; COLUMNS, or 80, when it does not say (a
 * terminal of 0 columns, as a pseudo-terminal can be); no limit when the bar goes to a file.
 */
function terminalWidth(): number {
  return (
    process.stderr.columns || Number(process.env.COLUMNS) || (process.stderr.isTTY ? 80 : Number.POSITIVE_INFINITY)
  );
}

function summary(progress: Progress): string {
  const total = progress.done + progress.failed;
  const rate = progress.seconds > 0 ? ` (${Math.round(total / progress.seconds)} tasks/s)` : '';
  return (
    `${total} tasks: ${progress.done} done, ${progress.failed} failed, ` +
    `${progress.retried} attempts retried, in ${progress.seconds.toFixed(2)} s${rate}`
  );
}

function interruptedSummary(progress: Progress): string {
  const unfinished = progress.submitted - progress.done - progress.failed;
  return (
    `interrupted after ${progress.seconds.toFixed(2)} s: ${progress.done} done, ${progress.failed} failed, ` +
    `${unfinished} unfinished`
  );
}

function nameOf(task: unknown): string {
  return (task as object | null)?.constructor?.name ?? 'task';
}
