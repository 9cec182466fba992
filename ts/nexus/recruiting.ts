/**
 * What the fork and threads recruiters share: one deployment per vacancy, how long members spin,
 * and a dismissal that ends a member without blocking the loop, so that dismissing N members
 * takes as long as one.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { checkOptions, type Rules, seconds, strings } from '../options.js';
import type { Member } from './crew/member.js';
import type { Recruiter, Team } from './team.js';

/**
 * How long a member with nothing left to do polls before it sleeps (DispatcherOptions.spin), and
 * the pool's own dispatcher for the next report: one task at a time, the team's next task came
 * within 300 µs, and a round trip took 25–40% less.
 * Only for a team no larger than the machine's CPUs: members that spin beside more members than
 * CPUs take them from the team: a pool of 8 on 2 CPUs did 50k trivial tasks/s with spinning
 * members, against 68k without (medians of 5 interleaved runs).
 */
export const TEAM_SPIN = 300;

/**
 * The entry every member runs, Fork's processes and Threads' threads alike: `dist/member.cjs`,
 * built from ts/member.cts into one file (see there).
 */
export const memberEntry = pathToFileURL(join(__dirname, '..', 'member.cjs'));

/** How long the members of `team` spin (see {@link TEAM_SPIN}). */
export function teamSpin(team: { readonly size: number }): number {
  return team.size <= availableParallelism() ? TEAM_SPIN : 0;
}

/**
 * How long the parent of `team` spins for results on a dispatcher of its own: as its members on
 * Linux, and not at all elsewhere. The parent's thread is the application's, and only on Linux
 * does a spin end as soon as one of the application's sockets has news.
 */
export function parentSpin(team: { readonly size: number }): number {
  return process.platform === 'linux' ? teamSpin(team) : 0;
}

/** Options of the recruiters. */
export interface RecruiterOptions {
  /** Seconds a dismissed member has to exit after its channel closes, before it is killed (5). */
  grace?: number;
  /**
   * Node options for the workers; by default the parent's (`process.execArgv`), without the
   * ones that cannot be shared (`--eval`, `--inspect`…) and without tsx, which a worker
   * registers itself when it meets a TypeScript task module.
   */
  execArgv?: string[];
}

const RECRUITER_OPTIONS: Rules<RecruiterOptions> = { grace: seconds, execArgv: strings };

export abstract class Recruiting implements Recruiter {
  readonly grace: number;
  readonly execArgv: string[];

  constructor(options: RecruiterOptions = {}) {
    checkOptions(new.target.name, options, RECRUITER_OPTIONS);
    const { grace = 5, execArgv = workerExecArgv(process.execArgv) } = options;
    this.grace = grace;
    this.execArgv = execArgv;
  }

  /**
   * Deploys a member for each of the team's vacancies. If one cannot be deployed, those already
   * are still returned (they are running, and the team must know them to reap them); the error
   * is thrown only when none was.
   */
  recruit(team: Team): Member[] {
    const recruits: Member[] = [];
    for (let n = team.vacancies(); n > 0; n--) {
      try {
        recruits.push(this.deploy(team));
      } catch (error) {
        if (recruits.length === 0) throw error;
        break; // the next vacancies() asks again, and reports the error if it persists
      }
    }
    return recruits;
  }

  abstract deploy(team: Team): Member;

  async dismiss(_team: Team, member: Member, force = false): Promise<void> {
    if (force) {
      member.handle.kill();
      member.channel.abort();
    } else {
      // The end of file tells the worker to exit once its current task is done.
      member.channel.close();
    }
    const deadline = performance.now() + this.grace * 1000;
    // Polled with a short back-off: most members are gone within a millisecond or two.
    for (let delay = 1; member.handle.exited() === null; delay = Math.min(2 * delay, 50)) {
      if (!force && performance.now() >= deadline) {
        member.handle.kill();
        force = true;
      }
      await sleep(delay);
    }
  }
}

const unshareable =
  /^--(inspect|debug|eval|print|input-type|test|watch|env-file|prof|cpu-prof|heap-prof|diagnostic-dir)/;
/** Options whose separate value may itself start with a dash (code, a module). */
const withValue = new Set([
  '-e',
  '--eval',
  '-p',
  '--print',
  '-r',
  '--require',
  '--import',
  '--loader',
  '--experimental-loader',
]);

/** The parent's Node options that a worker should have (see {@link RecruiterOptions.execArgv}). */
export function workerExecArgv(argv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.split('=', 2) as [string, string | undefined];
    // execArgv holds only Node's options, so a word that is not an option is a value.
    const next = argv[i + 1];
    const separate = withValue.has(flag) || (next !== undefined && !next.startsWith('-'));
    const value = inline ?? (separate ? argv[++i] : undefined);
    if (flag === '-e' || flag === '-p' || unshareable.test(flag)) continue;
    if (value !== undefined && /^tsx(\/|$)/.test(value)) continue;
    kept.push(...(inline === undefined && value !== undefined ? [flag, value] : [arg]));
  }
  return kept;
}
