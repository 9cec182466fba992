/**
 * The pool's options and their checks: a wrong option is refused when the pool is made, or when
 * `submit` or `assemble` is called, with a message that names it.
 */
import { Dispatcher } from '../../ipc/dispatcher.js';
import { checkOutput, type MemberOutput } from '../output.js';
import type { Recruiter } from '../team.js';

/** Options of a {@link Pool}. */
export interface PoolOptions {
  /** Members at full strength (the number of cores). */
  size?: number;
  /** How members are made ({@link Fork}: one Node process each). */
  recruiter?: Recruiter;
  /** How often a task is run again after a RecoverableError, or after its worker died (3). */
  retries?: number;
  /** Seconds a task may run, from the start of its execution; 0 for no limit (0). */
  timeout?: number;
  /** The most tasks a member holds at once, running one and queueing the rest (256). */
  pipeline?: number;
  /** The most tasks of one workplan read ahead of their outcomes (1024). */
  pending?: number;
  /** Seconds idle members wait for more work before they are dismissed (1). */
  linger?: number;
  /**
   * Seconds a member may take from its recruitment to reporting ready; 0 for no limit (30). One
   * that takes longer (hung in a preloaded module, or stopped) is retired and counts as a member
   * that failed to start.
   */
  startTimeout?: number;
  /**
   * The dispatcher to run on; the pool watches it while it has members. By default a new one
   * that, while results come back within 300 µs of each other, polls that long for the next
   * before it sleeps (DispatcherOptions.spin; on Linux, and not for a pool larger than the
   * machine's CPUs): a task at a time then takes about a quarter less. A dispatcher shared with
   * handlers of your own: if one of them throws and the dispatcher has no `onError`, the loop
   * stops and no report can be read. When the pool started that loop (it watches the dispatcher
   * when it is not being watched), it aborts the tasks it holds, queued and running, with
   * `ERR_NEXUS_DISPATCHER_STOPPED` (the exception as its `cause`) and stops its members; the next
   * task, or a workplan's next, recruits afresh. When something else started it (you, or
   * another pool), the rejection goes there, and this pool's tasks wait until the dispatcher is
   * watched again.
   */
  dispatcher?: Dispatcher;
  /**
   * How what members write to their standard output and error reaches you ('inherit'):
   * - `'inherit'`: they write to this process's own, as a child process with `stdio: 'inherit'`
   *   (worker threads: as Node passes their output on). A member that dies before it is ready
   *   has the end of what it wrote to its standard error in the error that reports it.
   * - `'tagged'`: each line goes to this process's stdout or stderr after `[member <id>] `.
   * - a function: called with each line (without its newline) and where it came from,
   *   `{ member, stream }`; it writes nothing itself.
   * Lines are whole: a last line without its newline comes when its member ends. With either of
   * the last two, the error a member's death causes (before it is ready, or running tasks) ends
   * with the last lines of its standard error. For {@link Fork} and {@link Threads} members; a
   * recruiter of your own puts its members' output where it likes.
   */
  output?: MemberOutput;
}

/** Per-task options of {@link Pool.submit} and {@link Pool.assemble}. */
export interface RunOptions {
  /**
   * Cancels the task (or every task of the workplan) when aborted; a workplan is then read no
   * further, and a task it yields as or after it aborts is not queued.
   */
  signal?: AbortSignal;
  /** Overrides the pool's timeout for these tasks (seconds; 0 for none). */
  timeout?: number;
  /**
   * Whether a workplan's report keeps every outcome (true). With false the report has counts
   * only, outcomes reach you by iterating the workplan (from the start) or through events, and
   * memory stays proportional to `pending`, however long the workplan: a slow reader holds the
   * workplan back.
   */
  keep?: boolean;
}

const known = new Set([
  'size',
  'recruiter',
  'retries',
  'timeout',
  'pipeline',
  'pending',
  'linger',
  'startTimeout',
  'dispatcher',
  'output',
]);

export function checkPoolOptions(options: PoolOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('Pool: options must be an object');
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new TypeError(`Pool: unknown option ${key} (known: ${[...known].join(', ')})`);
  }
  const counts: [keyof PoolOptions, number][] = [
    ['size', 1],
    ['retries', 0],
    ['pipeline', 1],
    ['pending', 1],
  ];
  for (const [key, min] of counts) {
    const value = options[key];
    if (value !== undefined && !(Number.isInteger(value) && (value as number) >= min)) {
      throw new RangeError(`Pool: ${key} must be an integer of at least ${min}, got ${String(value)}`);
    }
  }
  for (const key of ['timeout', 'linger', 'startTimeout'] as const) {
    const value = options[key];
    if (value !== undefined && !(typeof value === 'number' && value >= 0 && Number.isFinite(value))) {
      throw new RangeError(`Pool: ${key} must be a non-negative number of seconds, got ${String(value)}`);
    }
  }
  if (options.recruiter !== undefined) {
    const r = options.recruiter as unknown as Record<string, unknown>;
    if (!['recruit', 'deploy', 'dismiss'].every((m) => typeof r?.[m] === 'function')) {
      throw new TypeError('Pool: recruiter must implement recruit, deploy and dismiss (the Recruiter protocol)');
    }
  }
  if (options.dispatcher !== undefined && !(options.dispatcher instanceof Dispatcher)) {
    throw new TypeError('Pool: dispatcher must be a Dispatcher');
  }
  if (options.output !== undefined) checkOutput(options.output, 'Pool: output');
}

/** Checks the options of one `submit` or `assemble` call, before anything is queued. */
export function checkRun(options: RunOptions, method: string): void {
  if (options === null || typeof options !== 'object') throw new TypeError(`${method}: options must be an object`);
  const { timeout, signal } = options;
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout >= 0 && Number.isFinite(timeout))) {
    throw new RangeError(`${method}: timeout must be a non-negative number of seconds, got ${String(timeout)}`);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`${method}: signal must be an AbortSignal`);
  }
}
