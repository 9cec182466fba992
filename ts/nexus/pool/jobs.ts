/**
 * The pool's jobs: one record per task from the moment it is queued until its outcome, the queue
 * of those waiting for a member, and the running counts of them all.
 */

import type { Task, TaskAddress } from '../crew/crossing.js';
import type { Member } from '../crew/member.js';
import type { Workplan } from './workplan.js';

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

/** A task in the pool's hands. */
export interface Job {
  id: number;
  task: Task;
  /** Where workers find the task's class (shared by the tasks of a class). */
  address: TaskAddress;
  /** The task's state: its fields as they were when it was queued (a shallow copy). */
  fields: Record<string, unknown>;
  state: 'queued' | 'running' | 'done';
  /** Runs that may have begun (see AttemptsLedger). */
  attempts: number;
  /**
   * The attempts announced as started: a task given back and dealt again is the same attempt,
   * announced once.
   */
  announced: number;
  /**
   * It was running when its member died: until it reports, it is dealt alone, so that a crash it
   * causes again costs no other task an attempt.
   */
  suspect: boolean;
  /** Milliseconds from the start of execution; 0 for no limit. */
  timeout: number;
  member: Member | null;
  index: number;
  plan: Workplan | null;
  signal: AbortSignal | null;
  onAbort: (() => void) | null;
  resolve: ((value: unknown) => void) | null;
  reject: ((error: unknown) => void) | null;
}

/**
 * Every job not yet settled, by id, and the queue of those waiting: tasks given back or to run
 * again wait at the front, in the order they came back, ahead of new ones.
 */
export class JobQueue {
  readonly counts: Counts = { queued: 0, running: 0, completed: 0, failed: 0, aborted: 0 };
  readonly #jobs = new Map<number, Job>();
  #queue: Job[] = [];
  #head = 0;
  #front: Job[] = [];
  #nextId = 1;

  /** A new job, queued in the counts (not yet in line: see {@link push}). */
  create(
    task: Task,
    timeoutMs: number,
    plan: Workplan | null,
    index: number,
    resolve: ((value: unknown) => void) | null,
    reject: ((error: unknown) => void) | null,
  ): Job {
    const job: Job = {
      id: this.#nextId++,
      task,
      address: undefined as unknown as TaskAddress,
      fields: undefined as unknown as Record<string, unknown>,
      state: 'queued',
      attempts: 0,
      announced: 0,
      suspect: false,
      timeout: timeoutMs,
      member: null,
      index,
      plan,
      signal: null,
      onAbort: null,
      resolve,
      reject,
    };
    this.#jobs.set(job.id, job);
    this.counts.queued++;
    return job;
  }

  /** Forgets a job that was never put in line (its task could not be read). */
  forget(job: Job): void {
    if (job.state === 'queued') this.counts.queued--;
    this.#jobs.delete(job.id);
  }

  get(id: number): Job | undefined {
    return this.#jobs.get(id);
  }

  /** Every job not yet settled. */
  all(): Job[] {
    return [...this.#jobs.values()];
  }

  /** Puts a new job in line, behind the others. */
  push(job: Job): void {
    this.#queue.push(job);
  }

  /** Puts jobs back at the very front, in this order (they were taken and not sent). */
  putBack(jobs: Job[]): void {
    this.#front.unshift(...jobs.filter(isQueued));
  }

  /** Whether jobs wait at the front (given back, or to run again). */
  get waitingAtFront(): boolean {
    return this.#front.length > 0;
  }

  /** The next job in line, or undefined. */
  next(): Job | undefined {
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

  /** Marks a job sent to `member`. */
  running(job: Job, member: Member): void {
    job.state = 'running';
    job.member = member;
    this.counts.queued--;
    this.counts.running++;
  }

  /** Puts a job its member gave back, or that is to run again, in line at the front. */
  requeue(job: Job): void {
    job.state = 'queued';
    job.member = null;
    this.counts.running--;
    this.counts.queued++;
    this.#front.push(job);
  }

  /** Marks a job done and forgets it. */
  settle(job: Job, completed: boolean): void {
    if (job.state === 'queued') this.counts.queued--;
    else this.counts.running--;
    job.state = 'done';
    this.#jobs.delete(job.id);
    if (completed) this.counts.completed++;
    else this.counts.aborted++;
  }
}

export function isQueued(job: Job): boolean {
  return job.state === 'queued';
}

/** How a job is named in messages: its place in its workplan, and its class. */
export function label(job: Job): string {
  const name = job.address?.name ?? job.task?.constructor?.name ?? 'task';
  return job.index >= 0 ? `#${job.index} (${name})` : name;
}
