/**
 * `pyre-nexus/task`: what a task module needs, without the rest of the library: the Task base
 * class, the codes that say how a task went, and the errors a task throws.
 *
 * One module that imports nothing, and the home of these classes (the library re-exports them):
 * a worker imports it with the first task module that imports it, and each further module would
 * cost a fresh worker about 0.7 ms before its first task.
 *
 * @module pyre-nexus/task
 */

/** The base class of every pyre-nexus error (pyre's `NexusError`). */
export class NexusError extends Error {
  /** A stable identifier, such as `ERR_NEXUS_BAD_ADDRESS`. */
  readonly code: string;

  constructor(message: string, code = 'ERR_NEXUS', options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A task failed for a reason that may pass: running it again may succeed. */
export class RecoverableError extends NexusError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'ERR_NEXUS_RECOVERABLE', options);
  }
}

/** What happened to a task (pyre's `taskcodes`). */
export enum TaskStatus {
  /** It succeeded. */
  completed = 0,
  /** It failed for a reason that may pass (a RecoverableError): run it again. */
  failed = 1,
  /** It can never succeed: drop it and tell the user. */
  aborted = 2,
  /** Its worker was compromised: run it elsewhere and retire the worker. */
  damaged = 3,
}

/** How a crew member is after its latest task (pyre's `crewcodes`). */
export enum CrewStatus {
  healthy = 0,
  damaged = 1,
}

/**
 * The key under which Node's `util.inspect` (and so `console.log`) looks for an object's own
 * view; a registered symbol, so that this module need not import node:util.
 */
const inspectCustom: unique symbol = Symbol.for('nodejs.util.inspect.custom');

/** What `util.inspect` passes to a custom view: the options it was given, with `stylize`. */
interface InspectOptions {
  depth?: number | null;
  stylize(text: string, style: string): string;
}

// A task instance is callable: `task()` runs `task.execute()`, as pyre's `__call__` does.
export interface Task<R = unknown> {
  // biome-ignore lint/style/useShorthandFunctionType: a call signature, so that it merges
  (): R | Promise<R>;
}

/**
 * The base class of tasks. Subclasses implement {@link execute} and say where workers find them
 * with `static module = import.meta.url`; the class must be exported from that module under
 * its own name (or under `static exportName`). A task is a function object (calling it runs it),
 * whose own `name` and `length` are read-only: a field of that name must be declared as a class
 * field (TypeScript: with `useDefineForClassFields`, the default from target ES2022).
 *
 * ```ts
 * export class Square extends Task<number> {
 *   static module = import.meta.url;
 *   constructor(readonly n: number) { super(); }
 *   execute() { return this.n * this.n; }
 * }
 * ```
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the class's instances are callable
export abstract class Task<R = unknown> {
  /** The URL of the module that exports this class (`import.meta.url`). */
  static module?: string;
  /** The name the module exports this class under; the class's name when absent. */
  static exportName?: string;

  constructor() {
    // A function object with this class's prototype: callable, and an instance of the class.
    const self = (() => (self as unknown as Task<R>).execute()) as unknown as Task<R>;
    Object.setPrototypeOf(self, new.target.prototype);
    // biome-ignore lint/correctness/noConstructorReturn: that is how a class instance is callable
    return self;
  }

  /** The body of the task; may be async. Throw a RecoverableError for a failure that may pass. */
  abstract execute(): R | Promise<R>;

  /**
   * How `util.inspect` and `console.log` show a task: its class and its fields, the state that
   * travels to a worker (`Square { n: 3 }`), rather than the function object it is made of.
   * @internal Node calls it; a program has no reason to.
   */
  [inspectCustom](
    depth: number,
    options: InspectOptions,
    inspect: (value: unknown, options: object) => string,
  ): string {
    const name = this.constructor.name;
    if (depth < 0) return options.stylize(`[${name}]`, 'special');
    return `${name} ${inspect({ ...this }, { ...options, depth })}`;
  }
}
