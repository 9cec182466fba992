// The contenders of the pool benchmark, each behind the same small interface so that the driver
// treats them alike. `load()` imports what the contender needs (not timed); the function it
// returns creates a pool of `size` workers (timed by the start-up scenario) with
//   run(kind, arg)    one task: resolves to its result
//   all(kind, args)   many tasks at once: resolves to their results, in order
//   close()           ends the workers; resolves once they are gone
//   members()         (pyre-nexus only) how many members are ready for work: its pool recruits
//                     for the work at hand, where the others start all their workers at once
// `kind` names a task body of ./tasks.js: 'trivial', 'spin' or 'sleep'.
import { fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { frame, reader } from './framing.js';

const here = (file) => new URL(file, import.meta.url);
const path = (file) => decodeURIComponent(here(file).pathname);

/** `all` for pools whose API takes one task at a time. */
function eachOf(run) {
  return { run, all: (kind, args) => Promise.all(args.map((arg) => run(kind, arg))) };
}

/** pyre-nexus: Pool with the default Fork recruiter, or with Threads. */
function nexus(recruiter) {
  return async () => {
    const { Pool, Threads } = await import('../../dist/index.js');
    const { Sleep, Spin, Trivial } = await import('./nexus-tasks.js');
    const classes = { trivial: Trivial, spin: Spin, sleep: Sleep };
    return (size) => {
      const pool = new Pool({
        size,
        ...(recruiter === 'threads' ? { recruiter: new Threads() } : {}),
      });
      return {
        run: (kind, arg) => pool.submit(new classes[kind](arg)),
        async all(kind, args) {
          const report = await pool.assemble(args.map((arg) => new classes[kind](arg)));
          if (report.aborted > 0) throw report.outcomes.find((o) => o.error !== undefined).error;
          return report.outcomes.map((o) => o.result);
        },
        close: () => pool.close(),
        members: () => pool.active.size,
      };
    };
  };
}

async function piscina() {
  const { Piscina } = await import('piscina');
  return (size) => {
    const pool = new Piscina({ filename: here('tasks.js').href, minThreads: size, maxThreads: size });
    return { ...eachOf((kind, arg) => pool.run(arg, { name: kind })), close: () => pool.close() };
  };
}

async function tinypool() {
  const { Tinypool } = await import('tinypool');
  return (size) => {
    const pool = new Tinypool({ filename: here('tasks.js').href, minThreads: size, maxThreads: size });
    return { ...eachOf((kind, arg) => pool.run(arg, { name: kind })), close: () => pool.destroy() };
  };
}

async function workerpool() {
  const { default: wp } = await import('workerpool');
  return (size) => {
    const pool = wp.pool(path('workerpool-worker.js'), { minWorkers: size, maxWorkers: size, workerType: 'process' });
    return { ...eachOf((kind, arg) => pool.exec(kind, [arg])), close: () => pool.terminate() };
  };
}

/** Round-robin over `size` children, given a way to start one and to send it a task. */
function roundRobin(size, start) {
  const waiting = new Map();
  const settle = ([id, result]) => {
    waiting.get(id)(result);
    waiting.delete(id);
  };
  const workers = Array.from({ length: size }, () => start(settle));
  let next = 0;
  let ids = 0;
  return {
    ...eachOf((kind, arg) => {
      const id = ids++;
      const promise = new Promise((resolve) => waiting.set(id, resolve));
      workers[next].send([id, kind, arg]);
      next = (next + 1) % size;
      return promise;
    }),
    async close() {
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}

/** child_process.fork, one Node IPC message (JSON serialization) per task and per result. */
async function forkIpc() {
  return (size) =>
    roundRobin(size, (settle) => {
      const child = fork(path('ipc-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const exited = once(child, 'exit');
      child.on('message', settle);
      return {
        send: (message) => child.send(message),
        close() {
          child.disconnect();
          return exited;
        },
      };
    });
}

/** Hand-rolled: length-prefixed JSON over a socket pair on the child's fd 3; the frames of one
 *  turn of the event loop go out in one write. */
async function framed() {
  return (size) =>
    roundRobin(size, (settle) => {
      const child = spawn(process.execPath, [path('framed-worker.js')], {
        stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
      });
      const exited = once(child, 'exit');
      const socket = child.stdio[3];
      const read = reader();
      socket.on('data', (chunk) => {
        for (const message of read(chunk)) settle(message);
      });
      let out = [];
      const flush = () => {
        socket.write(out.length === 1 ? out[0] : Buffer.concat(out));
        out = [];
      };
      return {
        send(message) {
          if (out.length === 0) queueMicrotask(flush);
          out.push(frame(message));
        },
        close() {
          socket.end();
          return exited;
        },
      };
    });
}

export const CONTENDERS = {
  'pyre-nexus-fork': nexus('fork'),
  'pyre-nexus-threads': nexus('threads'),
  piscina,
  tinypool,
  workerpool,
  'fork-ipc': forkIpc,
  'framed-rr': framed,
};
