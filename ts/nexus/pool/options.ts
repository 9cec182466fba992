/**
 * The pool's options and their checks: a wrong option is refused when the pool is made, or when
 * `submit` or `assemble` is called, with a message that names it.
 */
import { Dispatcher } from '../../ipc/dispatcher.js';
import { boolean, checkOptions, implementing, instance, integer, type Rules, seconds } from '../../options.js';
import { type MemberOutput, memberOutput } from '../output.js';
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

const POOL_OPTIONS: Rules<PoolOptions> = {
  size: integer(1),
  recruiter: implementing('a Recruiter', ['recruit', 'deploy', 'dismiss']),
  retries: integer(0),
  timeout: seconds,
  pipeline: integer(1),
  pending: integer(1),
  linger: seconds,
  startTimeout: seconds,
  dispatcher: instance(Dispatcher),
  output: memberOutput,
};

const RUN_OPTIONS: Rules<RunOptions> = {
  signal: instance(AbortSignal, 'an AbortSignal'),
  timeout: seconds,
  keep: boolean,
};

/** Checks the options of a pool; `owner` is its class's name. */
export function checkPoolOptions(owner: string, options: PoolOptions): void {
  checkOptions(owner, options, POOL_OPTIONS);
}

/** Checks the options of one `submit` or `assemble` call, before anything is queued. */
export function checkRun(options: RunOptions, method: string): void {
  checkOptions(method, options, RUN_OPTIONS);
}

/** Options of {@link Pool.close}. */
export interface CloseOptions {
  /** Aborts the tasks not yet done instead of finishing them, and kills the members (false). */
  force?: boolean;
}

const CLOSE_OPTIONS: Rules<CloseOptions> = { force: boolean };

export function checkClose(options: CloseOptions): void {
  checkOptions('close', options, CLOSE_OPTIONS);
}
