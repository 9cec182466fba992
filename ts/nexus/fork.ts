/**
 * The fork recruiter (pyre's `fork`, the default): each member is a fresh Node process running
 * the member entry, joined to the team by a socket pair on its fd 3. Node cannot clone itself
 * (V8 and libuv run threads), so "fork" starts a new process, as Python's spawn method does.
 */
import { closeSync, readSync } from 'node:fs';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Channel } from '../ipc/channel.js';
import { native } from '../native.js';
import { Member } from './crew/member.js';
import { OutputRelay, type OutputStream } from './output.js';
import { memberEntry, Recruiting, teamSpin } from './recruiting.js';
import type { Team } from './team.js';

const memberPath = fileURLToPath(memberEntry);

export class Fork extends Recruiting {
  deploy(team: Team): Member {
    const output = team.output ?? 'inherit';
    // Inheriting, the member's stderr comes to us while it starts, so that one that dies starting
    // can say why in the error; it takes the team's own back before it says it is ready.
    const entry = [memberPath, 'process', String(teamSpin(team))];
    if (output === 'inherit') entry.push('take-back-stderr');
    // The begun word (see the crew protocol): the member inherits it on fd 4, and we keep the mapping.
    const { words, fd } = native.sharedWords(1);
    let spawned: ReturnType<typeof native.spawn>;
    try {
      const pipes = output === 'inherit' ? 'watch-start' : 'capture';
      spawned = native.spawn(process.execPath, [...this.execArgv, ...entry], fd, pipes);
    } finally {
      closeSync(fd);
    }
    const { pid, channel } = spawned;
    const relay = new OutputRelay(pid, output);
    const pipes = [listen(spawned.stdout, 'stdout', relay), listen(spawned.stderr, 'stderr', relay)];
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
            if (status !== null) {
              exit = { code: status.code ?? null, signal: status.signal ?? null };
              for (const pipe of pipes) pipe?.close(); // what it wrote is all there: no need to wait
            }
          }
          return exit;
        },
        lastWords: () => {
          pipes[1]?.drain(); // it may have died with its last words unread
          return relay.lastWords;
        },
      },
      begun,
    );
  }
}

/** Our end of a member's output pipe, read into its relay. */
interface Pipe {
  /** Reads what waits in the pipe now, without waiting for the event loop to. */
  drain(): void;
  /** Reads what waits, then closes our end. */
  close(): void;
}

/** Where {@link Pipe.drain} reads into; what it read is copied out, for a write that may keep it. */
const scratch = Buffer.alloc(64 * 1024);

/**
 * Reads our end `fd` of a member's `stream` into `relay` as the event loop finds data, and closes
 * it at the end of the stream; null for no pipe.
 */
function listen(fd: number | null, stream: OutputStream, relay: OutputRelay): Pipe | null {
  if (fd === null) return null;
  const socket = new Socket({ fd, readable: true, writable: false });
  let open = true;
  const take = (): void => {
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
      relay.take(stream, chunk);
    }
  };
  const end = (): void => {
    if (!open) return;
    open = false;
    socket.destroy();
    relay.end(stream);
  };
  socket.on('readable', take);
  socket.on('end', end);
  socket.on('error', end);
  const drain = (): void => {
    if (!open) return;
    take(); // what the socket has read already comes first
    for (;;) {
      let length: number;
      try {
        length = readSync(fd, scratch);
      } catch {
        return; // EAGAIN: nothing more for now
      }
      if (length === 0) {
        end();
        return;
      }
      relay.take(stream, Buffer.from(scratch.subarray(0, length)));
    }
  };
  return {
    drain,
    close: () => {
      drain();
      end();
    },
  };
}

/** pyre's `fork()`: the fork recruiter's class. */
export function fork(): typeof Fork {
  return Fork;
}
