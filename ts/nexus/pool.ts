/**
 * The pool (pyre's `pool`, the default team): crew members in three sets (registered, active,
 * retired) working through a queue of tasks.
 *
 * Beyond pyre: every outcome reaches the caller; `failed` tasks are retried up to a limit;
 * a member that crashes, exits, is killed or sends garbage is `damaged` and its task runs
 * elsewhere while a replacement is recruited; tasks time out and can be cancelled; a workplan
 * is read lazily, under a bound on pending tasks; and a member holds several tasks at once, so
 * that round trips overlap with work.
 */
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import { ConnectionResetError, FrameTooLargeError, NexusError } from '../errors.js';
import { Dispatcher, type HandlerId } from '../ipc/dispatcher.js';
import { HybridMarshaler } from '../ipc/marshaler.js';
import { CANCEL, CREW_MAX_FRAME, type Crew, READY, REPORT_FIELDS, REPORTS, STARTED, TASKS } from './crew.js';
import { Fork } from './fork.js';
import { parentSpin } from './recruiting.js';
import {
  addressOf,
  CrewStatus,
  type ErrorRecord,
  restoreError,
  stateOf,
  type Task,
  type TaskAddress,
  TaskStatus,
  TaskTimeoutError,
  WorkerLostError,
} from './task.js';
import type { Recruiter, Team } from './team.js';

/**
 * Seconds ahead the pool's alarms ring at most: a dispatcher's alarm takes less than 1e9 s, and
 * one that rings early for a deadline further off is armed again.
 */
const ALARM_HORIZON = 86_400;

/** How many members may be starting at a time (see {@link Pool.vacancies}). */
const startingAtOnce = availableParallelism();

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

/** Running counts of the pool's tasks, for a progress display. */
export interface Counts {
  /** Waiting for a member. */
  queued: number;
  /** Held by a member. */
  running: number;
  completed: number;
  /** Attempts that raised a RecoverableError (each is retried, or aborted past the limit). */
  failed: number;
  aborted: number;
}

/** A workplan's outcomes, in submission order. */
export interface WorkplanReport<R = unknown> {
  outcomes: Outcome<R>[];
  completed: number;
  aborted: number;
  /** Seconds from assembly to the last outcome. */
  seconds: number;
}

const marshaler = new HybridMarshaler();

/** What a task's execute() resolves to. */
export type ResultOf<T extends Task> = Awaited<ReturnType<T['execute']>>;

interface Job {
  id: number;
  task: Task;
  /** Where workers find the task's class (shared by the tasks of a class). */
  address: TaskAddress;
  /** The task's state: its fields as they were when it was queued (a shallow copy). */
  fields: Record<string, unknown>;
  state: 'queued' | 'running' | 'done';
  attempts: number;
  /**
   * A member died holding this task and others it had not reported: any of them may have been
   * the one running (members hold finished reports back briefly). Until it reports, the task is
   * dealt alone, so that a crash it causes is told from one its neighbours cause.
   */
  suspect: boolean;
  /** Milliseconds from the start of execution; 0 for no limit. */
  timeout: number;
  member: Crew | null;
  index: number;
  plan: Workplan | null;
  signal: AbortSignal | null;
  onAbort: (() => void) | null;
  resolve: ((value: unknown) => void) | null;
  reject: ((error: unknown) => void) | null;
}

/** Events: `queued`, `started`, `completed`, `failed`, `aborted` (each with the task's details and
 * the {@link Counts}), `recruited` and `retired` (with the member). */
export class Pool extends EventEmitter implements Team {
  readonly size: number;
  readonly recruiter: Recruiter;
  readonly retries: number;
  readonly timeout: number;
  readonly pipeline: number;
  readonly pending: number;
  readonly linger: number;
  readonly startTimeout: number;
  readonly dispatcher: Dispatcher;
  /** Members starting up. */
  readonly registered = new Set<Crew>();
  /** Members ready for work. */
  readonly active = new Set<Crew>();
  /** Members dismissed and not yet reaped. */
  readonly retired = new Set<Crew>();
  readonly counts: Counts = { queued: 0, running: 0, completed: 0, failed: 0, aborted: 0 };

  readonly #jobs = new Map<number, Job>();
  #queue: Job[] = [];
  #head = 0;
  #front: Job[] = [];
  /**
   * Workplans that settled tasks since they were last read: read on by the next #schedule, once
   * per frame of reports rather than once per task.
   */
  #hungry: Workplan[] = [];
  #nextId = 1;
  /** Tasks sent to a member at once: grows when tasks are short, to hide the round trip. */
  #depth = 2;
  #scheduling = false;
  #again = false;
  #taskMs = 0.5; // a first guess, and a double from the start: see #idleSince
  #sweep: HandlerId | null = null;
  #sweepAt = Number.POSITIVE_INFINITY;
  #linger: HandlerId | null = null;
  /**
   * When the pool last fell idle; NaN while it works. Fields that will hold fractional numbers
   * start as doubles: V8 stores a field first given an integer as an integer, and switching it
   * to a double later deoptimizes all compiled code that touches the object. Falling idle after
   * the first workplan did that, and the second ran 1.5-2x slower while V8 recompiled.
   */
  #idleSince = Number.NaN;
  #startFailures = 0;
  /**
   * After recruiting failed with members left to do the work, the team carries on shorthanded
   * until then (ms, performance.now(); NaN for not at all, a double from the start: see
   * #idleSince), and recruits again sooner when a member gets ready or a member at work is lost.
   * The pause doubles each time, up to a minute; the sweep alarm rings at its end.
   */
  #recruitAfter = Number.NaN;
  #recruitPause = 1000;
  #closing = false;
  #closed: Promise<void> | null = null;
  #drained: (() => void) | null = null;
  readonly #dismissals = new Set<Promise<void>>();
  readonly #ownsDispatcher: boolean;

  constructor(options: PoolOptions = {}) {
    super();
    check(options);
    this.size = options.size ?? availableParallelism();
    this.recruiter = options.recruiter ?? new Fork();
    this.retries = options.retries ?? 3;
    this.timeout = options.timeout ?? 0;
    this.pipeline = options.pipeline ?? 256;
    this.pending = options.pending ?? 1024;
    this.linger = options.linger ?? 1;
    this.startTimeout = options.startTimeout ?? 30;
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? new Dispatcher({ spin: parentSpin(this) });
    this.#depth = Math.min(2, this.pipeline);
  }

  /** Runs one task; resolves to its result, or rejects with its error once it is aborted. */
  submit<R>(task: Task<R>, options: RunOptions = {}): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#open('submit');
      checkRun(options, 'submit');
      this.#enqueue(task, options, null, -1, resolve as (value: unknown) => void, reject);
      this.#schedule();
    });
  }

  /**
   * Recruits a team for `workplan` and runs it: the returned {@link Workplan} is awaitable (its
   * report) and async-iterable (outcomes in completion order). The workplan is read lazily, at
   * most {@link PoolOptions.pending} tasks ahead.
   */
  assemble<T extends Task>(workplan: Iterable<T> | AsyncIterable<T>, options: RunOptions = {}): Workplan<ResultOf<T>> {
    this.#open('assemble');
    checkRun(options, 'assemble');
    const plan: Workplan<ResultOf<T>> = new Workplan(workplan as Iterable<Task<ResultOf<T>>>, options, () => {
      this.#feed(plan as Workplan);
      this.#schedule();
    });
    if (options.signal !== undefined) {
      const cancelAll = () => {
        plan.stopReading();
        const live = [...this.#jobs.values()].filter((job) => job.plan === plan);
        for (const job of live) this.#cancel(job, options.signal?.reason);
        this.#schedule();
      };
      if (options.signal.aborted) cancelAll();
      else options.signal.addEventListener('abort', cancelAll, { once: true });
      void plan.report.finally(() => options.signal?.removeEventListener('abort', cancelAll)).catch(() => {});
    }
    this.#feed(plan as Workplan);
    this.#schedule();
    return plan;
  }

  /**
   * How many recruits would take the team to full strength for the work at hand, with at most
   * as many members starting at once as there are CPUs: members that start together share the
   * CPUs, so all of them would be late (8 at once on 2 CPUs gave a first result in 1.2 s,
   * against 0.2 s for 2 at a time). The next ones are recruited as these report ready. None
   * while the team carries on shorthanded, for a pause after recruiting failed.
   */
  vacancies(): number {
    if (this.#closing && this.counts.queued === 0) return 0;
    if (this.#pausedRecruiting()) return 0;
    return Math.max(0, Math.min(this.#shortBy(), startingAtOnce - this.registered.size));
  }

  /** Whether a pause in recruiting (see #recruitAfter) lasts yet. */
  #pausedRecruiting(): boolean {
    return this.#recruitAfter > 0 && performance.now() < this.#recruitAfter;
  }

  /** How many members more than it has the team wants for the work at hand. */
  #shortBy(): number {
    const work = this.counts.queued + this.counts.running;
    return Math.min(work, this.size) - (this.registered.size + this.active.size);
  }

  /**
   * Finishes the work at hand, then dismisses every member; resolves once all are reaped. With
   * `force`, aborts the tasks not yet done instead, and kills the members. Workplans are read no
   * further: their reports reject with `ERR_NEXUS_WORKPLAN` once what was read is done.
   */
  close(options: { force?: boolean } = {}): Promise<void> {
    this.#closing = true;
    if (options.force) {
      this.#abandon(new NexusError('the pool was closed before this task finished', 'ERR_NEXUS_POOL_CLOSED'));
    }
    this.#closed ??= new Promise<void>((resolve) => {
      this.#drained = resolve;
    }).then(async () => {
      while (this.#dismissals.size > 0) await Promise.all(this.#dismissals);
      this.#cancelAlarms();
      if (this.#ownsDispatcher) this.dispatcher.close();
    });
    this.#schedule();
    return this.#closed;
  }

  /** Closes the pool: `await using pool = new Pool()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(method: string): void {
    if (this.#closing) throw new NexusError(`${method}: the pool is closed`, 'ERR_NEXUS_POOL_CLOSED');
  }

  /** Queues a task; `resolve` and `reject` (for `submit`) are set before anything can settle it. */
  #enqueue(
    task: Task,
    options: RunOptions,
    plan: Workplan | null,
    index: number,
    resolve: ((value: unknown) => void) | null = null,
    reject: ((error: unknown) => void) | null = null,
  ): Job {
    const timeout = options.timeout ?? this.timeout;
    const job: Job = {
      id: this.#nextId++,
      task,
      address: undefined as unknown as TaskAddress,
      fields: undefined as unknown as Record<string, unknown>,
      state: 'queued',
      attempts: 0,
      suspect: false,
      timeout: timeout * 1000,
      member: null,
      index,
      plan,
      signal: null,
      onAbort: null,
      resolve,
      reject,
    };
    if (plan !== null) plan.live++;
    this.#jobs.set(job.id, job);
    this.counts.queued++;
    try {
      job.address = addressOf(task);
      job.fields = stateOf(task);
    } catch (error) {
      if (plan === null) {
        // A getter may have settled it (closing the pool) before it threw.
        if (job.state === 'queued') this.counts.queued--;
        this.#jobs.delete(job.id);
        throw error;
      }
      this.#settle(job, TaskStatus.aborted, error);
      return job;
    }
    // A getter of the task, run as its fields were read, may have aborted its workplan.
    if (job.state !== 'queued') return job;
    if (plan === null && options.signal !== undefined) {
      const signal = options.signal;
      job.signal = signal;
      job.onAbort = () => {
        this.#cancel(job, signal.reason);
        this.#schedule();
      };
      if (signal.aborted) {
        this.#settle(job, TaskStatus.aborted, signal.reason);
        return job;
      }
      signal.addEventListener('abort', job.onAbort, { once: true });
    }
    this.#queue.push(job);
    this.#emit('queued', job);
    return job;
  }

  /** Reads more of a workplan, while it is under the pending bound. */
  #feed(plan: Workplan): void {
    const source = plan.source;
    if (source === null || plan.reading) return;
    if (plan.isAsync) {
      if (plan.backlog < this.pending) void this.#feedAsync(plan);
      return;
    }
    plan.reading = true;
    try {
      // An abort while the workplan is read (by the workplan itself, or a getter of a task as it
      // is queued) stops the reading at once, as it does between reads.
      while (plan.source !== null && plan.backlog < this.pending) {
        const step = (source as Iterator<Task>).next();
        if (plan.source === null) break;
        if (step.done) {
          plan.stopReading();
          break;
        }
        this.#open('assemble'); // a closed pool reads no more, as with an async workplan
        this.#enqueue(step.value, plan.options, plan, plan.submitted++);
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
      while (plan.source !== null && plan.backlog < this.pending) {
        const step = await (plan.source as AsyncIterator<Task>).next();
        if (plan.source === null) break;
        if (step.done) {
          plan.stopReading();
          break;
        }
        this.#open('assemble');
        this.#enqueue(step.value, plan.options, plan, plan.submitted++);
        this.#schedule();
      }
    } catch (error) {
      plan.stopReading(error);
    } finally {
      plan.reading = false;
    }
    plan.settleIfDone();
  }

  #feedHungry(): void {
    for (let plan = this.#hungry.shift(); plan !== undefined; plan = this.#hungry.shift()) {
      plan.hungry = false;
      this.#feed(plan);
    }
  }

  /** Deals queued tasks to members with room, and recruits for the rest. */
  #schedule(): void {
    // User code can run in the middle of it (a getter of a task's state as its frame is encoded,
    // a listener): a call from there is taken up when the running one ends, not nested in it.
    if (this.#scheduling) {
      this.#again = true;
      return;
    }
    this.#scheduling = true;
    try {
      do {
        this.#again = false;
        this.#feedHungry();
        if (this.counts.queued > 0 && this.active.size > 0) {
          const share = Math.ceil(this.counts.queued / this.active.size);
          for (const member of this.active) {
            const room = Math.min(this.#depth - member.jobs.length, share);
            if (room > 0 && !this.#assign(member, room)) break;
          }
        }
        if (this.vacancies() > 0) this.#recruit();
        this.#armSweep();
        this.#checkIdle();
      } while (this.#again || this.#hungry.length > 0);
    } finally {
      this.#scheduling = false;
    }
  }

  /**
   * Sends up to `room` queued tasks to `member`, in one frame; false when the queue is empty.
   * Tasks that cannot travel are aborted and the next ones taken, so that the queue moves even
   * when nothing was sent (no report would come to move it).
   */
  #assign(member: Crew, room: number): boolean {
    if (this.#holdsSuspect(member)) return true;
    for (;;) {
      const batch: Job[] = [];
      while (batch.length < room) {
        const job = this.#next();
        if (job === undefined) break;
        if (job.suspect) {
          // Alone, to a member that holds nothing; otherwise it waits for one, first in line.
          if (batch.length === 0 && member.jobs.length === 0) batch.push(job);
          else this.#front.unshift(job);
          break;
        }
        batch.push(job);
      }
      if (batch.length === 0) return this.#front.length > 0;
      if (this.#deal(member, batch)) return true;
    }
  }

  #holdsSuspect(member: Crew): boolean {
    return member.jobs.length === 1 && this.#jobs.get(member.jobs[0] as number)?.suspect === true;
  }

  /**
   * Sends `batch` to `member`, in one frame when it fits. Otherwise each task goes in a frame of
   * its own, and one whose state cannot be read, serialized or fitted in a frame is aborted: sent
   * anyway, it would cost members their lives, one after another, for the same task. False when
   * every task was aborted.
   */
  #deal(member: Crew, dealt: Job[]): boolean {
    let batch = dealt;
    let whole = tasksFrame(member, batch);
    // Encoding runs getters of the tasks' state, and one that aborts a workplan settles tasks of
    // this batch, or costs this member its life: settled tasks are not sent, and the rest are
    // encoded again, or go back to the queue.
    for (;;) {
      if (isLost(member)) {
        this.#front.unshift(...batch.filter(isQueued));
        return true;
      }
      if (batch.every(isQueued)) break;
      batch = batch.filter(isQueued);
      if (batch.length === 0) return false;
      whole = tasksFrame(member, batch);
    }
    if (!(whole instanceof Error) && whole.payload.length <= CREW_MAX_FRAME) {
      if (this.#send(member, batch, whole.payload)) member.learn(whole.added);
      return true;
    }
    let sent = false;
    for (const [i, job] of batch.entries()) {
      const alone = batch.length === 1 ? whole : tasksFrame(member, [job]);
      if (isLost(member)) {
        this.#front.unshift(...batch.slice(i).filter(isQueued));
        return true;
      }
      if (!isQueued(job)) continue;
      if (alone instanceof Error) {
        const message = `task ${label(job)} cannot be sent to a crew member: ${alone.message}`;
        this.#settle(job, TaskStatus.aborted, new TypeError(message, { cause: alone }));
      } else if (alone.payload.length > CREW_MAX_FRAME) {
        const message = `task ${label(job)} is ${alone.payload.length} bytes encoded, more than the ${CREW_MAX_FRAME} bytes a frame between team and member may carry`;
        this.#settle(job, TaskStatus.aborted, new FrameTooLargeError(message, 'ERR_NEXUS_FRAME_TOO_LARGE'));
      } else {
        sent = true;
        if (!this.#send(member, [job], alone.payload)) {
          this.#front.splice(1, 0, ...batch.slice(i + 1)); // back in order, behind `job`
          break;
        }
        member.learn(alone.added);
      }
    }
    return sent;
  }

  /** Sends `jobs` in `frame` and marks them running; false (the member lost) if it cannot. */
  #send(member: Crew, jobs: Job[], frame: Buffer): boolean {
    try {
      member.channel.sendFrame(frame);
    } catch (error) {
      this.#front.unshift(...jobs);
      this.#lose(member, `could not be sent its tasks (${(error as Error).message})`, false);
      return false;
    }
    if (member.jobs.length === 0) member.headStart = performance.now();
    for (const job of jobs) {
      job.state = 'running';
      job.member = member;
      job.attempts++;
      member.jobs.push(job.id);
      this.counts.queued--;
      this.counts.running++;
    }
    // Told once all are marked: a listener that settles a later one finds it running.
    for (const job of jobs) this.#emit('started', job);
    return true;
  }

  #next(): Job | undefined {
    for (;;) {
      let job = this.#front.shift();
      if (job === undefined && this.#head < this.#queue.length) {
        job = this.#queue[this.#head++];
        if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#head);
          this.#head = 0;
        }
      }
      if (job === undefined || job.state === 'queued') return job;
    }
  }

  #recruit(): void {
    let recruits: Crew[];
    try {
      recruits = this.recruiter.recruit(this);
    } catch (cause) {
      const message = `cannot recruit a crew member: ${(cause as Error).message}`;
      const error = new NexusError(message, 'ERR_NEXUS_RECRUIT', { cause });
      this.#cannotRecruit(error, this.active.size + this.registered.size);
      return;
    }
    const now = performance.now();
    for (const member of recruits) {
      member.recruitedAt = now;
      this.registered.add(member);
      this.dispatcher.whenReadReady(member.channel, () => this.#read(member));
    }
    this.#watch();
  }

  #read(member: Crew): boolean {
    if (member.state === 'retired') return false;
    try {
      for (
        let message = marshaler.recv(member.channel);
        message !== undefined;
        message = marshaler.recv(member.channel)
      ) {
        this.#receive(member, message);
      }
    } catch (error) {
      // A member that died with tasks unread in its socket resets the connection: it ended, like
      // one that died with none; anything else it sent that does not decode breaks the protocol.
      if (error instanceof ConnectionResetError) this.#ended(member);
      else this.#lose(member, `broke the crew protocol (${(error as Error).message})`, true);
      this.#schedule();
      return false;
    }
    if (member.channel.atEnd) this.#ended(member);
    this.#schedule();
    return this.active.has(member) || this.registered.has(member);
  }

  #ended(member: Crew): void {
    const cause = member.enlistment.cause?.();
    this.#lose(member, cause ? `ended (${cause})` : 'ended', true);
  }

  #receive(member: Crew, message: unknown): void {
    const kind = Array.isArray(message) ? message[0] : undefined;
    const body = Array.isArray(message) ? message[1] : undefined;
    if (kind === REPORTS && Array.isArray(body)) {
      // All checked before any is taken: a report taken off the member's list and then found
      // malformed would leave its task neither settled nor requeued when the member is lost.
      for (let at = 0; at < body.length; at += REPORT_FIELDS) checkReport(body, at);
      for (let at = 0; at < body.length; at += REPORT_FIELDS) this.#report(member, body, at);
      // The next task started about when these reports were sent: the clock is read once a frame.
      member.headStart = performance.now();
    } else if (kind === STARTED) {
      // The task's module is imported: its time starts now.
      const job = this.#jobs.get(body as number);
      if (job !== undefined) member.imported.add(job.address);
      if (member.jobs[0] === body) member.headStart = performance.now();
    } else if (kind === READY && member.state === 'registered') {
      this.registered.delete(member);
      this.active.add(member);
      member.state = 'active';
      this.#recruitAfresh(); // recruiting works: fill any places left at once
      this.#tell('recruited', member);
    } else {
      throw new Error(`an unexpected message: ${String(kind)}`);
    }
  }

  /** The report at `at` in a frame's flat list of reports (see REPORTS). */
  #report(member: Crew, reports: unknown[], at: number): void {
    const id = reports[at] as number;
    const crew = reports[at + 1];
    const status = reports[at + 2];
    const value = reports[at + 3];
    const ms = reports[at + 4];
    const held = member.jobs.indexOf(id);
    // A task cancelled after it was sent: its report is no longer wanted.
    if (held === -1) return;
    // Reports come in the order the tasks were sent, and shift() is cheaper than splice().
    if (held === 0) member.jobs.shift();
    else member.jobs.splice(held, 1);
    const job = this.#jobs.get(id);
    if (job === undefined) return;
    member.imported.add(job.address);
    job.suspect = false; // it ran without taking its member down
    this.#observe(ms);
    if (status === TaskStatus.completed) {
      this.#settle(job, TaskStatus.completed, value);
    } else if (status === TaskStatus.failed) {
      this.counts.failed++;
      this.#emit('failed', job, restoreError(value as ErrorRecord));
      // A listener may have cancelled it, or closed the pool.
      if (job.state === 'running') {
        if (job.attempts > this.retries) this.#settle(job, TaskStatus.aborted, restoreError(value as ErrorRecord));
        else this.#requeue(job);
      }
    } else {
      this.#settle(job, TaskStatus.aborted, restoreError(value as ErrorRecord));
    }
    if (crew === CrewStatus.damaged) this.#lose(member, 'reported itself damaged', false);
  }

  /** Keeps about a millisecond of work queued at each member beyond the task it runs. */
  #observe(ms: unknown): void {
    if (typeof ms !== 'number' || !(ms >= 0)) return;
    this.#taskMs = 0.8 * this.#taskMs + 0.2 * ms;
    this.#depth = Math.min(this.pipeline, 1 + Math.ceil(1 / Math.max(this.#taskMs, 0.001)));
  }

  #requeue(job: Job): void {
    job.state = 'queued';
    job.member = null;
    this.counts.running--;
    this.counts.queued++;
    this.#front.push(job);
  }

  /**
   * Retires a member that can no longer be trusted (pyre's `damaged`): its tasks go back to the
   * queue, the one it was running counting as an attempt when `started`, and it is killed.
   */
  #lose(member: Crew, what: string, started: boolean): void {
    if (member.state === 'retired') return;
    const starting = member.state === 'registered';
    const ids = member.jobs.splice(0);
    // Several tasks unreported: the member may have finished the first ones and held their
    // reports back. None is charged; each is dealt alone from now on, where a crash is its own.
    const unclear = started && ids.length > 1;
    ids.forEach((id, i) => {
      const job = this.#jobs.get(id);
      if (job === undefined) return;
      if (unclear) {
        job.attempts--;
        job.suspect = true;
        this.#requeue(job);
        return;
      }
      if (i === 0 && started && job.attempts > this.retries) {
        const error = new WorkerLostError(
          `crew member ${member.id} ${what} while running task ${label(job)}, ${job.attempts} ${job.attempts === 1 ? 'time' : 'times'}: given up`,
          'ERR_NEXUS_WORKER_LOST',
        );
        this.#settle(job, TaskStatus.aborted, error);
        return;
      }
      if (i > 0 || !started) job.attempts--;
      this.#requeue(job);
    });
    this.#dismiss(member, true);
    // A member at work lost, or none left: a place to fill now, not after a pause.
    if (!starting || this.active.size + this.registered.size === 0) this.#recruitAfter = Number.NaN;
    if (starting && ++this.#startFailures >= 3) {
      this.#startFailures = 0;
      const error = new WorkerLostError(
        `crew members fail to get ready (3 in a row; the last ${what}): see their standard error`,
        'ERR_NEXUS_WORKER_LOST',
      );
      // Members still starting are likely to fail as these did: only members at work count.
      this.#cannotRecruit(error, this.active.size);
    }
  }

  /** Forgets failed starts and any pause in recruiting. */
  #recruitAfresh(): void {
    this.#startFailures = 0;
    this.#recruitAfter = Number.NaN;
    this.#recruitPause = 1000;
  }

  /**
   * Recruiting failed (the recruiter threw, or members failed to get ready 3 times in a row).
   * With `members` that can do the work, the team carries on shorthanded for a pause (see
   * #recruitAfter). With none, nothing could run the queued tasks: they are aborted with `error`.
   */
  #cannotRecruit(error: Error, members: number): void {
    if (members === 0) {
      this.#fail(error);
      return;
    }
    this.#recruitAfter = performance.now() + this.#recruitPause;
    this.#recruitPause = Math.min(2 * this.#recruitPause, 60_000);
  }

  #dismiss(member: Crew, force: boolean): void {
    if (member.state === 'retired') return; // a listener of 'retired' may have dismissed it
    this.registered.delete(member);
    this.active.delete(member);
    member.state = 'retired';
    this.retired.add(member);
    this.#tell('retired', member);
    const dismissal = this.recruiter
      .dismiss(this, member, force)
      .catch(() => {})
      .finally(() => {
        this.retired.delete(member);
        this.#dismissals.delete(dismissal);
      });
    this.#dismissals.add(dismissal);
  }

  /** Cancels a task: dropped if queued; its member replaced if it runs; skipped if it waits there. */
  #cancel(job: Job, reason: unknown): void {
    if (job.state === 'done') return;
    const member = job.member;
    const at = job.state === 'running' && member !== null ? member.jobs.indexOf(job.id) : -1;
    // At -1 its report is being taken (a listener of it cancels it): settling it is all there is.
    if (member !== null && at !== -1) {
      member.jobs.splice(at, 1);
      if (at > 0) job.attempts--; // it waited behind another task: it never started
      this.#settle(job, TaskStatus.aborted, reason);
      if (at === 0) this.#lose(member, 'was stopped for a cancelled task', false);
      else {
        try {
          marshaler.send([CANCEL, job.id], member.channel);
        } catch {
          // The member is going away; its channel's end will retire it.
        }
      }
      return;
    }
    this.#settle(job, TaskStatus.aborted, reason);
  }

  #settle(job: Job, status: TaskStatus.completed | TaskStatus.aborted, value: unknown): void {
    if (job.state === 'done') return;
    if (job.state === 'queued') this.counts.queued--;
    else this.counts.running--;
    job.state = 'done';
    this.#jobs.delete(job.id);
    if (job.onAbort !== null) job.signal?.removeEventListener('abort', job.onAbort);
    const completed = status === TaskStatus.completed;
    if (completed) this.counts.completed++;
    else this.counts.aborted++;
    const event = completed ? 'completed' : 'aborted';
    // Asked first: an emit with nobody listening still costs a call and an array of its arguments.
    const heard = this.listenerCount(event) > 0;
    if (job.plan === null && !heard) {
      if (completed) job.resolve?.(value);
      else job.reject?.(value);
      return;
    }
    const outcome: Outcome = completed
      ? { index: job.index, task: job.task, status, result: value, attempts: job.attempts }
      : { index: job.index, task: job.task, status, error: value as Error, attempts: job.attempts };
    if (heard) this.#tell(event, outcome);
    if (job.plan !== null) {
      job.plan.live--;
      job.plan.record(outcome);
      if (!job.plan.hungry) {
        job.plan.hungry = true;
        this.#hungry.push(job.plan);
      }
    } else if (completed) job.resolve?.(value);
    else job.reject?.(value);
  }

  #emit(event: 'queued' | 'started' | 'failed', job: Job, error?: Error): void {
    if (this.listenerCount(event) === 0) return;
    this.#tell(event, { index: job.index, task: job.task, attempts: job.attempts, error });
  }

  /**
   * Emits an event; a listener that throws must not leave the pool half-way through an update,
   * so its error is rethrown on its own, as Node does for a throwing callback.
   */
  #tell(event: string, detail: unknown): void {
    try {
      this.emit(event, detail, this.counts);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  /** Aborts every queued task with `error` (a failure of the pool itself, not of a task). */
  #fail(error: unknown): void {
    for (const job of [...this.#jobs.values()])
      if (job.state === 'queued') this.#settle(job, TaskStatus.aborted, error);
  }

  /**
   * One alarm, at the earliest deadline: of the tasks members are running, of members starting,
   * or of a pause in recruiting.
   */
  #armSweep(): void {
    const next = this.#nextDeadline();
    if (next === Number.POSITIVE_INFINITY && this.#sweep !== null) {
      // Nothing left to time: an alarm kept for a deadline that is gone would keep the
      // dispatcher, and so a finished script, running until it rang.
      this.dispatcher.cancel(this.#sweep);
      this.#sweep = null;
      this.#sweepAt = Number.POSITIVE_INFINITY;
      return;
    }
    if (next >= this.#sweepAt) return;
    if (this.#sweep !== null) this.dispatcher.cancel(this.#sweep);
    this.#sweepAt = next;
    const seconds = Math.min(Math.max(0, (next - performance.now()) / 1000), ALARM_HORIZON);
    this.#sweep = this.dispatcher.alarm(seconds, () => {
      this.#sweep = null;
      this.#sweepAt = Number.POSITIVE_INFINITY;
      for (const member of [...this.registered]) {
        // Its READY may be waiting unread behind this alarm, as a report may.
        if (!this.#read(member) || member.state !== 'registered') continue;
        if (performance.now() >= this.#readyBy(member)) {
          this.#lose(member, `did not get ready within ${this.startTimeout} s (startTimeout)`, false);
        }
      }
      for (const member of [...this.active]) {
        // A report may be waiting unread behind this alarm: take it before judging the task.
        if (!this.#read(member)) continue;
        const job = this.#jobs.get(member.jobs[0] ?? 0);
        if (job !== undefined && performance.now() >= this.#deadline(member, job)) {
          member.jobs.shift();
          const error = new TaskTimeoutError(
            `task ${label(job)} ran longer than its timeout of ${job.timeout / 1000} s; crew member ${member.id} was replaced`,
            'ERR_NEXUS_TASK_TIMEOUT',
          );
          this.#settle(job, TaskStatus.aborted, error);
          this.#lose(member, 'timed out', false);
        }
      }
      this.#schedule();
      return undefined;
    });
    this.#watch();
  }

  #nextDeadline(): number {
    // While the team is short, the end of a pause in recruiting: with every member busy on a
    // long task, nothing else would come to recruit then. Only while the pause lasts: an alarm
    // for one past would ring again and again while starting members or a close keep
    // vacancies() at 0.
    let next = this.#pausedRecruiting() && this.#shortBy() > 0 ? this.#recruitAfter : Number.POSITIVE_INFINITY;
    for (const member of this.registered) next = Math.min(next, this.#readyBy(member));
    for (const member of this.active) {
      const job = this.#jobs.get(member.jobs[0] ?? 0);
      if (job !== undefined) next = Math.min(next, this.#deadline(member, job));
    }
    return next;
  }

  /** When a member starting up is given up on. */
  #readyBy(member: Crew): number {
    return this.startTimeout === 0 ? Number.POSITIVE_INFINITY : member.recruitedAt + this.startTimeout * 1000;
  }

  /**
   * When `job`, the task `member` runs, times out: never without a timeout, nor while the member
   * may still be importing its module (the import does not count against the timeout).
   */
  #deadline(member: Crew, job: Job): number {
    if (job.timeout === 0 || !member.imported.has(job.address)) return Number.POSITIVE_INFINITY;
    return member.headStart + job.timeout;
  }

  /** With no work left: dismiss at once when closing, else after `linger` seconds. */
  #checkIdle(): void {
    if (this.counts.queued + this.counts.running > 0) {
      this.#idleSince = Number.NaN;
      return;
    }
    if (this.#closing) {
      this.#dismissAll();
      this.#drained?.();
      return;
    }
    if (this.registered.size + this.active.size === 0) return;
    // Idle again while the alarm of an earlier idle spell is still set: it must find the pool
    // idle since now, or it would take the pool for busy and never dismiss anyone.
    if (Number.isNaN(this.#idleSince)) this.#idleSince = performance.now();
    if (this.#linger !== null) return;
    this.#linger = this.dispatcher.alarm(Math.min(this.linger, ALARM_HORIZON), () => {
      const idle = this.counts.queued + this.counts.running === 0 && this.#idleSince > 0;
      const left = this.linger * 1000 - (performance.now() - this.#idleSince);
      if (idle && left > 1) return Math.min(left / 1000, ALARM_HORIZON);
      this.#linger = null;
      if (idle) {
        this.#recruitAfresh(); // for the next work
        this.#dismissAll();
        this.#armSweep(); // the start-up deadlines of members dismissed starting are gone
      }
      return undefined;
    });
    this.#watch();
  }

  /** Dismisses every member: those at work once their tasks are done, those starting at once. */
  #dismissAll(): void {
    // A member still starting has nothing to finish, and may never read its channel's end.
    for (const member of [...this.registered]) this.#dismiss(member, true);
    for (const member of [...this.active]) this.#dismiss(member, false);
  }

  #cancelAlarms(): void {
    if (this.#sweep !== null) this.dispatcher.cancel(this.#sweep);
    if (this.#linger !== null) this.dispatcher.cancel(this.#linger);
    this.#sweep = this.#linger = null;
    this.#sweepAt = Number.POSITIVE_INFINITY;
  }

  #watch(): void {
    if (!this.dispatcher.watching) {
      this.dispatcher.watch().catch((cause: unknown) => {
        // A handler threw on a dispatcher the pool shares (one given without onError), or the
        // loop itself failed. Stopped, it reads no report: the tasks out with members would
        // never settle. The next task recruits afresh, and watches again.
        const why = cause instanceof Error ? cause.message : String(cause);
        this.#abandon(
          new NexusError(`the pool's dispatcher stopped on an error: ${why}`, 'ERR_NEXUS_DISPATCHER_STOPPED', {
            cause,
          }),
        );
        this.#schedule(); // workplans read on, a pending close() ends, the alarms are rearmed
      });
    }
  }

  /** Stops every member at once, and aborts every task not done with `error`. */
  #abandon(error: Error): void {
    this.#recruitAfresh(); // no member is left to carry on with: the next task recruits at once
    // A listener may submit again meanwhile: its task is neither aborted here nor dealt to a
    // member about to be stopped, but queued (as under #schedule) for the caller's next one.
    const scheduling = this.#scheduling;
    this.#scheduling = true;
    try {
      const jobs = [...this.#jobs.values()];
      for (const member of [...this.registered, ...this.active]) this.#dismiss(member, true);
      for (const job of jobs) this.#settle(job, TaskStatus.aborted, error);
    } finally {
      this.#scheduling = scheduling;
    }
    // No task to time, no member to dismiss when idle: alarms kept would only keep the loop up.
    this.#cancelAlarms();
  }
}

/**
 * A workplan being carried out: await it for its {@link WorkplanReport}, or iterate it for the
 * outcomes as they come (completion order).
 */
export class Workplan<R = unknown> implements PromiseLike<WorkplanReport<R>>, AsyncIterable<Outcome<R>> {
  /** Settles once every task has an outcome; rejects if the workplan itself could not be read. */
  readonly report: Promise<WorkplanReport<R>>;
  /** @internal */ source: Iterator<Task<R>> | AsyncIterator<Task<R>> | null;
  /** @internal */ readonly isAsync: boolean;
  /** @internal Tasks read and not yet settled (a count: a set of them cost two hash operations a task). */
  live = 0;
  /** @internal */ reading = false;
  /** @internal Waiting to be read on (see Pool's #hungry). */
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

/**
 * The frame that assigns `jobs` to `member`, or the error that stops them from being encoded.
 * Classes go by number: a class is sent once per member, with the first frame that needs it (a
 * module URL per frame was most of a one-task frame). `added` are the classes the frame sends,
 * which the member knows once the frame is sent (`member.learn`).
 */
function tasksFrame(member: Crew, jobs: Job[]): { payload: Buffer; added: [string, string][] } | Error {
  const added: [string, string][] = [];
  const numberOf = (module: string, name: string): number => {
    const known = member.classNumber(module, name);
    if (known !== undefined) return known;
    const at = added.findIndex(([m, n]) => m === module && n === name);
    return member.classCount + (at === -1 ? added.push([module, name]) - 1 : at);
  };
  try {
    const assignments: unknown[] = [];
    for (const { id, address, fields } of jobs) assignments.push(id, numberOf(address.module, address.name), fields);
    return { payload: marshaler.encode([TASKS, added, assignments]), added };
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** Throws, saying why, unless `reports` holds a whole report at `at` (see REPORTS). */
function checkReport(reports: unknown[], at: number): void {
  if (at + REPORT_FIELDS > reports.length) {
    throw new Error(
      `a malformed report: a list of ${reports.length} fields, not a multiple of ${REPORT_FIELDS} (the fields of one report)`,
    );
  }
  const value = reports[at + 3] as Partial<ErrorRecord> | null;
  if (typeof reports[at] !== 'number') throw new Error(`a malformed report: task id ${String(reports[at])}`);
  if (reports[at + 2] !== TaskStatus.completed && typeof value?.message !== 'string') {
    throw new Error(`a malformed report: task ${reports[at]} did not complete, and carries no error record`);
  }
}

function isQueued(job: Job): boolean {
  return job.state === 'queued';
}

/** Whether `member` was retired, which code run while its frame was encoded can do. */
function isLost(member: Crew): boolean {
  return member.state === 'retired';
}

function label(job: Job): string {
  const name = job.address?.name ?? job.task?.constructor?.name ?? 'task';
  return job.index >= 0 ? `#${job.index} (${name})` : name;
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
]);

function check(options: PoolOptions): void {
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
}

/** Checks the options of one `submit` or `assemble` call, before anything is queued. */
function checkRun(options: RunOptions, method: string): void {
  if (options === null || typeof options !== 'object') throw new TypeError(`${method}: options must be an object`);
  const { timeout, signal } = options;
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout >= 0 && Number.isFinite(timeout))) {
    throw new RangeError(`${method}: timeout must be a non-negative number of seconds, got ${String(timeout)}`);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`${method}: signal must be an AbortSignal`);
  }
}

/** pyre's `pool()`: the pool's class. */
export function pool(): typeof Pool {
  return Pool;
}
