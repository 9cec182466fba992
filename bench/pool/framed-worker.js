// The child of the hand-rolled round-robin: frames (4-byte little-endian length, then JSON) on fd 3,
// a socket pair set up by the parent's stdio. Runs every task of a chunk it reads, then writes
// all their results in one write. Tasks run one at a time: an async task (one that returns a
// promise) holds back the tasks after it; its result, and those of the tasks run before it, go
// out as it starts waiting and as it ends.
import { Socket } from 'node:net';
import { frame, reader } from './framing.js';
import { sleep, spin, trivial } from './tasks.js';

const tasks = { trivial, spin, sleep };

const socket = new Socket({ fd: 3, readable: true, writable: true });
const read = reader();
/** Tasks read while an async task runs, in order. */
let held = [];
let waiting = false;

const write = (out) => {
  if (out.length > 0) socket.write(out.length === 1 ? out[0] : Buffer.concat(out));
};

/** Runs `list` from `at` on; stops at an async task, and goes on with what is held once it ends. */
function run(list, at) {
  const out = [];
  for (let i = at; i < list.length; i++) {
    const [id, kind, arg] = list[i];
    const result = tasks[kind](arg);
    if (result instanceof Promise) {
      write(out);
      waiting = true;
      held = list.slice(i + 1).concat(held);
      result.then((r) => {
        write([frame([id, r])]);
        waiting = false;
        const next = held;
        held = [];
        run(next, 0);
      });
      return;
    }
    out.push(frame([id, result]));
  }
  write(out);
}

socket.on('data', (chunk) => {
  const messages = read(chunk);
  if (waiting) held.push(...messages);
  else run(messages, 0);
});
socket.on('end', () => process.exit(0));
