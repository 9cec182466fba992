/**
 * The fork recruiter (pyre's `fork`, the default): each member is a fresh Node process running
 * the member entry, joined to the team by a socket pair on its fd 3. Node cannot clone itself
 * (V8 and libuv run threads), so "fork" starts a new process, as Python's spawn method does.
 */
import { closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Channel } from '../ipc/channel.js';
import { native } from '../native.js';
import { Member } from './crew/member.js';
import { memberEntry, Recruiting, teamSpin } from './recruiting.js';
import type { Team } from './team.js';

const memberPath = fileURLToPath(memberEntry);

export class Fork extends Recruiting {
  deploy(team: Team): Member {
    const entry = [memberPath, 'process', String(teamSpin(team))];
    // The begun word (see the crew protocol): the member inherits it on fd 4, and we keep the mapping.
    const { words, fd } = native.sharedWords(1);
    let spawned: ReturnType<typeof native.spawn>;
    try {
      spawned = native.spawn(process.execPath, [...this.execArgv, ...entry], fd);
    } finally {
      closeSync(fd);
    }
    const { pid, channel } = spawned;
    const begun = new Int32Array(words.buffer, words.byteOffset, 1);
    let exit: { code: number | null; signal: number | null } | null = null;
    return new Member(
      pid,
      new Channel(channel),
      {
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
      },
      begun,
    );
  }
}

/** pyre's `fork()`: the fork recruiter's class. */
export function fork(): typeof Fork {
  return Fork;
}
