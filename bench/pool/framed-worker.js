// The child of the hand-rolled round-robin: frames (4-byte little-endian length, then JSON) on fd 3,
// a socket pair set up by the parent's stdio. Runs every task of a chunk it reads, then writes
// all their results in one write.
import { Socket } from 'node:net';
import { frame, reader } from './framing.js';
import { spin, trivial } from './tasks.js';

const tasks = { trivial, spin };

const socket = new Socket({ fd: 3, readable: true, writable: true });
const read = reader();
socket.on('data', (chunk) => {
  const out = [];
  for (const [id, kind, arg] of read(chunk)) out.push(frame([id, tasks[kind](arg)]));
  if (out.length > 0) socket.write(out.length === 1 ? out[0] : Buffer.concat(out));
});
socket.on('end', () => process.exit(0));
