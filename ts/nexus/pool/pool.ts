/**
 * The pool (pyre's `pool`, the default team): the one coordinator of its parts, each of which owns
 * its state:
 * - jobs.ts: the tasks in its hands, the queue and the counts;
 * - dealer.ts: the dealing policy: who gets which task, the pipeline, rebalancing;
 * - ledger.ts: the attempts ledger: how often each task may have run;
 * - staffing.ts: the members, recruiting and dismissing them;
 * - inbox.ts: reading what members send;
 * - alarms.ts: the deadlines (start-up, task timeouts, lingering);
 * - workplan.ts: workplans and their lazy reading;
 * - options.ts: the options and their checks.
 * The crew protocol, both sides, is in ../crew/protocol.ts.
 *
 * Beyond pyre: every outcome reaches the caller; `failed` tasks are retried up to a limit, and no
 * task runs more often than `1 + retries`; a member that crashes, exits, is killed or sends
 * garbage is `damaged`, and the tasks it had not begun run elsewhere while a replacement is
 * recruited; tasks time out and can be cancelled; a workplan is read lazily, under a bound on
 * pending tasks; and a member holds several tasks at once, so that round trips overlap with work.
 */
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import { FrameTooLargeError, NexusError } from '../../errors.js';
import { Dispatcher } from '../../ipc/dispatcher.js';
import {
  addressOf,
  CrewStatus,
  type ErrorRecord,
  restoreError,
  stateOf,
  type Task,
  TaskStatus,
  TaskTimeoutError,
  WorkerLostError,
} from '../crew/crossing.js';
import type { Member } from '../crew/member.js';
import { CREW_MAX_FRAME, encodeTasks, fence, REPORT_FIELDS, sendCancel, unfence } from '../crew/protocol.js';
import { Fork } from '../fork.js';
import { type MemberOutput, withLastWords } from '../output.js';
import { parentSpin } from '../recruiting.js';
import type { Recruiter, Team } from '../team.js';
import { ALARM_HORIZON, Alarms } from './alarms.js';
import { Dealer, type Table } from './dealer.js';
import { readMember } from './inbox.js';
import { type Counts, isQueued, type Job, JobQueue, label } from './jobs.js';
import { AttemptsLedger } from './ledger.js';
import {
  type CloseOptions,
  checkClose,
  checkPoolOptions,
  checkRun,
  type PoolOptions,
  type RunOptions,
} from './options.js';
import { Staffing } from './staffing.js';
import { type Outcome, Settled, Workplan, WorkplanReader } from './workplan.js';

/** What a task's execute() resolves to. */
export type ResultOf<T extends Task> = Awaited<ReturnType<T['execute']>>;

/** What a task event tells of its task (`queued`, `started`, `failed`). */
export interface TaskEvent {
  /** Its place in the workplan, or -1 for a task given to `submit`. */
  index: number;
  task: Task;
  /** Runs that may have begun so far. */
  attempts: number;
  /** Why the attempt failed, for `failed`. */
  error: Error | undefined;
}

/** The pool's events and what their listeners get, after which the running {@link Counts}. */
export interface PoolEvents {
  queued: [TaskEvent, Counts];
  started: [TaskEvent, Counts];
  failed: [TaskEvent, Counts];
  completed: [Outcome, Counts];
  aborted: [Outcome, Counts];
  recruited: [Member, Counts];
  retired: [Member, Counts];
}

/** A listener of the pool's event `E`. */
export type PoolListener<E extends keyof PoolEvents> = (...args: PoolEvents[E]) => void;

// Listeners are typed by event: a misspelt event name, or a listener of the wrong shape, fails to
// compile (EventEmitter's own signatures take any name).
export interface Pool {
  on<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): this;
  once<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): this;
  off<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): this;
  addListener<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): this;
  removeListener<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): this;
  prependListener<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): this;
}

/** Events: `queued`, `started`, `completed`, `failed`, `aborted` (each with the task's details and
 * the {@link Counts}), `recruited` and `retired` (with the member): see {@link PoolEvents}. */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface above types the listeners
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
  readonly output: MemberOutput;
  readonly counts: Counts;

  readonly #jobs = new JobQueue();
  readonly #ledger: AttemptsLedger;
  readonly #dealer: Dealer;
  readonly #staff: Staffing;
  readonly #alarms: Alarms;
  readonly #reader: WorkplanReader;
  /** What the dealer deals on. */
  readonly #table: Table;
  #scheduling = false;
  #again = false;
  /** A schedule is due at the end of this turn's synchronous code (see submit). */
  #soon = false;
  /** When the dealer would take tasks from a busy member for an idle one (see Dealer.rebalance). */
  #rebalanceAt = Number.POSITIVE_INFINITY;
  /**
   * When the pool last fell idle; NaN while it works. Fields that will hold fractional numbers
   * start as doubles: V8 stores a field first given an integer as an integer, and switching it
   * to a double later deoptimizes all compiled code that touches the object. Falling idle after
   * the first workplan did that, and the second ran 1.5-2x slower while V8 recompiled.
   */
  #idleSince = Number.NaN;
  #closing = false;
  #closed: Promise<void> | null = null;
  #drained: (() => void) | null = null;
  readonly #ownsDispatcher: boolean;

  constructor(options: PoolOptions = {}) {
    super();
    checkPoolOptions(new.target.name, options);
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
    this.output = options.output ?? 'inherit';
    this.counts = this.#jobs.counts;
    this.#ledger = new AttemptsLedger(this.retries);
    this.#dealer = new Dealer(this.pipeline);
    this.#staff = new Staffing(this, this.size, this.recruiter, {
      enlisted: (member) => this.dispatcher.whenReadReady(member.channel, () => this.#read(member)),
      retired: (member) => this.#announce('retired', member),
    });
    this.#alarms = new Alarms(this.dispatcher);
    this.#reader = new WorkplanReader({
      pending: this.pending,
      open: (method) => this.#open(method),
      enqueue: (task, plan) => this.#enqueue(task, plan.options, plan, plan.submitted++),
      schedule: () => this.#schedule(),
    });
    const jobs = this.#jobs;
    this.#table = {
      next: () => jobs.next(),
      putBack: (batch) => jobs.putBack(batch),
      hand: (member, batch) => this.#hand(member, batch),
      recall: (member, ids) => this.#recall(member, ids),
      steal: (member) => this.#steal(member),
      job: (id) => jobs.get(id),
    };
  }

  /** Members starting up. */
  get registered(): ReadonlySet<Member> {
    return this.#staff.registered;
  }

  /** Members ready for work. */
  get active(): ReadonlySet<Member> {
    return this.#staff.active;
  }

  /** Members dismissed and not yet reaped. */
  get retired(): ReadonlySet<Member> {
    return this.#staff.retired;
  }

  /**
   * Runs one task; resolves to its result, or rejects with its error once it is aborted. Tasks
   * submitted in one go (a loop of calls) are dealt together once it ends, as one workplan is.
   */
  submit<R>(task: Task<R>, options: RunOptions = {}): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#open('submit');
      checkRun(options, 'submit');
      this.#enqueue(task, options, null, -1, resolve as (value: unknown) => void, reject);
      this.#scheduleSoon();
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
      this.#reader.feed(plan as Workplan);
      this.#schedule();
    });
    if (options.signal !== undefined) {
      const cancelAll = () => {
        plan.stopReading();
        const live = this.#jobs.all().filter((job) => job.plan === plan);
        for (const job of live) this.#cancel(job, options.signal?.reason);
        // With none of its tasks live (none read yet: a signal aborted before assemble()), no
        // settled task settles the workplan: it does so here.
        plan.settleIfDone();
        this.#schedule();
      };
      if (options.signal.aborted) cancelAll();
      else options.signal.addEventListener('abort', cancelAll, { once: true });
      void plan.report.finally(() => options.signal?.removeEventListener('abort', cancelAll)).catch(() => {});
    }
    this.#reader.feed(plan as Workplan);
    this.#schedule();
    return plan;
  }

  /** How many recruits would take the team to full strength for the work at hand (see Staffing). */
  vacancies(): number {
    if (this.#closing && this.counts.queued === 0) return 0;
    return this.#staff.vacancies(this.counts.queued + this.counts.running);
  }

  /**
   * Finishes the work at hand, then dismisses every member; resolves once all are reaped. With
   * `force`, aborts the tasks not yet done instead, and kills the members. Workplans are read no
   * further: their reports reject with `ERR_NEXUS_WORKPLAN` once what was read is done.
   */
  close(options: CloseOptions = {}): Promise<void> {
    try {
      checkClose(options);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#closing = true;
    if (options.force) {
      this.#abandon(new NexusError('the pool was closed before this task finished', 'ERR_NEXUS_POOL_CLOSED'));
    }
    this.#closed ??= new Promise<void>((resolve) => {
      this.#drained = resolve;
    }).then(async () => {
      await this.#staff.reaped();
      this.#alarms.cancel();
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
    const job = this.#jobs.create(task, timeout * 1000, plan, index, resolve, reject);
    if (plan !== null) plan.live++;
    try {
      job.address = addressOf(task);
      job.fields = stateOf(task);
    } catch (error) {
      if (plan === null) {
        // A getter may have settled it (closing the pool) before it threw.
        this.#jobs.forget(job);
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
    this.#jobs.push(job);
    this.#announceTask('queued', job);
    return job;
  }

  /** Schedules once the synchronous code that submits ends: a burst is dealt as one. */
  #scheduleSoon(): void {
    if (this.#soon) return;
    this.#soon = true;
    queueMicrotask(this.#scheduleDue);
  }

  readonly #scheduleDue = (): void => {
    this.#soon = false;
    this.#schedule();
  };

  /** Deals queued tasks to members, rebalances, and recruits for the rest. */
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
        this.#reader.feedHungry();
        this.#deal();
        // With the line empty, members left with nothing take from the others what they have
        // not begun: dealt at once.
        this.#rebalanceAt = Number.POSITIVE_INFINITY;
        if (this.counts.queued === 0 && this.#staff.active.size > 1) {
          this.#rebalanceAt = this.#dealer.rebalance(this.#staff.active, this.#table);
          this.#deal();
        }
        if (this.vacancies() > 0) this.#recruit();
        this.#armSweep();
        this.#checkIdle();
      } while (this.#again || this.#reader.hungry);
    } finally {
      this.#scheduling = false;
    }
  }

  /** Deals the queue to the members at work (see Dealer). */
  #deal(): void {
    const { queued, running } = this.counts;
    const active = this.#staff.active;
    if (queued === 0 || active.size === 0) return;
    this.#dealer.deal(active, queued, running, this.#staff.expected(queued + running), this.#table);
  }

  /**
   * Sends `dealt` to `member`, in one frame when it fits. Otherwise each task goes in a frame of
   * its own, and one whose state cannot be read, serialized or fitted in a frame is aborted: sent
   * anyway, it would cost members their lives, one after another, for the same task. False when
   * every task was aborted.
   */
  #hand(member: Member, dealt: Job[]): boolean {
    let batch = dealt;
    let whole = tasksFrame(member, batch);
    // Encoding runs getters of the tasks' state, and one that aborts a workplan settles tasks of
    // this batch, or costs this member its life: settled tasks are not sent, and the rest are
    // encoded again, or go back to the queue.
    for (;;) {
      if (isLost(member)) {
        this.#jobs.putBack(batch);
        return true;
      }
      if (batch.every(isQueued)) break;
      batch = batch.filter(isQueued);
      if (batch.length === 0) return false;
      whole = tasksFrame(member, batch);
    }
    if (!(whole instanceof Error) && whole.payload.length <= CREW_MAX_FRAME) {
      if (this.#send(member, batch, whole.payload)) member.learn(whole.added);
      else this.#jobs.putBack(batch);
      return true;
    }
    let sent = false;
    for (const [i, job] of batch.entries()) {
      const alone = batch.length === 1 ? whole : tasksFrame(member, [job]);
      if (isLost(member)) {
        this.#jobs.putBack(batch.slice(i));
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
          this.#jobs.putBack(batch.slice(i));
          break;
        }
        member.learn(alone.added);
      }
    }
    return sent;
  }

  /** Sends `jobs` in `frame`, charging each an attempt; false (the member lost) if it cannot. */
  #send(member: Member, jobs: Job[], frame: Buffer): boolean {
    try {
      member.channel.sendFrame(frame);
    } catch (error) {
      this.#lose(member, `could not be sent its tasks (${(error as Error).message})`);
      return false;
    }
    if (member.taskIds.length === 0) member.headStart = performance.now();
    for (const job of jobs) {
      this.#jobs.running(job, member);
      this.#ledger.charge(job);
      member.hold(job.id);
    }
    // Told once all are marked: a listener that settles a later one finds it running.
    for (const job of jobs) {
      if (job.attempts <= job.announced) continue; // given back, and dealt again
      job.announced = job.attempts;
      this.#announceTask('started', job);
    }
    return true;
  }

  /** Asks `member` for the tasks `ids` back (see the crew protocol's CANCEL). */
  #recall(member: Member, ids: number[]): void {
    if (this.#askBack(member, ids)) for (const id of ids) member.recalled.add(id);
  }

  /**
   * Takes back every task `member` has not begun, at once: fenced (see the crew protocol's begun
   * word), it begins none of them, though it may be deep in a task that keeps it from reading.
   * The fence lasts until the member answers the CANCEL sent for them (the last one sent).
   */
  #steal(member: Member): void {
    const word = member.begun as Int32Array;
    const fencedNow = fence(word) !== null; // fenced already, its word is as final
    const ids = member.taskIds.slice(member.begunCount());
    if (ids.length === 0) {
      // It had begun everything it holds: nothing to take, no answer to wait for.
      if (fencedNow) unfence(word);
      return;
    }
    for (const id of ids) {
      member.drop(id);
      const job = this.#jobs.get(id);
      if (job === undefined || job.member !== member) continue; // cancelled: settled already
      this.#ledger.refund(job);
      this.#jobs.requeue(job);
    }
    // Unanswered, the fence would keep the member from every task dealt to it later.
    if (this.#askBack(member, ids)) member.fencedUntil = member.cancelsSent;
    else this.#lose(member, 'could not be asked for its tasks back');
  }

  /** Sends `member` a CANCEL for `ids`; false if it cannot (the member is going away). */
  #askBack(member: Member, ids: number[]): boolean {
    try {
      sendCancel(member.channel, ids);
    } catch {
      return false; // its channel's end will retire it
    }
    member.cancelsSent++;
    return true;
  }

  #recruit(): void {
    const error = this.#staff.recruit();
    if (error !== null) this.#failQueued(error);
    this.#watch();
  }

  /** Reads what `member` sent, then schedules; false once it is no longer to be read. */
  #read(member: Member): boolean {
    const keep = readMember(member, this.#mailroom);
    this.#schedule();
    return keep;
  }

  /** What the inbox hands each message to. */
  readonly #mailroom = {
    ready: (member: Member): void => {
      this.#staff.ready(member);
      this.#announce('recruited', member);
    },
    reports: (member: Member, reports: unknown[]): void => {
      for (let at = 0; at < reports.length; at += REPORT_FIELDS) this.#report(member, reports, at);
      // The next task started about when these reports were sent: the clock is read once a frame.
      member.headStart = performance.now();
    },
    started: (member: Member, id: number): void => {
      // The task's module is imported: its time starts now.
      const job = this.#jobs.get(id);
      if (job !== undefined) member.imported.add(job.address);
      if (member.taskIds[0] === id) member.headStart = performance.now();
    },
    returned: (member: Member, ids: number[]): void => {
      if (++member.cancelsAnswered === member.fencedUntil && member.begun !== null) {
        unfence(member.begun);
        member.fencedUntil = 0;
      }
      for (const id of ids) {
        if (!member.drop(id)) continue;
        const job = this.#jobs.get(id);
        // Cancelled meanwhile: settled already, and it never ran.
        if (job === undefined || job.member !== member) continue;
        this.#ledger.refund(job);
        this.#jobs.requeue(job);
      }
    },
    ended: (member: Member): void => {
      const cause = member.handle.cause?.();
      this.#lose(member, cause ? `ended (${cause})` : 'ended');
    },
    broke: (member: Member, why: string): void => this.#lose(member, why),
  };

  /** The report at `at` in a frame's flat list of reports (see REPORTS). */
  #report(member: Member, reports: unknown[], at: number): void {
    const id = reports[at] as number;
    const crew = reports[at + 1];
    const status = reports[at + 2];
    const value = reports[at + 3];
    const ms = reports[at + 4];
    // A task cancelled after it was sent: its report is no longer wanted.
    if (!member.drop(id)) return;
    const job = this.#jobs.get(id);
    if (job === undefined) return;
    member.imported.add(job.address);
    job.suspect = false; // it ran without taking its member down
    this.#dealer.observe(job.address, ms);
    if (status === TaskStatus.completed) {
      this.#settle(job, TaskStatus.completed, value);
    } else if (status === TaskStatus.failed) {
      this.counts.failed++;
      this.#announceTask('failed', job, restoreError(value as ErrorRecord));
      // A listener may have cancelled it, or closed the pool.
      if (job.state === 'running') {
        if (this.#ledger.mayRunAgain(job)) this.#jobs.requeue(job);
        else this.#settle(job, TaskStatus.aborted, restoreError(value as ErrorRecord));
      }
    } else {
      this.#settle(job, TaskStatus.aborted, restoreError(value as ErrorRecord));
    }
    if (crew === CrewStatus.damaged) this.#lose(member, 'reported itself damaged');
  }

  /**
   * Retires a member that can no longer be trusted (pyre's `damaged`) and kills it. The tasks it
   * held are settled by the attempts ledger at once: fenced first, the member can claim no task
   * more, so what its begun word says is final, dead or still dying.
   */
  #lose(member: Member, what: string): void {
    if (member.state === 'retired') return;
    if (member.begun !== null) fence(member.begun);
    const lastWords = this.#lastWords(member);
    const error = this.#staff.lost(member, what, lastWords);
    this.#account(member, what, lastWords);
    if (error !== null) this.#failQueued(error);
  }

  /** The end of what `member` wrote to its standard error, for the errors its loss causes. */
  #lastWords(member: Member): string {
    // Inheriting, the team hears a member only while it starts; later it writes to yours directly.
    if (this.output === 'inherit' && member.state !== 'registered') return '';
    return member.handle.lastWords?.() ?? '';
  }

  /** Settles the tasks a lost member held, as the ledger says; `lastWords` end their errors. */
  #account(member: Member, what: string, lastWords: string): void {
    const { unbegun, retry, spent } = this.#ledger.settleLoss(member, this.#jobs);
    for (const job of retry) this.#jobs.requeue(job);
    for (const job of unbegun) this.#jobs.requeue(job);
    for (const job of spent) {
      const times = `${job.attempts} ${job.attempts === 1 ? 'time' : 'times'}`;
      const when = job.suspect ? 'while running' : 'before it reported';
      const error = new WorkerLostError(
        withLastWords(`crew member ${member.id} ${what} ${when} task ${label(job)}, ${times}: given up`, lastWords),
        'ERR_NEXUS_WORKER_LOST',
      );
      this.#settle(job, TaskStatus.aborted, error);
    }
  }

  /**
   * Cancels a task: dropped if queued; its member replaced if it may have begun there; asked back
   * if it waits there (it stays held until the member answers).
   */
  #cancel(job: Job, reason: unknown): void {
    if (job.state === 'done') return;
    const member = job.member;
    // Not held: its report is being taken (a listener of it cancels it): settling it is all there is.
    if (job.state !== 'running' || member === null || !member.taskIds.includes(job.id)) {
      this.#settle(job, TaskStatus.aborted, reason);
      return;
    }
    if (member.begun !== null) {
      // Taken back with every task the member has not begun, it provably never ran; if it was not
      // taken, it has begun, and runs still: its member is stopped.
      this.#steal(member);
      this.#settle(job, TaskStatus.aborted, reason);
      // Before the one the word names, it finished, and its report is on its way.
      const at = member.taskIds.indexOf(job.id);
      if (at !== -1 && at === member.begunCount() - 1) this.#lose(member, 'was stopped for a cancelled task');
      return;
    }
    // Without a word, the task at the head is taken to run, and those behind it to wait: asked
    // back, it stays held until the member answers (it keeps its attempt: it may begin first).
    this.#settle(job, TaskStatus.aborted, reason);
    if (member.taskIds[0] === job.id) this.#lose(member, 'was stopped for a cancelled task');
    else this.#askBack(member, [job.id]);
  }

  #settle(job: Job, status: TaskStatus.completed | TaskStatus.aborted, value: unknown): void {
    if (job.state === 'done') return;
    const completed = status === TaskStatus.completed;
    this.#jobs.settle(job, completed);
    if (job.onAbort !== null) job.signal?.removeEventListener('abort', job.onAbort);
    const event = completed ? 'completed' : 'aborted';
    // Asked first: an emit with nobody listening still costs a call and an array of its arguments.
    const heard = this.listenerCount(event) > 0;
    if (job.plan === null && !heard) {
      if (completed) job.resolve?.(value);
      else job.reject?.(value);
      return;
    }
    const outcome = new Settled(job.index, job.task, status, value, job.attempts);
    if (heard) this.#announce(event, outcome);
    if (job.plan !== null) {
      job.plan.live--;
      job.plan.record(outcome);
      this.#reader.settled(job.plan);
    } else if (completed) job.resolve?.(value);
    else job.reject?.(value);
  }

  /** Announces an event of a task, when someone listens. */
  #announceTask(event: 'queued' | 'started' | 'failed', job: Job, error?: Error): void {
    if (this.listenerCount(event) === 0) return;
    this.#announce(event, { index: job.index, task: job.task, attempts: job.attempts, error });
  }

  /**
   * Emits an event; a listener that throws must not leave the pool half-way through an update,
   * so its error is rethrown on its own, as Node does for a throwing callback.
   */
  #announce(event: keyof PoolEvents, detail: unknown): void {
    try {
      this.emit(event, detail, this.counts);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  /** Aborts every queued task with `error` (a failure of the pool itself, not of a task). */
  #failQueued(error: unknown): void {
    for (const job of this.#jobs.all()) if (job.state === 'queued') this.#settle(job, TaskStatus.aborted, error);
  }

  /** One alarm, at the earliest deadline (see Alarms). */
  #armSweep(): void {
    this.#alarms.sweepAt(this.#nextDeadline(), this.#sweep);
  }

  /**
   * The sweep: members that did not get ready in time are lost, and tasks that ran too long; then
   * a schedule, which also rebalances.
   */
  readonly #sweep = (): void => {
    for (const member of [...this.#staff.registered]) {
      // Its READY may be waiting unread behind this alarm, as a report may.
      if (!this.#read(member) || member.state !== 'registered') continue;
      if (performance.now() >= this.#readyBy(member)) {
        this.#lose(member, `did not get ready within ${this.startTimeout} s (startTimeout)`);
      }
    }
    for (const member of [...this.#staff.active]) {
      // A report may be waiting unread behind this alarm: take it before judging the task.
      if (!this.#read(member)) continue;
      const job = this.#timed(member);
      if (job !== undefined && performance.now() >= this.#deadline(member, job) && !this.#movedOn(member, job)) {
        member.drop(job.id);
        const error = new TaskTimeoutError(
          `task ${label(job)} ran longer than its timeout of ${job.timeout / 1000} s; crew member ${member.id} was replaced`,
          'ERR_NEXUS_TASK_TIMEOUT',
        );
        this.#settle(job, TaskStatus.aborted, error);
        this.#lose(member, 'timed out');
      }
    }
    this.#schedule();
  };

  #nextDeadline(): number {
    // While the team is short, the end of a pause in recruiting: with every member busy on a
    // long task, nothing else would come to recruit then.
    let next = Math.min(this.#staff.pauseEnds(this.counts.queued + this.counts.running), this.#rebalanceAt);
    for (const member of this.#staff.registered) next = Math.min(next, this.#readyBy(member));
    for (const member of this.#staff.active) {
      const job = this.#timed(member);
      if (job !== undefined) next = Math.min(next, this.#deadline(member, job));
    }
    return next;
  }

  /** When a member starting up is given up on. */
  #readyBy(member: Member): number {
    return this.startTimeout === 0 ? Number.POSITIVE_INFINITY : member.recruitedAt + this.startTimeout * 1000;
  }

  /**
   * The task `member` is taken to run, for its timeout: the first it holds, timed from
   * `headStart`, unless the begun word showed it had moved on to a later one (see #movedOn).
   */
  #timed(member: Member): Job | undefined {
    const moved = member.timedId !== 0 && member.taskIds.includes(member.timedId);
    return this.#jobs.get(moved ? member.timedId : (member.taskIds[0] ?? 0));
  }

  /**
   * Whether `member` has begun a task after `job`, which then finished, its report held back (a
   * member sends reports several to a frame): the later task is timed from now on instead.
   */
  #movedOn(member: Member, job: Job): boolean {
    const running = member.begun === null ? 0 : member.begunCount() - 1;
    if (running <= member.taskIds.indexOf(job.id)) return false;
    member.timedId = member.taskIds[running] as number;
    member.timedSince = performance.now();
    return true;
  }

  /**
   * When `job`, the task `member` runs, times out: never without a timeout, nor while the member
   * may still be importing its module (the import does not count against the timeout).
   */
  #deadline(member: Member, job: Job): number {
    if (job.timeout === 0 || !member.imported.has(job.address)) return Number.POSITIVE_INFINITY;
    return (job.id === member.timedId ? member.timedSince : member.headStart) + job.timeout;
  }

  /** With no work left: dismiss at once when closing, else after `linger` seconds. */
  #checkIdle(): void {
    if (this.counts.queued + this.counts.running > 0) {
      this.#idleSince = Number.NaN;
      return;
    }
    if (this.#closing) {
      this.#staff.dismissAll();
      this.#drained?.();
      return;
    }
    if (this.#staff.strength === 0) return;
    // Idle again while the alarm of an earlier idle spell is still set: it must find the pool
    // idle since now, or it would take the pool for busy and never dismiss anyone.
    if (Number.isNaN(this.#idleSince)) this.#idleSince = performance.now();
    if (this.#alarms.lingering) return;
    this.#alarms.linger(this.linger, () => {
      const idle = this.counts.queued + this.counts.running === 0 && this.#idleSince > 0;
      const left = this.linger * 1000 - (performance.now() - this.#idleSince);
      if (idle && left > 1) return Math.min(left / 1000, ALARM_HORIZON);
      if (idle) {
        this.#staff.recruitAfresh(); // for the next work
        this.#staff.dismissAll();
        this.#armSweep(); // the start-up deadlines of members dismissed starting are gone
      }
      return undefined;
    });
    this.#watch();
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
    this.#staff.recruitAfresh(); // no member is left to carry on with: the next task recruits at once
    // A listener may submit again meanwhile: its task is neither aborted here nor dealt to a
    // member about to be stopped, but queued (as under #schedule) for the caller's next one.
    const scheduling = this.#scheduling;
    this.#scheduling = true;
    try {
      const jobs = this.#jobs.all();
      for (const member of [...this.#staff.registered, ...this.#staff.active]) this.#staff.dismiss(member, true);
      for (const job of jobs) this.#settle(job, TaskStatus.aborted, error);
    } finally {
      this.#scheduling = scheduling;
    }
    // No task to time, no member to dismiss when idle: alarms kept would only keep the loop up.
    this.#alarms.cancel();
  }
}

/**
 * The frame that assigns `jobs` to `member`, or the error that stops them from being encoded.
 * Classes go by number: a class is sent once per member, with the first frame that needs it (a
 * module URL per frame was most of a one-task frame). `added` are the classes the frame sends,
 * which the member knows once the frame is sent (`member.learn`).
 */
function tasksFrame(member: Member, jobs: Job[]): { payload: Buffer; added: [string, string][] } | Error {
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
    return { payload: encodeTasks(added, assignments), added };
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** Whether `member` was retired, which code run while its frame was encoded can do. */
function isLost(member: Member): boolean {
  return member.state === 'retired';
}

/** pyre's `pool()`: the pool's class. */
export function pool(): typeof Pool {
  return Pool;
}
