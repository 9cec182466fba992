/**
 * pyre's `team` and `recruiter` protocols: a team carries out a workplan with members that a
 * recruiter makes. Their defaults are {@link Pool} and {@link Fork}.
 */

import type { Task } from './crew/crossing.js';
import type { Member } from './crew/member.js';
import { Fork } from './fork.js';
import type { MemberOutput } from './output.js';
import { Pool } from './pool/pool.js';
import { protocol } from './protocol.js';

/** A process collective that coöperates to carry out a workplan (pyre's `team`). */
export interface Team {
  /** The number of members to recruit. */
  readonly size: number;
  /** The strategy for recruiting members. */
  readonly recruiter: Recruiter;
  /** How members' output reaches the user, for recruiters that can say ('inherit' if not given). */
  readonly output?: MemberOutput;
  /** Recruits a team to carry out the tasks in `workplan`. */
  assemble(workplan: Iterable<Task> | AsyncIterable<Task>): unknown;
  /** How many recruits would take the team to full strength for the work it has. */
  vacancies(): number;
}

export const Team = protocol<Team>('team', ['assemble', 'vacancies'], () => Pool);

/** The protocol of resource allocation strategies (pyre's `recruiter`). */
export interface Recruiter {
  /**
   * Deploys one member per vacancy of `team`. If a deploy fails after others succeeded, returns
   * those (they are running: the team must know them to dismiss and reap them); throws only when
   * none was deployed.
   */
  recruit(team: Team): Member[];
  /** Starts one member of `team`. */
  deploy(team: Team): Member;
  /**
   * `team` has dismissed `member`: end it (at once when `force`, else by closing its channel)
   * and resolve once it is gone and reaped. Never blocks the event loop.
   */
  dismiss(team: Team, member: Member, force?: boolean): Promise<void>;
}

export const Recruiter = protocol<Recruiter>('recruiter', ['recruit', 'deploy', 'dismiss'], () => Fork);
