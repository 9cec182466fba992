/**
 * How tasks (pyre's `task`) travel. The Task class and the codes that say how a task went
 * (`taskcodes`, `crewcodes`) are defined in the `pyre-nexus/task` entry (../task.ts).
 *
 * A task crosses to a worker as its class's module URL, export name and state (the instance's
 * own enumerable properties, copied when the task is queued, the objects they hold read when it
 * is sent, and encoded as JSON, or by V8's serializer when JSON cannot carry them), and is revived
 * there without running its constructor, as pickle does in pyre. Its result crosses back the same
 * way; an error keeps its name, message, stack, code, and whether it was a {@link RecoverableError}.
 */
import { NexusError, RecoverableError, type Task } from '../../task.js';

export { CrewStatus, Task, TaskStatus } from '../../task.js';

/** Where workers find a task's class: the module that exports it, and under which name. */
export interface TaskAddress {
  module: string;
  name: string;
}

/** Says where workers find `task`'s class, or throws naming what the task class lacks. */
export function addressOf(task: unknown): TaskAddress {
  if (!isTaskLike(task)) {
    throw new TypeError(`a workplan holds Task instances, got ${kind(task)}`);
  }
  return whereIs((task as object).constructor as typeof Task);
}

/**
 * A task's state as it travels: a shallow copy of its own fields, taken when the task is queued,
 * so that setting a field afterwards changes nothing of what runs (objects the fields hold are
 * read when the task is sent). A plain object, because a task is a function object, which JSON
 * skips. Throws a TypeError naming the task when a field cannot be read.
 */
export function stateOf(task: Task): Record<string, unknown> {
  try {
    return { ...task };
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new TypeError(`the fields of a ${task.constructor.name} task cannot be read: ${message}`, { cause });
  }
}

// Each class is looked up once: with many small tasks, checking it per task was measurable.
const addresses = new WeakMap<typeof Task, TaskAddress>();

function whereIs(Class: typeof Task): TaskAddress {
  let address = addresses.get(Class);
  if (address !== undefined) return address;
  const module = Object.hasOwn(Class, 'module') ? Class.module : undefined;
  if (typeof module !== 'string' || module === '') {
    throw new TypeError(
      `task class ${Class.name} has no module URL of its own: add \`static module = import.meta.url\` to it, so that workers can import it`,
    );
  }
  const name = Object.hasOwn(Class, 'exportName') ? Class.exportName : Class.name;
  if (typeof name !== 'string' || name === '') {
    throw new TypeError(`task class in ${module} has no name: give it \`static exportName\``);
  }
  address = { module, name };
  addresses.set(Class, address);
  return address;
}

/**
 * Brings a task back to life from its class and state, without running its constructor. The
 * worker only calls `execute()`, so the revived task is a plain object (making it callable would
 * cost a function and a prototype change per task).
 */
export function revive(Class: abstract new () => Task, state: Record<string, unknown>): Task {
  return Object.assign(Object.create(Class.prototype) as Task, state);
}

/** Whether `value` is a class a worker can run: its prototype has an `execute` method. */
export function isTaskClass(value: unknown): value is abstract new () => Task {
  return typeof value === 'function' && typeof (value.prototype as Task | undefined)?.execute === 'function';
}

// A task made by a second copy of this module (another path to pyre-nexus) is still a task.
function isTaskLike(value: unknown): boolean {
  return typeof value === 'function' && typeof (value as Partial<Task>).execute === 'function';
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no class'})`;
  return typeof value;
}

/** An error as it travels back from a worker. */
export interface ErrorRecord {
  name: string;
  message: string;
  stack: string | undefined;
  code: unknown;
  recoverable: boolean;
}

/** Flattens what a task threw, keeping what the caller needs to act on it. */
export function recordError(error: unknown): ErrorRecord {
  if (error instanceof Error) {
    return {
      name: error.name,
      message: error.message,
      stack: error.stack,
      code: (error as { code?: unknown }).code,
      recoverable: isRecoverable(error),
    };
  }
  return {
    name: 'Error',
    message: `a task threw a non-error: ${String(error)}`,
    stack: undefined,
    code: undefined,
    recoverable: false,
  };
}

/** The error a caller sees: a RecoverableError when it was one, an Error otherwise. */
export function restoreError(record: ErrorRecord): Error {
  const error: Error = record.recoverable ? new RecoverableError(record.message) : new Error(record.message);
  error.name = record.name;
  if (record.stack !== undefined) error.stack = record.stack;
  if (record.code !== undefined)
    Object.defineProperty(error, 'code', { value: record.code, enumerable: true, writable: true, configurable: true });
  return error;
}

// By class or by name along the prototype chain: a task module may hold its own copy of the class.
function isRecoverable(error: Error): boolean {
  if (error instanceof RecoverableError) return true;
  for (let p = Object.getPrototypeOf(error); p !== null; p = Object.getPrototypeOf(p)) {
    if (p.constructor?.name === 'RecoverableError') return true;
  }
  return false;
}

/** A task ran longer than the pool's `timeout`; its worker was replaced. */
export class TaskTimeoutError extends NexusError {}
/** A task's worker died, or was lost, more often than the pool's `retries` allow. */
export class WorkerLostError extends NexusError {}
