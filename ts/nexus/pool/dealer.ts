/**
 * The dealing policy: which member gets which queued task, how many tasks a member holds at once
 * (its pipeline), and when a member with nothing to do takes unbegun tasks from another.
 *
 * - **A fair share.** The queue is shared out over the team the work will have (members at work,
 *   starting, and still to recruit), never more than its share to one member: a burst of
 *   `submit()` calls spreads over the members as one `assemble()` does, N tasks on N members
 *   run together, and a member that gets ready after another still finds its share waiting.
 *   The least loaded member is dealt first.
 * - **A pipeline per task class.** A member holds, beyond the task it runs, about a millisecond
 *   of further work, so that round trips overlap with work. How long a task takes is learned per
 *   class: short tasks never size the pipeline for long ones.
 * - **Rebalancing.** When the queue is empty and a member has nothing to do while another holds
 *   tasks it has not begun, those go back to the queue, and so to the idle member: at once, by
 *   fencing the busy member through its begun word (see the crew protocol), even while it is deep
 *   in a long task; or, for a member without a word, once it answers a CANCEL with RETURNED.
 * - A suspect (a task whose member died running it) is dealt alone, to a member holding nothing.
 */

// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import type { TaskAddress } from '../crew/crossing.js';
import type { Member } from '../crew/member.js';
import type { Job } from './jobs.js';

/** The work a member holds beyond the task it runs, in ms: hides the round trip of the next. */
const PIPELINE_MS = 1;

/** How long a member's task has run before the tasks it holds behind it are taken from it (ms). */
const STEAL_AFTER_MS = PIPELINE_MS;

/** How long the tasks of a class take, as the members report them. */
interface Pace {
  /** Milliseconds, a moving average; NaN before the first report. */
  ms: number;
  /** How many tasks of the class a member holds at once. */
  depth: number;
}

/** Where the dealer takes tasks from and hands them to: the pool. */
export interface Table {
  /** The next task in line. */
  next(): Job | undefined;
  /** Puts tasks taken and not dealt back at the front of the line, in order. */
  putBack(jobs: Job[]): void;
  /**
   * Sends `batch` to `member`: true if some were sent, false if every one was aborted (it could
   * not travel). Tasks not sent because the member was lost meanwhile are put back.
   */
  hand(member: Member, batch: Job[]): boolean;
  /** Asks `member` (one without a begun word) to give back the tasks `ids`, not yet begun. */
  recall(member: Member, ids: number[]): void;
  /** Takes back every task `member` (one with a begun word) has not begun, by fencing it. */
  steal(member: Member): void;
  /** The job of a task id, unless it was settled. */
  job(id: number): Job | undefined;
}

export class Dealer {
  /** The most tasks a member holds at once. */
  readonly pipeline: number;
  readonly #paces = new Map<TaskAddress, Pace>();

  constructor(pipeline: number) {
    this.pipeline = pipeline;
  }

  /** A report of a task of `address` that ran for `ms`. */
  observe(address: TaskAddress, ms: unknown): void {
    if (typeof ms !== 'number' || !(ms >= 0)) return;
    const pace = this.#pace(address);
    pace.ms = Number.isNaN(pace.ms) ? ms : 0.8 * pace.ms + 0.2 * ms;
    pace.depth = Math.min(this.pipeline, 1 + Math.ceil(PIPELINE_MS / Math.max(pace.ms, 0.001)));
  }

  #pace(address: TaskAddress): Pace {
    let pace = this.#paces.get(address);
    if (pace === undefined) {
      // Two until the class is known: one to run and one to follow, or one each for two members.
      pace = { ms: Number.NaN, depth: Math.min(2, this.pipeline) };
      this.#paces.set(address, pace);
    }
    return pace;
  }

  /**
   * Deals the `queued` tasks from `table` to `members`, sharing the work at hand (those and the
   * `held` tasks members hold already) out over `team` members: the team the work will have,
   * including members to come.
   */
  deal(members: ReadonlySet<Member>, queued: number, held: number, team: number, table: Table): void {
    const share = Math.ceil((queued + held) / Math.max(team, 1));
    for (const member of leastLoadedFirst(members)) {
      if (!this.#dealTo(member, share - member.taskIds.length, table)) return;
    }
  }

  /** Deals `member` up to `share` tasks its pipeline has room for; false when the line ran dry. */
  #dealTo(member: Member, share: number, table: Table): boolean {
    let dealt = 0;
    while (dealt < share && member.state === 'active' && member.fencedUntil === 0 && !holdsSuspect(member, table)) {
      const batch: Job[] = [];
      let dry = false;
      while (dealt + batch.length < share) {
        const job = table.next();
        if (job === undefined) {
          dry = true;
          break;
        }
        const held = member.taskIds.length + batch.length;
        if (job.suspect ? held > 0 : held >= this.#pace(job.address).depth) {
          table.putBack([job]); // it waits, first in line, for a member with room
          break;
        }
        batch.push(job);
        if (job.suspect) break; // alone
      }
      if (batch.length === 0) return !dry;
      // Every task of the batch aborted (they could not travel): the line moves on to the next.
      if (table.hand(member, batch)) dealt += batch.length;
      if (dry) return false;
    }
    return true;
  }

  /**
   * With the line empty: for members that hold nothing, takes back the tasks the busiest member
   * has not begun. Only from a member whose task has run for
   * {@link STEAL_AFTER_MS} or more: one in short tasks gets to the rest itself sooner than a
   * round trip would. Returns when to look again (ms, performance.now()), or Infinity.
   */
  rebalance(members: Iterable<Member>, table: Table): number {
    let idle = 0;
    for (const member of members) if (member.taskIds.length === 0 && !asked(member)) idle++;
    if (idle === 0) return Number.POSITIVE_INFINITY;
    const now = performance.now();
    let later = Number.POSITIVE_INFINITY;
    let donor: Member | null = null;
    let spare: number[] = [];
    for (const member of members) {
      // The first task held is running or about to: a member with one has none to give.
      if (member.taskIds.length <= 1 || asked(member)) continue;
      const unbegun = this.#unbegun(member, table);
      if (unbegun.length === 0) continue;
      const ripe = member.headStart + STEAL_AFTER_MS;
      if (ripe > now) later = Math.min(later, ripe);
      else if (unbegun.length > spare.length) {
        donor = member;
        spare = unbegun;
      }
    }
    if (donor === null) return later;
    if (donor.begun !== null)
      table.steal(donor); // all it has not begun: dealt out again
    else table.recall(donor, spare.slice(spare.length - Math.max(1, Math.floor((spare.length * idle) / (idle + 1)))));
    return Number.POSITIVE_INFINITY;
  }

  /**
   * The tasks `member` holds that it has not begun. Short or not, they are taken: how soon the
   * member would begin them depends on the task it runs, which may be long whatever its class.
   */
  #unbegun(member: Member, table: Table): number[] {
    // The first task held is running, or about to: the member is between two tasks. A member
    // without a word is taken to be running it.
    const from = member.begun === null ? 1 : Math.max(1, member.begunCount());
    const ids: number[] = [];
    for (let i = from; i < member.taskIds.length; i++) {
      const id = member.taskIds[i] as number;
      const job = table.job(id);
      if (job === undefined || job.suspect) continue; // settled (cancelled), or to stay alone
      ids.push(id);
    }
    return ids;
  }
}

/**
 * Whether `member` was asked for tasks back and has not answered yet: it neither gives nor takes,
 * since the tasks it gave up are in the line already, and its answer changes what it holds.
 */
function asked(member: Member): boolean {
  return member.recalled.size > 0 || member.fencedUntil !== 0;
}

/** Whether `member` holds a suspect: it then holds nothing else. */
function holdsSuspect(member: Member, table: Table): boolean {
  return member.taskIds.length === 1 && table.job(member.taskIds[0] as number)?.suspect === true;
}

/** The members, those holding the fewest tasks first. */
function leastLoadedFirst(members: ReadonlySet<Member>): Iterable<Member> {
  if (members.size === 1) return members; // one at a time, with one member: nothing to sort
  return [...members].sort((a, b) => a.taskIds.length - b.taskIds.length);
}
