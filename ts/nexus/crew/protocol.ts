/**
 * The crew protocol: every message between a team and its members, for both sides. One array
 * per frame, JSON where JSON can carry it and V8-serialized otherwise (HybridMarshaler):
 *
 * - member → team `[READY, id]`, once at start-up: the member is healthy.
 * - team → member `[TASKS, [[module, name], …], [taskId, class, state, taskId, class, state, …]]`:
 *   several tasks per frame, each naming its class by number. The first list holds the classes
 *   this member has not been sent yet; they take the next numbers (the first class sent is 0).
 * - team → member `[CANCEL, [taskId, …]]`: give these back if they have not begun. The member
 *   answers every CANCEL, in order, with `[RETURNED, [taskId, …]]`: those it took off its queue
 *   (perhaps none); a task it had already begun is reported as usual.
 * - member → team `[REPORTS, [taskId, crewStatus, taskStatus, value, ms, taskId, …]]`, where value
 *   is the result, or an {@link ErrorRecord} when the task did not complete.
 * - member → team `[STARTED, taskId]` when a task begins after its module was imported, so that
 *   importing does not count against the task's timeout.
 * The team closing its end ends the member. Tasks and reports go in flat lists, not a list per
 * task, which a frame of many would otherwise decode to one array each.
 *
 * ## What a member has begun: the begun word
 * A member runs its tasks one at a time, in the order sent, and holds finished reports back
 * briefly so that one frame carries many. When it dies, the team must know which of the tasks it
 * held may have run, to charge each an attempt (a task never runs more often than it says), and
 * which never began, to run those elsewhere at no charge. Asking would cost a system call a task;
 * instead the two sides share a word of memory (a SharedArrayBuffer for a thread, a memory region
 * mapped by both processes for a Fork member). Both number the tasks sent to the member, 1, 2, 3…
 * in the order sent ({@link nextSeq}), and the member claims each task before it begins it by
 * swapping the number of the one it began last for this one ({@link claim}): one atomic
 * instruction, no system call. Since tasks begin in order, the tasks held up to the one the word
 * names have begun, and those after it have not ({@link begunCount}).
 *
 * The word also lets the team take unbegun tasks back from a member busy in a long task, which
 * cannot read a message until that task ends: it sets the word's fence bit by the same atomic
 * swap ({@link fence}), so that the member's next claim fails, and every task after the one the
 * word names is the team's again, to deal to members with nothing to do. It then sends CANCEL
 * for them; the member drops them when it reads it and answers RETURNED, and once that answer
 * arrives the team lifts the fence ({@link unfence}). A claim that fails leaves the member
 * waiting for that CANCEL. A member without a word (a recruiter of your own that gives none) is
 * taken to have begun every task it holds, and gives tasks back only by answering a CANCEL.
 */
import type { Channel } from '../../ipc/channel.js';
import { HybridMarshaler, NOTHING } from '../../ipc/marshaler.js';
import { native } from '../../native.js';
import { CrewStatus, type ErrorRecord, TaskStatus } from './crossing.js';

export const READY = 0;
export const TASKS = 1;
export const CANCEL = 2;
export const REPORTS = 3;
export const STARTED = 4;
export const RETURNED = 5;
/** The fields of a task in a TASKS frame, and of a report in a REPORTS frame. */
export const TASK_FIELDS = 3;
export const REPORT_FIELDS = 5;

/** The largest frame either end of a crew channel accepts: the channels' default, which both keep. */
export const CREW_MAX_FRAME = native.DEFAULT_MAX_FRAME;

/**
 * The output bound of crew channels. What is in flight is already bounded by the pool's
 * `pipeline`, so a busy peer that stops reading for a while must not make a send fail: large
 * task states or results would otherwise exceed the default 1 MiB and cost the member its life.
 */
export const UNBOUNDED = 0xffffffff;

/** A task as the member receives it, with its number in the order sent (see the begun word). */
export type Assignment = [id: number, module: string, name: string, state: Record<string, unknown>, seq: number];
/** What the member says of one task. */
export type Report = [id: number, crew: number, status: TaskStatus, value: unknown, ms: number];
/** A task class as a TASKS frame names it. */
export type ClassName = [module: string, name: string];

const marshaler = new HybridMarshaler();

/**
 * Reads the next whole message on a crew channel, or {@link NOTHING} when none has arrived yet.
 * What it reads is unchecked: {@link checkTeamMessage} and {@link checkMemberMessage} say what
 * breaks the protocol (a peer's `undefined`, say, is a message that is not a list).
 */
export function receive(channel: Channel): unknown {
  return marshaler.recv(channel);
}

/** Sends `message` on a crew channel (one of the encoders' arrays). */
export function transmit(channel: Channel, message: unknown[]): void {
  marshaler.send(message, channel);
}

/** Encodes a message, for a sender that checks its size before it sends. */
export function encode(message: unknown[]): Buffer {
  return marshaler.encode(message);
}

// ---- team → member ----

/**
 * The TASKS frame that names `added` (classes the member has not been sent) and carries
 * `assignments` (flat: TASK_FIELDS a task). Throws when a task's state cannot be encoded.
 */
export function encodeTasks(added: ClassName[], assignments: unknown[]): Buffer {
  return marshaler.encode([TASKS, added, assignments]);
}

/** Asks a member to give back the tasks `ids` if it has not begun them. */
export function sendCancel(channel: Channel, ids: number[]): void {
  marshaler.send([CANCEL, ids], channel);
}

// ---- member → team ----

export function sendReady(channel: Channel, id: number): void {
  marshaler.send([READY, id], channel);
}

export function sendStarted(channel: Channel, id: number): void {
  marshaler.send([STARTED, id], channel);
}

export function sendReturned(channel: Channel, ids: number[]): void {
  marshaler.send([RETURNED, ids], channel);
}

/** The REPORTS frame for `reports` (flat), or why they cannot be encoded. */
export function encodeReports(reports: unknown[]): Buffer | Error {
  try {
    return marshaler.encode([REPORTS, reports]);
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

// ---- checks: what arrives is checked whole before any of it is acted on ----

/** What the team reads from a member, checked: a kind and its body. */
export type MemberMessage =
  | { kind: typeof READY; id: number }
  | { kind: typeof STARTED; id: number }
  | { kind: typeof REPORTS; reports: unknown[] }
  | { kind: typeof RETURNED; ids: number[] };

/** Checks a message from a member; throws, saying what is wrong, when it breaks the protocol. */
export function checkMemberMessage(message: unknown): MemberMessage {
  if (!Array.isArray(message)) throw new Error(`a message that is not a list: ${describe(message)}`);
  const kind: unknown = message[0];
  const body: unknown = message[1];
  if (kind === REPORTS) {
    if (!Array.isArray(body)) throw new Error(`a malformed list of reports: ${describe(body)}`);
    for (let at = 0; at < body.length; at += REPORT_FIELDS) checkReport(body, at);
    return { kind, reports: body };
  }
  if (kind === STARTED || kind === READY) {
    if (typeof body !== 'number') {
      throw new Error(`a malformed ${kind === READY ? 'READY' : 'STARTED'}: ${describe(body)}, not a number`);
    }
    return { kind, id: body };
  }
  if (kind === RETURNED) {
    if (!Array.isArray(body) || !body.every((id) => typeof id === 'number')) {
      throw new Error(`a malformed RETURNED: ${describe(body)}, not a list of task ids`);
    }
    return { kind, ids: body };
  }
  throw new Error(`an unexpected message: ${describe(kind)}`);
}

/** Throws, saying why, unless `reports` holds a whole report at `at` (see REPORTS). */
function checkReport(reports: unknown[], at: number): void {
  if (at + REPORT_FIELDS > reports.length) {
    throw new Error(
      `a malformed report: a list of ${reports.length} fields, not a multiple of ${REPORT_FIELDS} (the fields of one report)`,
    );
  }
  const id = reports[at];
  const crew = reports[at + 1];
  const status = reports[at + 2];
  const value = reports[at + 3] as Partial<ErrorRecord> | null;
  const ms = reports[at + 4];
  if (typeof id !== 'number') throw new Error(`a malformed report: task id ${describe(id)}`);
  if (crew !== CrewStatus.healthy && crew !== CrewStatus.damaged) {
    throw new Error(`a malformed report: task ${id} with the crew status ${describe(crew)}`);
  }
  if (typeof status !== 'number' || TaskStatus[status] === undefined) {
    throw new Error(`a malformed report: task ${id} with the status ${describe(status)}`);
  }
  if (status !== TaskStatus.completed && (typeof value?.message !== 'string' || typeof value.name !== 'string')) {
    throw new Error(`a malformed report: task ${id} did not complete, and carries no error record`);
  }
  if (typeof ms !== 'number' || !(ms >= 0 && ms < Number.POSITIVE_INFINITY)) {
    throw new Error(`a malformed report: task ${id} took ${describe(ms)} ms`);
  }
}

/** What a member reads from its team, checked. */
export type TeamMessage =
  | { kind: typeof TASKS; added: ClassName[]; assignments: unknown[] }
  | { kind: typeof CANCEL; ids: number[] };

/** Checks a message from the team; throws, saying what is wrong, when it breaks the protocol. */
export function checkTeamMessage(message: unknown): TeamMessage | null {
  if (!Array.isArray(message)) {
    throw new Error(`the team sent a message that is not a list (crew protocol): ${describe(message)}`);
  }
  const [kind, body, tasks] = message as [unknown, unknown, unknown];
  if (kind === TASKS) {
    if (!Array.isArray(body) || !body.every(isClassName)) {
      const got = Array.isArray(body) ? describe(body.find((added) => !isClassName(added))) : typeof body;
      throw new Error(`the team sent a malformed list of task classes (crew protocol): ${got}`);
    }
    if (!Array.isArray(tasks) || tasks.length % TASK_FIELDS !== 0) {
      const got = Array.isArray(tasks) ? `${tasks.length} fields` : typeof tasks;
      throw new Error(
        `the team sent a malformed task list (crew protocol): ${got}, not a multiple of ${TASK_FIELDS} (the fields of one task)`,
      );
    }
    for (let at = 0; at < tasks.length; at += TASK_FIELDS) checkAssignment(tasks, at);
    return { kind, added: body, assignments: tasks };
  }
  if (kind === CANCEL) {
    const ids = typeof body === 'number' ? [body] : body;
    if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'number')) {
      throw new Error(`the team sent a malformed CANCEL (crew protocol): ${describe(body)}, not a list of task ids`);
    }
    return { kind, ids };
  }
  return null; // a kind this member does not know: a newer team's, ignored
}

function isClassName(added: unknown): added is ClassName {
  return Array.isArray(added) && typeof added[0] === 'string' && typeof added[1] === 'string';
}

/** Throws, saying why, unless `tasks` holds a task at `at`: an id, a class number and a state. */
function checkAssignment(tasks: unknown[], at: number): void {
  const id = tasks[at];
  const named = tasks[at + 1];
  const state = tasks[at + 2];
  if (typeof id !== 'number') throw new Error(`the team sent a task with the id ${describe(id)} (crew protocol)`);
  if (!Number.isInteger(named) || (named as number) < 0) {
    throw new Error(`the team sent task ${id} of class ${describe(named)}, not a class number (crew protocol)`);
  }
  if (typeof state !== 'object' || state === null) {
    throw new Error(`the team sent task ${id} with the state ${describe(state)}, not an object (crew protocol)`);
  }
}

/** What a peer sent, for an error: short, and safe for any value (String() of some objects throws). */
function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value !== 'object' || value === null) return String(value);
  return Array.isArray(value) ? `a list of ${value.length}` : 'an object';
}

// ---- the begun word ----

/** How many bytes the begun word takes (an Int32Array of one element over them). */
export const BEGUN_BYTES = 4;
/** Task numbers take the word's low 30 bits, and wrap; the next bit is the fence. */
const SEQ_MASK = 0x3fffffff;
const FENCE = 0x40000000;
/** A task numbered within this many below the word's has begun (numbers wrap). */
const WINDOW = 0x20000000;

/** The number of the task sent after task `seq` (the first is 1). */
export function nextSeq(seq: number): number {
  return (seq + 1) & SEQ_MASK;
}

/**
 * The member's side: claims task `seq` before it begins it, `last` being the task it claimed
 * before (0 at first). False when the team has fenced the member: the task is no longer its own.
 */
export function claim(word: Int32Array, last: number, seq: number): boolean {
  return Atomics.compareExchange(word, 0, last, seq) === last;
}

/**
 * The team's side: how many of the tasks a member holds, numbered `seqs` in the order sent, it has
 * begun. Without a word, all of them: the team cannot know, so it counts them as begun.
 */
export function begunCount(word: Int32Array | null, seqs: readonly number[]): number {
  if (word === null) return seqs.length;
  const last = Atomics.load(word, 0) & SEQ_MASK;
  let begun = 0;
  while (begun < seqs.length && ((last - (seqs[begun] as number)) & SEQ_MASK) < WINDOW) begun++;
  return begun;
}

/**
 * The team's side: fences the member off every task after the one it began last, and returns
 * that one's number; null when it is fenced already.
 */
export function fence(word: Int32Array): number | null {
  for (;;) {
    const seen = Atomics.load(word, 0);
    if ((seen & FENCE) !== 0) return null;
    // The member only moves forward, and only by a few tasks while we try: this ends.
    if (Atomics.compareExchange(word, 0, seen, seen | FENCE) === seen) return seen;
  }
}

/** The team's side: lets the member claim tasks again. */
export function unfence(word: Int32Array): void {
  Atomics.and(word, 0, SEQ_MASK);
}
