import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Crew, Member, pipe, type Recruiter, type Team } from '../dist/index.js';

// Helpers shared by the pool specs (pool-*.spec.ts).

/** Each task's executions, from the log its runs append to. */
export async function executions(log: string): Promise<Map<number, number>> {
  const runs = new Map<number, number>();
  const text = await readFile(log, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (line !== '') runs.set(Number(line), (runs.get(Number(line)) ?? 0) + 1);
  }
  return runs;
}

export async function logFile(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), 'nexus-pool-')), 'runs.log');
}

/** Whether a process is gone and reaped: kill(pid, 0) still succeeds on a zombie. */
export function reaped(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * A crew member in this thread: Crew.work runs on the other end of a pipe once `start` calls
 * what it is given (at once by default).
 */
export function inThisThread(id: number, start: (work: () => void) => void = (work) => work()): Member {
  const [ours, theirs] = pipe();
  let ended: { code: number } | null = null;
  start(() => {
    void Crew.work(theirs, id).then(() => {
      theirs.close();
      ended = { code: 0 };
    });
  });
  return new Member(id, ours, { kill: () => theirs.abort(), exited: () => ended });
}

export async function dismissInThisThread(_team: Team, member: Member): Promise<void> {
  member.channel.close();
  while (member.handle.exited() === null) await new Promise((resolve) => setImmediate(resolve));
}

/** A recruiter of members in this thread, on the other end of a pipe. */
export class InThisThread implements Recruiter {
  #deployed = 0;
  recruit(team: Team) {
    return Array.from({ length: team.vacancies() }, () => this.deploy());
  }
  deploy() {
    return inThisThread(++this.#deployed);
  }
  dismiss = dismissInThisThread;
}

/** A small seeded random number generator (mulberry32): the same seed, the same draws. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * This process's descriptors of the kinds a member can cost its team (sockets, pipes, shared
 * memory), with what they are: others, which a loader or ava's own traffic may open and close
 * meanwhile, are left out. Linux only.
 */
export function memberDescriptors(): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return `${fd} ${readlinkSync(`/proc/self/fd/${fd}`)}`;
      } catch {
        return `${fd} closed`; // the directory's own descriptor, gone once read
      }
    })
    .filter((entry) => /socket:|pipe:|memfd:/.test(entry))
    .sort();
}
