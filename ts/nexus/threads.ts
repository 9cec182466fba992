/**
 * The threads recruiter: each member is a worker thread running the same member entry and the
 * same crew protocol over a socket pair, for tasks that gain from a cheaper start and shared
 * memory more than from the isolation of a process.
 */
import { Worker } from 'node:worker_threads';
import { adopt, Channel } from '../ipc/channel.js';
import { native } from '../native.js';
import { Crew } from './crew.js';
import { memberEntry, Recruiting, teamSpin } from './recruiting.js';
import type { Team } from './team.js';

export class Threads extends Recruiting {
  deploy(team: Team): Crew {
    const { fd, channel } = native.pair();
    let worker: Worker;
    try {
      const argv = ['thread', teamSpin(team), fd];
      worker = new Worker(memberEntry, { argv, execArgv: this.execArgv });
    } catch (error) {
      adopt(fd).close(); // the thread never took its end
      throw error;
    }
    let exit: { code: number } | null = null;
    worker.once('exit', (code) => {
      exit = { code };
    });
    // An uncaught error ends the thread; the team sees its channel end, replaces the member, and
    // names the error in what it reports.
    let cause: string | null = null;
    worker.on('error', (error) => {
      cause = `${error.name}: ${error.message}`;
    });
    return new Crew(worker.threadId, new Channel(channel), {
      kill: () => void worker.terminate(),
      exited: () => exit,
      cause: () => cause,
    });
  }
}

/** The threads recruiter's class. */
export function threads(): typeof Threads {
  return Threads;
}
