/**
 * The team's record of one member of its crew: the channel to it, the handle that ends it, and
 * the tasks it holds. What the member itself runs is {@link Crew} (work.ts).
 */
import type { Channel } from '../../ipc/channel.js';
import type { TaskAddress } from './crossing.js';
import { begunCount, nextSeq, UNBOUNDED } from './protocol.js';

/** How the team ends a member, and learns that it has ended: a process's or a thread's handle. */
export interface MemberHandle {
  /** Ends the member now (SIGKILL, or terminating the thread). */
  kill(): void;
  /** How it ended, once it has (for a process: after reaping it); null while it runs. */
  exited(): { code?: number | null; signal?: number | string | null } | null;
  /** Why the member died, when the recruiter knows (a worker thread's uncaught error). */
  cause?(): string | null;
  /**
   * The end of what the member wrote to its standard error, as far as the team has heard it
   * ('' for nothing): see PoolOptions.output.
   */
  lastWords?(): string;
}

/** The team side of a crew member: its channel, and the tasks it holds, in the order sent. */
export class Member {
  /** Where the member is in its life: registered (starting), active, or retired. */
  state: 'registered' | 'active' | 'retired' = 'registered';
  /**
   * Ids of the tasks sent and not yet answered (reported or returned), in the order sent: the
   * oldest is the one running, or the next to. A task cancelled while the member holds it stays
   * here until the member answers for it, so that the list stays the member's own queue.
   */
  readonly taskIds: number[] = [];
  /** The number of each task held, in the order sent (see the crew protocol's begun word). */
  readonly seqs: number[] = [];
  /** Ids asked back by a CANCEL not yet answered (from a member without a begun word). */
  readonly recalled = new Set<number>();
  /** CANCEL messages sent to the member, and RETURNED answers read: it answers each, in order. */
  cancelsSent = 0;
  cancelsAnswered = 0;
  /**
   * While the team has fenced the member (see the begun word): the CANCEL whose answer lifts the
   * fence; 0 when not fenced. A fenced member is dealt nothing.
   */
  fencedUntil = 0;
  /** When the oldest task began (ms, performance.now()); NaN before the first. */
  headStart = Number.NaN; // a double from the start: see Pool's #idleSince
  /**
   * @internal A task the member began after the oldest it holds, which finished with its report
   * held back, and when the team saw it begun: its timeout runs from then (0: none).
   */
  timedId = 0;
  timedSince = Number.NaN;
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
  /** The number of the last task sent. */
  #sent = 0;

  constructor(
    /** The member's pid, or thread id. */
    readonly id: number,
    readonly channel: Channel,
    readonly handle: MemberHandle,
    /**
     * The word the member marks each task it begins in (see the crew protocol's begun word), or
     * null: the team then counts every task the member holds as begun when it is lost.
     */
    readonly begun: Int32Array | null = null,
  ) {
    channel.outputBound = UNBOUNDED;
  }

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

  /** @internal The member holds task `id` now, sent after those it holds. */
  hold(id: number): void {
    this.#sent = nextSeq(this.#sent);
    this.taskIds.push(id);
    this.seqs.push(this.#sent);
  }

  /** @internal Takes `id` off the tasks held; false if it was not held. */
  drop(id: number): boolean {
    const at = this.taskIds.indexOf(id);
    if (at === -1) return false;
    // Answers come in the order the tasks were sent, and shift() is cheaper than splice().
    if (at === 0) {
      this.taskIds.shift();
      this.seqs.shift();
    } else {
      this.taskIds.splice(at, 1);
      this.seqs.splice(at, 1);
    }
    if (this.recalled.size > 0) this.recalled.delete(id);
    return true;
  }

  /** @internal Takes every task off the member: the ids it held, in order. */
  dropAll(): number[] {
    this.seqs.length = 0;
    this.recalled.clear();
    return this.taskIds.splice(0);
  }

  /** @internal How many of the tasks held the member has begun (see the begun word). */
  begunCount(): number {
    return begunCount(this.begun, this.seqs);
  }
}
