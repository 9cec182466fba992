/**
 * Staffing: the team's members in three sets (registered: starting; active: ready for work;
 * retired: dismissed and not yet reaped), recruiting them, and dismissing them. When recruiting
 * fails (the recruiter throws, or members fail to get ready three times in a row), a team that
 * still has members carries on shorthanded for a pause that doubles up to a minute.
 */
import { availableParallelism } from 'node:os';
// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import { NexusError } from '../../errors.js';
import { WorkerLostError } from '../crew/crossing.js';
import type { Member } from '../crew/member.js';
import { withLastWords } from '../output.js';
import type { Recruiter, Team } from '../team.js';

/** How many members may be starting at a time (see {@link Staffing.vacancies}). */
const startingAtOnce = availableParallelism();

/** What staffing tells its team. */
export interface StaffingEvents {
  /** A member was recruited (starting): its channel is to be read from now on. */
  enlisted(member: Member): void;
  /** A member left the team; its dismissal is under way. */
  retired(member: Member): void;
}

export class Staffing {
  /** Members starting up. */
  readonly registered = new Set<Member>();
  /** Members ready for work. */
  readonly active = new Set<Member>();
  /** Members dismissed and not yet reaped. */
  readonly retired = new Set<Member>();
  readonly size: number;
  readonly recruiter: Recruiter;
  readonly #team: Team;
  readonly #events: StaffingEvents;
  /** The dismissals under way, by member. */
  readonly #dismissals = new Map<Member, Promise<void>>();
  #startFailures = 0;
  /**
   * After recruiting failed with members left to do the work, the team carries on shorthanded
   * until then (ms, performance.now(); NaN for not at all, a double from the start: see Pool's
   * #idleSince), and recruits again sooner when a member gets ready or a member at work is lost.
   */
  #recruitAfter = Number.NaN;
  #recruitPause = 1000;

  constructor(team: Team, size: number, recruiter: Recruiter, events: StaffingEvents) {
    this.#team = team;
    this.size = size;
    this.recruiter = recruiter;
    this.#events = events;
  }

  /** Members starting or at work. */
  get strength(): number {
    return this.registered.size + this.active.size;
  }

  /**
   * How many recruits would take the team to full strength for `work` tasks, with at most as many
   * members starting at once as there are CPUs: members that start together share the CPUs, so
   * all of them would be late (8 at once on 2 CPUs gave a first result in 1.2 s, against 0.2 s
   * for 2 at a time). The next ones are recruited as these report ready. None while the team
   * carries on shorthanded, for a pause after recruiting failed.
   */
  vacancies(work: number): number {
    if (this.pausedRecruiting()) return 0;
    return Math.max(0, Math.min(this.shortBy(work), startingAtOnce - this.registered.size));
  }

  /**
   * How many members the team will have for `work` tasks: those it has, and those it will recruit
   * unless recruiting is paused. The dealer shares the queue out over them.
   */
  expected(work: number): number {
    if (this.pausedRecruiting()) return this.strength;
    return Math.max(this.strength, Math.min(work, this.size));
  }

  /** Whether a pause in recruiting lasts yet. */
  pausedRecruiting(): boolean {
    return this.#recruitAfter > 0 && performance.now() < this.#recruitAfter;
  }

  /** When the pause in recruiting ends, while the team is short for `work`; Infinity otherwise. */
  pauseEnds(work: number): number {
    return this.pausedRecruiting() && this.shortBy(work) > 0 ? this.#recruitAfter : Number.POSITIVE_INFINITY;
  }

  /** How many members more than it has the team wants for `work` tasks. */
  shortBy(work: number): number {
    return Math.min(work, this.size) - this.strength;
  }

  /**
   * Recruits for the vacancies the team reports. Returns the error that stops the work if nothing
   * can run it (the recruiter failed and no member is left), else null.
   */
  recruit(): Error | null {
    let recruits: Member[];
    try {
      recruits = this.recruiter.recruit(this.#team);
    } catch (cause) {
      const message = `cannot recruit a crew member: ${(cause as Error).message}`;
      return this.#cannotRecruit(new NexusError(message, 'ERR_NEXUS_RECRUIT', { cause }), this.strength);
    }
    const now = performance.now();
    for (const member of recruits) {
      member.recruitedAt = now;
      this.registered.add(member);
      this.#events.enlisted(member);
    }
    return null;
  }

  /** A starting member said it is ready. */
  ready(member: Member): void {
    this.registered.delete(member);
    this.active.add(member);
    member.state = 'active';
    this.recruitAfresh(); // recruiting works: fill any places left at once
  }

  /**
   * `member` is lost (its tasks already taken off it). Returns the error that stops the work if
   * members keep failing to start and none is left at work, else null; it ends with `lastWords`,
   * the end of what the last of them wrote to its standard error, if the team heard it.
   */
  lost(member: Member, what: string, lastWords = ''): Error | null {
    const starting = member.state === 'registered';
    this.dismiss(member, true);
    // A member at work lost, or none left: a place to fill now, not after a pause.
    if (!starting || this.strength === 0) this.#recruitAfter = Number.NaN;
    if (starting && ++this.#startFailures >= 3) {
      this.#startFailures = 0;
      const failed = `crew members fail to get ready (3 in a row; the last ${what})`;
      const error = new WorkerLostError(
        lastWords === '' ? `${failed}: see their standard error` : withLastWords(failed, lastWords),
        'ERR_NEXUS_WORKER_LOST',
      );
      // Members still starting are likely to fail as these did: only members at work count.
      return this.#cannotRecruit(error, this.active.size);
    }
    return null;
  }

  /** Forgets failed starts and any pause in recruiting. */
  recruitAfresh(): void {
    this.#startFailures = 0;
    this.#recruitAfter = Number.NaN;
    this.#recruitPause = 1000;
  }

  /**
   * Recruiting failed. With `members` that can do the work, the team carries on shorthanded for a
   * pause. With none, nothing could run the queued tasks: returns `error`, to abort them with.
   */
  #cannotRecruit(error: Error, members: number): Error | null {
    if (members === 0) return error;
    this.#recruitAfter = performance.now() + this.#recruitPause;
    this.#recruitPause = Math.min(2 * this.#recruitPause, 60_000);
    return null;
  }

  /**
   * Dismisses `member`: at once when `force`, else once it has finished (its channel closed).
   * Resolves once it is gone and reaped.
   */
  dismiss(member: Member, force: boolean): Promise<void> {
    // A listener of 'retired' may have dismissed it already.
    if (member.state === 'retired') return Promise.resolve();
    this.registered.delete(member);
    this.active.delete(member);
    member.state = 'retired';
    this.retired.add(member);
    this.#events.retired(member);
    const dismissal = this.recruiter
      .dismiss(this.#team, member, force)
      .catch(() => {})
      .finally(() => {
        this.retired.delete(member);
        this.#dismissals.delete(member);
      });
    this.#dismissals.set(member, dismissal);
    return dismissal;
  }

  /** Dismisses every member: those at work once their tasks are done, those starting at once. */
  dismissAll(): void {
    // A member still starting has nothing to finish, and may never read its channel's end.
    for (const member of [...this.registered]) this.dismiss(member, true);
    for (const member of [...this.active]) this.dismiss(member, false);
  }

  /** Resolves once every member dismissed so far is reaped. */
  async reaped(): Promise<void> {
    while (this.#dismissals.size > 0) await Promise.all(this.#dismissals.values());
  }
}
