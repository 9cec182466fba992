/**
 * The fork recruiter (pyre's `fork`, the default): each member is a fresh Node process running
 * the member entry, joined to the team by a socket pair on its fd 3. Node cannot clone itself
 * (V8 and libuv run threads), so "fork" starts a new process, as Python's spawn method does.
 */
import { fileURLToPath } from 'node:url';
import { Channel } from '../ipc/channel.js';
import { native } from '../native.js';
import { Crew } from './crew.js';
import { memberEntry, Recruiting, teamSpin } from './recruiting.js';
import type { Team } from './team.js';

const memberPath = fileURLToPath(memberEntry);

export class Fork extends Recruiting {
  deploy(team: Team): Crew {
    const entry = [memberPath, 'process', String(teamSpin(team))];
    const { pid, channel } = native.spawn(process.execPath, [...this.execArgv, ...entry]);
    let exit: { code: number | null; signal: number | null } | null = null;
    return new Crew(pid, new Channel(channel), {
      kill: () => {
        if (exit !== null) return; // reaped: the pid may belong to another process by now
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone: nothing to do.
        }
      },
      exited: () => {
        if (exit === null) {
          const status = native.reap(pid);
          if (status !== null) exit = { code: status.code ?? null, signal: status.signal ?? null };
        }
        return exit;
      },
    });
  }
}

/** pyre's `fork()`: the fork recruiter's class. */
export function fork(): typeof Fork {
  return Fork;
}
