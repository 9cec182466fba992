/**
 * The entry of a crew member recruited by Fork: a process that finds its channel on fd 3 and how
 * long to spin (see memberSpin) after the entry's path. Kept small: it imports only the channel,
 * the dispatcher, the marshaler and the task codes, so that members start fast (not even
 * node:worker_threads, 2.7 ms; worker threads have thread.ts).
 */
import { adopt } from '../ipc/channel.js';
import { native } from '../native.js';
import { work } from './crew.js';

// A member must not outlive its team, even in the middle of a task that never yields.
native.watchParent();
const spin = Number(process.argv[2]);
await work(adopt(3), process.pid, Number.isInteger(spin) ? spin : 0);
// The team closed the channel: leave, even if a task left timers or sockets behind.
process.exit(0);
