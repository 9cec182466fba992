/**
 * pyre's crew: the member's side of the crew protocol (protocol.ts). It says it is ready, then
 * runs the tasks its team sends, one at a time and in order, marking each in the begun word
 * before it begins, and reports them, several to a frame.
 */
// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import { ConnectionResetError, FrameTooLargeError } from '../../errors.js';
import { adopt, type Channel } from '../../ipc/channel.js';
import { Dispatcher } from '../../ipc/dispatcher.js';
import { NOTHING } from '../../ipc/marshaler.js';
import { native } from '../../native.js';
import { checkOptions, instance, integer, orNull, type Rules } from '../../options.js';
import { importModule } from '../loader.js';
import { CrewStatus, type ErrorRecord, isTaskClass, recordError, revive, type Task, TaskStatus } from './crossing.js';
import {
  type Assignment,
  CANCEL,
  CREW_MAX_FRAME,
  checkTeamMessage,
  claim,
  encode,
  encodeReports,
  nextSeq,
  REPORT_FIELDS,
  REPORTS,
  type Report,
  receive,
  sendReady,
  sendReturned,
  sendStarted,
  TASK_FIELDS,
  TASKS,
  UNBOUNDED,
} from './protocol.js';

/** Options of {@link Crew.work}. */
export interface WorkOptions {
  /** Microseconds it polls before sleeping (DispatcherOptions.spin; 0, which suits a member sharing a thread). */
  spin?: number;
  /** The begun word it shares with its team (see the crew protocol), if any. */
  begun?: Int32Array | null;
}

const WORK_OPTIONS: Rules<WorkOptions> = {
  spin: integer(0, 1_000_000, 'a whole number of microseconds from 0 to 1000000'),
  begun: orNull(instance(Int32Array, 'an Int32Array')),
};

/** pyre's crew: the worker side of a team's member, for recruiters of your own. */
// biome-ignore lint/complexity/noStaticOnlyClass: pyre's name for the worker side; `Crew.work` is its API
export class Crew {
  /**
   * Runs a member wherever it lives, on its end of the channel: says the member is ready, runs
   * the tasks it receives, and resolves when the team closes the channel.
   */
  static work(channel: Channel, id: number, options: WorkOptions = {}): Promise<void> {
    try {
      checkOptions('Crew.work', options, WORK_OPTIONS);
    } catch (error) {
      return Promise.reject(error);
    }
    return work(channel, id, options.spin ?? 0, undefined, options.begun ?? null);
  }
}

/** A run of tasks longer than this (ms) looks for the next tasks before it returns to the loop. */
const RECHECK_AFTER_MS = 0.05;

/**
 * A member's life, from its entry (member.cts): serves the team on the channel at descriptor `fd`
 * until the team closes it. A process member watches its parent, so that it never outlives its
 * team, even inside a task that never yields; one whose team watched its stderr while it started
 * (Fork) takes the team's own back before it says it is ready.
 */
export async function serve(
  fd: number,
  id: number,
  options: {
    spin: number;
    warm: string;
    watchParent: boolean;
    begun: Int32Array | null;
    takeBackStderr?: boolean;
    /** A thread's flag, set once `fd` is its own: until then its team closes `fd` if the thread dies. */
    adopted?: Int32Array | null;
  },
): Promise<void> {
  const { spin, warm, watchParent, begun, takeBackStderr = false, adopted = null } = options;
  if (watchParent) native.watchParent();
  if (takeBackStderr) native.takeBackStderr();
  const channel = adopt(fd);
  if (adopted !== null) Atomics.store(adopted, 0, 1);
  await work(channel, id, Number.isInteger(spin) ? spin : 0, warm, begun);
}

/** The begun word a Fork member's team shared with it on fd 4 (see the crew protocol). */
export function inheritedBegunWord(): Int32Array {
  const words = native.inheritedWords(1);
  return new Int32Array(words.buffer, words.byteOffset, 1);
}

/**
 * The worker side: says it is ready, then runs the tasks it receives until the team closes the
 * channel. Resolves when the channel has ended. `warm`: a module of the library's own to import
 * while the team answers READY (see member.cts); never a task module, whose code could take the
 * member down before any task of it was dealt, and be charged to none.
 */
export async function work(
  channel: Channel,
  id: number,
  spin = 0,
  warm?: string,
  begun: Int32Array | null = null,
): Promise<void> {
  channel.outputBound = UNBOUNDED;
  const dispatcher = new Dispatcher({ spin });
  const queue: Assignment[] = [];
  const sentClasses: [module: string, name: string][] = []; // by number, as the team sent them
  let reports: unknown[] = []; // flat: REPORT_FIELDS a report
  let running = false;
  let received = 0; // the number of the last task that arrived (see the begun word)
  let claimed = 0; // the number of the last task begun
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
  const started = (taskId: number): void => toTeam(() => sendStarted(channel, taskId));

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
      if (begun !== null) {
        if (!claim(begun, claimed, next[4])) {
          // The team took this task and those after it back: they go with its CANCEL, next.
          queue.unshift(next);
          flush();
          break;
        }
        claimed = next[4];
      }
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
      for (let message = receive(channel); message !== NOTHING; message = receive(channel)) {
        const checked = checkTeamMessage(message);
        if (checked?.kind === TASKS) {
          for (const added of checked.added) sentClasses.push(added);
          const list = checked.assignments;
          for (let i = 0; i < list.length; i += TASK_FIELDS) {
            const id = list[i] as number;
            const at = list[i + 1] as number;
            const state = list[i + 2] as Record<string, unknown>;
            const named = sentClasses[at];
            if (named === undefined) {
              throw new Error(`the team sent task ${id} of class ${at}, which it never named (crew protocol)`);
            }
            received = nextSeq(received);
            queue.push([id, named[0], named[1], state, received]);
          }
        } else if (checked?.kind === CANCEL) {
          // Only a task still waiting here can be given back; one already begun is reported.
          const returned = checked.ids.filter((id) => {
            const at = queue.findIndex(([queued]) => queued === id);
            if (at !== -1) queue.splice(at, 1);
            return at !== -1;
          });
          sendReturned(channel, returned); // every CANCEL is answered, even by none
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
  toTeam(() => sendReady(channel, id));
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
  const whole = encodeReports(batch);
  if (travels(whole)) {
    channel.sendFrame(whole);
    return;
  }
  for (let at = 0; at < batch.length; at += REPORT_FIELDS) {
    const report = batch.slice(at, at + REPORT_FIELDS) as Report;
    const alone = batch.length === REPORT_FIELDS ? whole : encodeReports(report);
    channel.sendFrame(travels(alone) ? alone : encode([REPORTS, unsendable(report, alone)]));
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
