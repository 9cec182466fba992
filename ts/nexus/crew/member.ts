/**
 * The team's record of one member of its crew: the channel to it, the handle that ends it, and
 * the tasks it holds. What the member itself runs is {@link Crew} (work.ts).
 */
import type { Channel } from '../../ipc/channel.js';
import type { TaskAddress } from './crossing.js';
import { UNBOUNDED } from './protocol.js';

/** How the team ends a member, and learns that it has ended: a process's or a thread's handle. */
export interface MemberHandle {
  /** Ends the member now (SIGKILL, or terminating the thread). */
  kill(): void;
  /** How it ended, once it has (for a process: after reaping it); null while it runs. */
  exited(): { code?: number | null; signal?: number | string | null } | null;
  /** Why the member died, when the recruiter knows (a worker thread's uncaught error). */
  cause?(): string | null;
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
  /** Ids asked back (see CANCEL) and not yet answered. */
  readonly recalled = new Set<number>();
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

  /** @internal Takes `id` off the tasks held; false if it was not held. */
  drop(id: number): boolean {
    const at = this.taskIds.indexOf(id);
    if (at === -1) return false;
    // Answers come in the order the tasks were sent, and shift() is cheaper than splice().
    if (at === 0) this.taskIds.shift();
    else this.taskIds.splice(at, 1);
    if (this.recalled.size > 0) this.recalled.delete(id);
    return true;
  }
}
