/**
 * The attempts ledger: how often each task may have run. The pool's promise is that a task runs
 * at most `1 + retries` times, and that its `attempts` counts every run that may have begun.
 *
 * - Sending a task to a member charges it an attempt: from then on it may begin.
 * - A member that gives a task back (it answers a CANCEL with RETURNED) proves it never began:
 *   the attempt is refunded. So are the tasks the team takes back from a member it fences (see the
 *   crew protocol's begun word): fenced, the member can begin none of them.
 * - A member lost while holding tasks: the begun word (see the crew protocol) tells which of
 *   them began. Those after it never did, and are refunded and run elsewhere. Those up to it may
 *   have run (the last one was running; the ones before it finished, but their reports were held
 *   back and died with the member): each keeps its attempt, and runs again only while that keeps
 *   it within `1 + retries`. Without a word, every task held counts as begun.
 * - A member lost is fenced first, then accounted for at once: fenced, it can claim no task more,
 *   so the word cannot change between the reading and the kill.
 */
import type { Member } from '../crew/member.js';
import type { Job, JobQueue } from './jobs.js';

/** What a lost member's tasks come to. */
export interface Loss {
  /** Never began: run elsewhere, uncharged. */
  unbegun: Job[];
  /** May have begun, and may run again. */
  retry: Job[];
  /** May have begun, as often as they may: given up. */
  spent: Job[];
}

export class AttemptsLedger {
  readonly retries: number;

  constructor(retries: number) {
    this.retries = retries;
  }

  /** `job` is sent to a member: from now on it may begin. */
  charge(job: Job): void {
    job.attempts++;
  }

  /** `job` provably never began (its member gave it back). */
  refund(job: Job): void {
    job.attempts--;
  }

  /** Whether `job`, having run `job.attempts` times, may run once more. */
  mayRunAgain(job: Job): boolean {
    return job.attempts <= this.retries;
  }

  /** Whether the task `id` that `member` holds may have begun. */
  mayHaveBegun(member: Member, id: number): boolean {
    return member.taskIds.indexOf(id) < member.begunCount();
  }

  /**
   * Takes every task off `member`, which is gone (dead, or killed and reaped), and says what each
   * comes to. The one it was running when it died becomes a suspect (dealt alone until it
   * reports); without a word, each task it held does, since any of them may have been running.
   */
  settleLoss(member: Member, jobs: JobQueue): Loss {
    const begun = member.begunCount();
    const ids = member.dropAll();
    const loss: Loss = { unbegun: [], retry: [], spent: [] };
    ids.forEach((id, i) => {
      const job = jobs.get(id);
      if (job === undefined || job.member !== member) return; // settled meanwhile (cancelled)
      if (i >= begun) {
        this.refund(job);
        loss.unbegun.push(job);
        return;
      }
      if (i === begun - 1 || member.begun === null) job.suspect = true;
      (this.mayRunAgain(job) ? loss.retry : loss.spent).push(job);
    });
    return loss;
  }
}
