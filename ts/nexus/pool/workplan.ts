/**
 * Workplans: a workplan being carried out ({@link Workplan}: awaitable for its report, iterable
 * for its outcomes), and the reader that takes its tasks lazily, under the pool's bound on
 * pending tasks.
 */
// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import { type InspectOptionsStylized, inspect } from 'node:util';
import { NexusError } from '../../errors.js';
import { type Task, TaskStatus } from '../crew/crossing.js';
import type { RunOptions } from './options.js';

/** How one task ended. */
export interface Outcome<R = unknown> {
  /** Its place in the workplan (submission order), or -1 for a task given to `submit`. */
  index: number;
  task: Task<R>;
  status: TaskStatus.completed | TaskStatus.aborted;
  /** The result, when completed. */
  result?: R;
  /** Why it was aborted. */
  error?: Error;
  /** How many times it was started. */
  attempts: number;
}

/**
 * An outcome as the pool makes it: `util.inspect` shows its task's fields and its status by
 * name (`Outcome { index: 3, task: Square { n: 3 }, status: TaskStatus.completed, result: 9, … }`).
 */
export class Settled<R = unknown> implements Outcome<R> {
  // Declared only, and set by the constructor: in the order a reader expects, and an aborted
  // outcome has no `result` key, a completed one no `error` key.
  declare index: number;
  declare task: Task<R>;
  declare status: TaskStatus.completed | TaskStatus.aborted;
  declare result?: R;
  declare error?: Error;
  declare attempts: number;

  constructor(
    index: number,
    task: Task<R>,
    status: TaskStatus.completed | TaskStatus.aborted,
    value: unknown,
    attempts: number,
  ) {
    this.index = index;
    this.task = task;
    this.status = status;
    if (status === TaskStatus.completed) this.result = value as R;
    else this.error = value as Error;
    this.attempts = attempts;
  }

  [inspect.custom](depth: number, options: InspectOptionsStylized, show: typeof inspect): string {
    if (depth < 0) return options.stylize('[Outcome]', 'special');
    const status = { [inspect.custom]: () => options.stylize(`TaskStatus.${TaskStatus[this.status]}`, 'special') };
    return `Outcome ${show({ ...this, status }, { ...options, depth })}`;
  }
}

/** A workplan's outcomes, in submission order. */
export interface WorkplanReport<R = unknown> {
  outcomes: Outcome<R>[];
  completed: number;
  aborted: number;
  /** Seconds from assembly to the last outcome. */
  seconds: number;
}

/**
 * A workplan being carried out: await it for its {@link WorkplanReport}, or iterate it for the
 * outcomes as they come (completion order).
 */
export class Workplan<R = unknown> implements Promise<WorkplanReport<R>>, AsyncIterable<Outcome<R>> {
  /** Settles once every task has an outcome; rejects if the workplan itself could not be read. */
  readonly report: Promise<WorkplanReport<R>>;
  /** @internal */ source: Iterator<Task<R>> | AsyncIterator<Task<R>> | null;
  /** @internal */ readonly isAsync: boolean;
  /** @internal Tasks read and not yet settled (a count: a set of them cost two hash operations a task). */
  live = 0;
  /** @internal */ reading = false;
  /** @internal Waiting to be read on (see WorkplanReader). */
  hungry = false;
  /** @internal */ submitted = 0;
  /** @internal */ readonly options: RunOptions;
  readonly #keep: boolean;
  readonly #outcomes: Outcome<R>[] = [];
  /** Outcomes not yet taken by the iterator, from #taken on. */
  #arrivals: Outcome<R>[] = [];
  #taken = 0;
  #iterating = false;
  readonly #consumed: () => void;
  #wake: (() => void) | null = null;
  #done = false;
  #error: unknown = undefined;
  #completed = 0;
  #aborted = 0;
  readonly #start = performance.now();
  #resolve!: (report: WorkplanReport<R>) => void;
  #reject!: (error: unknown) => void;

  /** @internal */
  constructor(workplan: Iterable<Task<R>> | AsyncIterable<Task<R>>, options: RunOptions, consumed: () => void) {
    const asyncIterator = (workplan as AsyncIterable<Task<R>>)?.[Symbol.asyncIterator];
    const iterator = (workplan as Iterable<Task<R>>)?.[Symbol.iterator];
    if (typeof asyncIterator !== 'function' && typeof iterator !== 'function') {
      throw new TypeError('assemble: the workplan must be an iterable or async iterable of tasks');
    }
    this.isAsync = typeof asyncIterator === 'function';
    this.source = this.isAsync ? asyncIterator.call(workplan) : (iterator as () => Iterator<Task<R>>).call(workplan);
    this.options = options;
    this.#keep = options.keep ?? true;
    this.#consumed = consumed;
    this.report = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.report.catch(() => {}); // the caller sees the rejection through then() or iteration
  }

  /** @internal Tasks read and not yet done with: running, or (without `keep`) waiting for the reader. */
  get backlog(): number {
    return this.live + (this.#keep ? 0 : this.#arrivals.length - this.#taken);
  }

  // biome-ignore lint/suspicious/noThenProperty: a workplan is awaitable on purpose
  then<A = WorkplanReport<R>, B = never>(
    onFulfilled?: ((report: WorkplanReport<R>) => A | PromiseLike<A>) | null,
    onRejected?: ((error: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.report.then(onFulfilled, onRejected);
  }

  /** The report's `catch`: a workplan is a promise of its report. */
  catch<B = never>(onRejected?: ((error: unknown) => B | PromiseLike<B>) | null): Promise<WorkplanReport<R> | B> {
    return this.report.catch(onRejected);
  }

  /** The report's `finally`. */
  finally(onFinally?: (() => void) | null): Promise<WorkplanReport<R>> {
    return this.report.finally(onFinally);
  }

  get [Symbol.toStringTag](): string {
    return 'Workplan';
  }

  /** How `util.inspect` shows a workplan: how far it has come, not its machinery. */
  [inspect.custom](depth: number, options: InspectOptionsStylized, show: typeof inspect): string {
    if (depth < 0) return options.stylize('[Workplan]', 'special');
    const state = !this.#done ? 'running' : this.#error === undefined ? 'done' : 'failed';
    const progress = { state, read: this.submitted, completed: this.#completed, aborted: this.#aborted };
    return `Workplan ${show(progress, { ...options, depth })}`;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Outcome<R>> {
    this.#iterating = true;
    try {
      for (;;) {
        if (this.#taken < this.#arrivals.length) {
          const outcome = this.#arrivals[this.#taken++] as Outcome<R>;
          if (this.#taken > 1024 && this.#taken * 2 > this.#arrivals.length) {
            this.#arrivals = this.#arrivals.slice(this.#taken);
            this.#taken = 0;
          }
          if (!this.#keep) this.#consumed();
          yield outcome;
          continue;
        }
        if (this.#done) break;
        await new Promise<void>((wake) => {
          this.#wake = wake;
        });
      }
    } finally {
      this.#iterating = false;
    }
    if (this.#error !== undefined) await this.report;
  }

  /** @internal */
  record(outcome: Outcome): void {
    if (this.#keep) this.#outcomes[outcome.index] = outcome as Outcome<R>;
    if (this.#keep || this.#iterating) this.#arrivals.push(outcome as Outcome<R>);
    if (outcome.status === TaskStatus.completed) this.#completed++;
    else this.#aborted++;
    this.#wakeReader();
    this.settleIfDone();
  }

  /** @internal Stops reading the workplan (its end, an error, or cancellation). */
  stopReading(error?: unknown): void {
    if (this.source === null) return;
    const source = this.source;
    this.source = null;
    if (error !== undefined) this.#error = error;
    // Lets a generator run its finally blocks.
    void Promise.resolve()
      .then(() => source.return?.())
      .catch(() => {});
  }

  /** @internal */
  settleIfDone(): void {
    if (this.#done || this.source !== null || this.reading || this.live > 0) return;
    this.#done = true;
    const report: WorkplanReport<R> = {
      outcomes: this.#outcomes,
      completed: this.#completed,
      aborted: this.#aborted,
      seconds: (performance.now() - this.#start) / 1000,
    };
    if (this.#error === undefined) this.#resolve(report);
    else {
      const cause = this.#error as Error;
      const error = new NexusError(
        `the workplan could not be read: ${cause?.message ?? String(cause)}`,
        'ERR_NEXUS_WORKPLAN',
        { cause },
      );
      this.#reject(Object.assign(error, { report }));
    }
    this.#wakeReader();
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

/** What the reader needs of its pool. */
export interface WorkplanSink {
  /** The most tasks of one workplan read ahead of their outcomes. */
  readonly pending: number;
  /** Throws if the pool is closed: a closed pool reads no more. */
  open(method: string): void;
  /** Queues a task read from `plan`. */
  enqueue(task: Task, plan: Workplan): void;
  /** Deals what was queued. */
  schedule(): void;
}

/** Reads workplans on as their outcomes come, once per frame of reports rather than once per task. */
export class WorkplanReader {
  /** Workplans that settled tasks since they were last read. */
  #hungry: Workplan[] = [];

  readonly #sink: WorkplanSink;

  constructor(sink: WorkplanSink) {
    this.#sink = sink;
  }

  /** Whether some workplan waits to be read on. */
  get hungry(): boolean {
    return this.#hungry.length > 0;
  }

  /** Notes that `plan` settled a task: it is read on by the next {@link feedHungry}. */
  settled(plan: Workplan): void {
    if (plan.hungry) return;
    plan.hungry = true;
    this.#hungry.push(plan);
  }

  /** Reads more of a workplan, while it is under the pending bound. */
  feed(plan: Workplan): void {
    const source = plan.source;
    if (source === null || plan.reading) return;
    if (plan.isAsync) {
      if (plan.backlog < this.#sink.pending) void this.#feedAsync(plan);
      return;
    }
    plan.reading = true;
    try {
      // An abort while the workplan is read (by the workplan itself, or a getter of a task as it
      // is queued) stops the reading at once, as it does between reads.
      while (plan.source !== null && plan.backlog < this.#sink.pending) {
        const step = (source as Iterator<Task>).next();
        if (plan.source === null) break;
        if (step.done) {
          plan.stopReading();
          break;
        }
        this.#sink.open('assemble'); // a closed pool reads no more, as with an async workplan
        this.#sink.enqueue(step.value, plan);
      }
    } catch (error) {
      plan.stopReading(error);
    } finally {
      plan.reading = false;
    }
    plan.settleIfDone();
  }

  async #feedAsync(plan: Workplan): Promise<void> {
    plan.reading = true;
    try {
      while (plan.source !== null && plan.backlog < this.#sink.pending) {
        const step = await (plan.source as AsyncIterator<Task>).next();
        if (plan.source === null) break;
        if (step.done) {
          plan.stopReading();
          break;
        }
        this.#sink.open('assemble');
        this.#sink.enqueue(step.value, plan);
        this.#sink.schedule();
      }
    } catch (error) {
      plan.stopReading(error);
    } finally {
      plan.reading = false;
    }
    plan.settleIfDone();
  }

  feedHungry(): void {
    for (let plan = this.#hungry.shift(); plan !== undefined; plan = this.#hungry.shift()) {
      plan.hungry = false;
      this.feed(plan);
    }
  }
}
