/**
 * The entry of a crew member: a process recruited by Fork finds its channel on fd 3, a thread
 * recruited by Threads gets its descriptor in workerData. Kept small: it imports only the
 * channel, the dispatcher, the marshaler and the task codes, so that members start fast.
 */
import { isMainThread, threadId, workerData } from 'node:worker_threads';
import { adopt } from '../ipc/channel.js';
import { native } from '../native.js';
import { work } from './crew.js';

// A process member must not outlive its team, even in the middle of a task that never yields.
if (isMainThread) native.watchParent();
// A process member finds how long to spin (see memberSpin) after the entry's path; a thread in
// its workerData.
const given = isMainThread ? { nexusChannel: 3, nexusSpin: Number(process.argv[2]) } : workerData;
const { nexusChannel: fd, nexusSpin: spin } = given as { nexusChannel: number; nexusSpin: number };
await work(adopt(fd), isMainThread ? process.pid : threadId, Number.isInteger(spin) ? spin : 0);
// The team closed the channel: leave, even if a task left timers or sockets behind.
process.exit(0);
