/**
 * The crew (pyre's `crew`): twins joined by a channel. The team side sends tasks and reads
 * reports; the worker side ({@link work}) runs the tasks it receives, one at a time, in order.
 *
 * The protocol, one array per frame (JSON, or V8-serialized when JSON cannot carry it):
 * - worker → team `[READY, id]` once at start-up (the member is healthy);
 * - team → worker `[TASKS, [[module, name], …], [taskId, class, state, taskId, class, state, …]]`:
 *   several tasks per frame, each naming its class by its number; the first list holds the
 *   classes this member has not been sent yet, which take the next numbers (the first class sent
 *   is 0);
 * - team → worker `[CANCEL, taskId]`: skip that task if it has not started;
 * - worker → team `[REPORTS, [taskId, crewStatus, taskStatus, value, ms, taskId, …]]`, where value
 *   is the result, or an {@link ErrorRecord} when the task did not complete;
 * - worker → team `[STARTED, taskId]` when a task begins after its module was imported, so that
 *   importing does not count against the task's timeout.
 * The team closing its end ends the worker. Tasks and reports go in flat lists, not a list per
 * task, which a frame of many would otherwise decode to one array each.
 */

// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import { ConnectionResetError, FrameTooLargeError } from '../errors.js';
import { adopt, type Channel } from '../ipc/channel.js';
import { Dispatcher } from '../ipc/dispatcher.js';
import { HybridMarshaler } from '../ipc/marshaler.js';
import { native } from '../native.js';
import { importModule } from './loader.js';
import {
  CrewStatus,
  type ErrorRecord,
  isTaskClass,
  recordError,
  revive,
  type Task,
  type TaskAddress,
  TaskStatus,
} from './task.js';

export const READY = 0;
export const TASKS = 1;
export const CANCEL = 2;
export const REPORTS = 3;
export const STARTED = 4;
/** The fields of a task in a TASKS frame, and of a report in a REPORTS frame. */
export const TASK_FIELDS = 3;
export const REPORT_FIELDS = 5;

/** A task as the worker receives it. */
export type Assignment = [id: number, module: string, name: string, state: Record<string, unknown>];
/** What the worker says of one task. */
export type Report = [id: number, crew: CrewStatus, status: TaskStatus, value: unknown, ms: number];

/** How the team ends a member: gently (close, then reap) or at once (kill, then reap). */
export interface Enlistment {
  /** Ends the member now (SIGKILL, or terminating the thread). */
  kill(): void;
  /** How it ended, once it has (for a process: after reaping it); null while it runs. */
  exited(): { code?: number | null; signal?: number | string | null } | null;
  /** Why the member died, when the recruiter knows (a worker thread's uncaught error). */
  cause?(): string | null;
}

/** The team side of a crew member: its channel, and the tasks it holds, in the order sent. */
export class Crew {
  /** Where the member is in its life: registered (starting), active, or retired. */
  state: 'registered' | 'active' | 'retired' = 'registered';
  /** Ids of the tasks sent and not yet reported, oldest (the one running) first. */
  readonly jobs: number[] = [];
  /** When the oldest task began (ms, performance.now()); NaN before the first. */
  headStart = Number.NaN; // a double from the start: see Pool's #idleSince
  /** @internal When its team recruited it (ms, performance.now()): its start-up is timed from then. */
  recruitedAt = Number.NaN;
  /**
   * @internal The task classes the member has imported, as far as the team knows: until it says
   * a class's module is imported, a task of it has no time running.
   */
  readonly imported = new Set<TaskAddress>();

  // The task classes this member has been sent, by module URL, then export name: their numbers
  // in the protocol, in the order sent (see TASKS).
  readonly #classes = new Map<string, Map<string, number>>();
  #classCount = 0;

  /** @internal The number this member knows a task class by, if it has been sent it. */
  classNumber(module: string, name: string): number | undefined {
    return this.#classes.get(module)?.get(name);
  }

  /** @internal How many task classes this member has been sent. */
  get classCount(): number {
    return this.#classCount;
  }

  /** @internal Numbers `added` (classes just sent) after those already known. */
  learn(added: [module: string, name: string][]): void {
    for (const [module, name] of added) {
      const byName = this.#classes.get(module) ?? new Map<string, number>();
      this.#classes.set(module, byName);
      byName.set(name, this.#classCount++);
    }
  }

  constructor(
    /** The member's pid, or thread id. */
    readonly id: number,
    readonly channel: Channel,
    readonly enlistment: Enlistment,
  ) {
    channel.outputBound = UNBOUNDED;
  }

  /**
   * The worker side of a member, for recruiters of your own: run it wherever the member lives,
   * on its end of the channel. It says the member is ready, runs the tasks it receives, and
   * resolves when the team closes the channel. `spin`: microseconds it polls before sleeping
   * (DispatcherOptions.spin; 0 by default, which suits a member sharing a thread with others).
   */
  static work(channel: Channel, id: number, options: { spin?: number } = {}): Promise<void> {
    return work(channel, id, options.spin);
  }
}

const marshaler = new HybridMarshaler();

/**
 * The output bound of crew channels. What is in flight is already bounded by the pool's
 * `pipeline`, so a busy peer that stops reading for a while must not make a send fail: large
 * task states or results would otherwise exceed the default 1 MiB and cost the member its life.
 */
const UNBOUNDED = 0xffffffff;

/** The largest frame either end of a crew channel accepts: the channels' default, which both keep. */
export const CREW_MAX_FRAME = native.DEFAULT_MAX_FRAME;

/** A run of tasks longer than this (ms) looks for the next tasks before it returns to the loop. */
const RECHECK_AFTER_MS = 0.05;

/**
 * A member's life, from its entry (member.cts): serves the team on the channel at descriptor `fd`
 * until the team closes it. A process member watches its parent, so that it never outlives its
 * team, even inside a task that never yields.
 */
export async function serve(
  fd: number,
  id: number,
  { spin, warm, watchParent }: { spin: number; warm: string; watchParent: boolean },
): Promise<void> {
  if (watchParent) native.watchParent();
  await work(adopt(fd), id, Number.isInteger(spin) ? spin : 0, warm);
}

/**
 * The worker side: says it is ready, then runs the tasks it receives until the team closes the
 * channel. Resolves when the channel has ended. `warm`: a module of the library's own to import
 * while the team answers READY (see member.cts); never a task module, whose code could take the
 * member down before any task of it was dealt, and be charged to none.
 */
export async function work(channel: Channel, id: number, spin = 0, warm?: string): Promise<void> {
  channel.outputBound = UNBOUNDED;
  const dispatcher = new Dispatcher({ spin });
  const queue: Assignment[] = [];
  const sentClasses: [module: string, name: string][] = []; // by number, as the team sent them
  let reports: unknown[] = []; // flat: REPORT_FIELDS a report
  let running = false;
  let lastFlush = performance.now();
  // The team went away without reading what we sent: the channel reads a reset, and reports
  // cannot go out. That ends the member's life like an end of file, not with an error.
  let gone = false;
  const teamGone = (error: unknown): void => {
    if (!(error instanceof ConnectionResetError)) throw error;
    gone = true;
    queue.length = 0;
    dispatcher.stop();
  };
  // Sends to the team, unless it has gone; finding it gone ends the member as above.
  const toTeam = (sending: () => void): void => {
    if (gone) return;
    try {
      sending();
    } catch (error) {
      teamGone(error);
    }
  };
  // A task begins after its module was imported: the import does not count against a timeout.
  const started = (taskId: number): void => toTeam(() => marshaler.send([STARTED, taskId], channel));

  const flush = () => {
    lastFlush = performance.now();
    if (reports.length === 0) return;
    const batch = reports;
    reports = [];
    toTeam(() => send(channel, batch));
  };

  // Runs the queue; synchronous tasks run back to back within one turn, without promise jobs.
  // When it runs dry after a while, the tasks the team sent meanwhile are taken from the channel
  // at once: going back to the event loop for them cost about 60 µs between two tasks. After a
  // short run nothing is likely to be there, and asking would cost a system call.
  const run = (): void => {
    running = true;
    const began = performance.now();
    for (;;) {
      let next = queue.shift();
      if (next === undefined && performance.now() - began > RECHECK_AFTER_MS) {
        channel.recheck(); // the poll has not looked since this turn began
        take();
        next = queue.shift();
      }
      if (next === undefined) break;
      const report = execute(next, started);
      if (report instanceof Promise) {
        flush(); // finished tasks' reports do not wait for an import or an async task
        void report.then((done) => {
          finished(done);
          run();
        });
        return;
      }
      finished(report);
    }
    running = false;
  };

  // One frame for what finished together; a slow task's report goes out at once.
  const finished = (report: Report): void => {
    reports.push(report[0], report[1], report[2], report[3], report[4]);
    if (queue.length === 0 || performance.now() - lastFlush > 1) flush();
  };

  // Queues the tasks that have arrived and drops those cancelled.
  const take = (): void => {
    if (gone) return;
    try {
      for (let message = marshaler.recv(channel); message !== undefined; message = marshaler.recv(channel)) {
        const [kind, body, tasks] = message as [number, unknown, unknown];
        if (kind === TASKS) {
          if (!Array.isArray(body)) {
            throw new Error(`the team sent a malformed list of task classes (crew protocol): ${typeof body}`);
          }
          if (!Array.isArray(tasks) || tasks.length % TASK_FIELDS !== 0) {
            const got = Array.isArray(tasks) ? `${tasks.length} fields` : typeof tasks;
            throw new Error(
              `the team sent a malformed task list (crew protocol): ${got}, not a multiple of ${TASK_FIELDS} (the fields of one task)`,
            );
          }
          for (const added of body as [module: string, name: string][]) sentClasses.push(added);
          const list = tasks as unknown[];
          for (let i = 0; i < list.length; i += TASK_FIELDS) {
            const id = list[i] as number;
            const at = list[i + 1] as number;
            const state = list[i + 2] as Record<string, unknown>;
            const named = sentClasses[at];
            if (named === undefined) {
              throw new Error(`the team sent task ${id} of class ${at}, which it never named (crew protocol)`);
            }
            queue.push([id, named[0], named[1], state]);
          }
        } else if (kind === CANCEL) {
          // Only a task still waiting here can be skipped; one already run is reported anyway.
          const at = queue.findIndex(([id]) => id === body);
          if (at !== -1) queue.splice(at, 1);
        }
      }
    } catch (error) {
      teamGone(error);
    }
  };

  dispatcher.whenReadReady(channel, () => {
    take();
    if (channel.atEnd || gone) {
      dispatcher.stop();
      return false;
    }
    if (!running && queue.length > 0) run();
    return true;
  });
  toTeam(() => marshaler.send([READY, id], channel));
  if (gone) return;
  // A warm-up only: if it fails, the tasks' own imports load what they need, or say why not.
  if (warm !== undefined) importModule(warm).catch(() => {});
  await dispatcher.watch();
}

/**
 * Sends reports, in one frame when they fit. Otherwise each goes in its own, and one that cannot
 * travel (a result that does not serialize, or is larger than a frame) becomes an abort that
 * says why: the team would refuse the frame, and lose the member with it.
 */
function send(channel: Channel, batch: unknown[]): void {
  const whole = reportsFrame(batch);
  if (travels(whole)) {
    channel.sendFrame(whole);
    return;
  }
  for (let at = 0; at < batch.length; at += REPORT_FIELDS) {
    const report = batch.slice(at, at + REPORT_FIELDS) as Report;
    const alone = batch.length === REPORT_FIELDS ? whole : reportsFrame(report);
    channel.sendFrame(travels(alone) ? alone : marshaler.encode([REPORTS, unsendable(report, alone)]));
  }
}

/** The frame that carries `reports` (flat), or why they cannot be encoded. */
function reportsFrame(reports: unknown[]): Buffer | Error {
  try {
    return marshaler.encode([REPORTS, reports]);
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

function travels(frame: Buffer | Error): frame is Buffer {
  return !(frame instanceof Error) && frame.length <= CREW_MAX_FRAME;
}

/** An abort in place of a report whose `frame` cannot travel (too large, or not encoded), saying why. */
function unsendable(report: Report, frame: Buffer | Error): Report {
  let record: ErrorRecord;
  if (frame instanceof Error) {
    record = recordError(frame);
    record.message = `the task's result cannot be sent back to the team: ${record.message}`;
  } else {
    const message = `the task's result is ${frame.length} bytes encoded, more than the ${CREW_MAX_FRAME} bytes a frame between team and member may carry (with its report)`;
    record = recordError(new FrameTooLargeError(message, 'ERR_NEXUS_FRAME_TOO_LARGE'));
  }
  return [report[0], CrewStatus.healthy, TaskStatus.aborted, record, report[4]];
}

/** Runs one task: synchronously when its class is loaded and it returns a plain value. */
function execute(assignment: Assignment, started: (id: number) => void): Report | Promise<Report> {
  const id = assignment[0];
  const module = assignment[1];
  const name = assignment[2];
  const state = assignment[3];
  const Class = classes.get(module)?.get(name);
  if (Class === undefined) {
    return load(module, name).then(
      () => {
        started(id);
        return execute(assignment, started);
      },
      (error: unknown) => failure(id, error, performance.now()),
    );
  }
  const start = performance.now();
  let result: unknown;
  try {
    result = revive(Class, state).execute();
  } catch (error) {
    return failure(id, error, start);
  }
  if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') {
    return Promise.resolve(result).then(
      (value) => [id, CrewStatus.healthy, TaskStatus.completed, value, since(start)],
      (error: unknown) => failure(id, error, start),
    );
  }
  return [id, CrewStatus.healthy, TaskStatus.completed, result, since(start)];
}

/**
 * Milliseconds since `start`, to the microsecond: the team needs no more, and a double printed in
 * full is most of a small report's JSON and slow to parse.
 */
function since(start: number): number {
  return Math.round((performance.now() - start) * 1000) / 1000;
}

function failure(id: number, error: unknown, start: number): Report {
  const record: ErrorRecord = recordError(error);
  const status = record.recoverable ? TaskStatus.failed : TaskStatus.aborted;
  return [id, CrewStatus.healthy, status, record, since(start)];
}

/** Task classes by module URL, then export name. */
const classes = new Map<string, Map<string, abstract new () => Task>>();

/** The task class `name` of `module`, imported once per worker. */
async function load(module: string, name: string): Promise<abstract new () => Task> {
  let namespace: Record<string, unknown>;
  try {
    namespace = await importModule(module);
  } catch (cause) {
    throw new Error(`cannot import task module ${module}: ${(cause as Error).message}`, { cause });
  }
  const Class = namespace[name];
  if (!isTaskClass(Class)) {
    throw new TypeError(`task module ${module} exports no task class named ${name}`);
  }
  const exports = classes.get(module) ?? new Map<string, abstract new () => Task>();
  classes.set(module, exports.set(name, Class));
  return Class;
}
