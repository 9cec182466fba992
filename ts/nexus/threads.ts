/**
 * The threads recruiter: each member is a worker thread running the same member entry and the
 * same crew protocol over a socket pair, for tasks that gain from a cheaper start and shared
 * memory more than from the isolation of a process.
 */
import { Worker } from 'node:worker_threads';
import { adopt, Channel } from '../ipc/channel.js';
import { native } from '../native.js';
import { Member } from './crew/member.js';
import { BEGUN_BYTES } from './crew/protocol.js';
import { OutputRelay } from './output.js';
import { memberEntry, Recruiting, teamSpin } from './recruiting.js';
import type { Team } from './team.js';

export class Threads extends Recruiting {
  deploy(team: Team): Member {
    const { fd, channel } = native.pair();
    const begun = new SharedArrayBuffer(BEGUN_BYTES);
    // Set by the thread once its end of the pair is its own (see the 'exit' listener).
    const adopted = new Int32Array(new SharedArrayBuffer(4));
    const output = team.output ?? 'inherit';
    let worker: Worker;
    try {
      const argv = ['thread', teamSpin(team), fd];
      // Its stderr always comes through us, as Node would pass it on, so that we hear its last words.
      const stdout = output !== 'inherit';
      worker = new Worker(memberEntry, {
        argv,
        execArgv: this.execArgv,
        workerData: { begun, adopted: adopted.buffer },
        stdout,
        stderr: true,
      });
    } catch (error) {
      adopt(fd).close(); // the thread never took its end
      throw error;
    }
    let exit: { code: number } | null = null;
    worker.once('exit', (code) => {
      exit = { code };
      // A thread that died before it took its end (a preload that threw, say) left it open here:
      // closed, our channel ends and the team hears of the death at once, not at startTimeout.
      if (Atomics.load(adopted, 0) === 0) adopt(fd).close();
    });
    // An uncaught error ends the thread; the team sees its channel end, replaces the member, and
    // names the error in what it reports.
    let cause: string | null = null;
    worker.on('error', (error) => {
      cause = `${error.name}: ${error.message}`;
    });
    const relay = new OutputRelay(worker.threadId, output);
    if (output !== 'inherit') relay.listen(worker.stdout, 'stdout');
    relay.listen(worker.stderr, 'stderr');
    const handle = {
      kill: () => void worker.terminate(),
      exited: () => exit,
      cause: () => cause,
      lastWords: () => relay.lastWords,
    };
    return new Member(worker.threadId, new Channel(channel), handle, new Int32Array(begun));
  }
}

/** The threads recruiter's class. */
export function threads(): typeof Threads {
  return Threads;
}
