/**
 * The entry of a crew member recruited by Threads: a worker thread that gets its channel's
 * descriptor and how long to spin in its workerData.
 */
import { threadId, workerData } from 'node:worker_threads';
import { adopt } from '../ipc/channel.js';
import { work } from './crew.js';

const { nexusChannel, nexusSpin } = workerData as { nexusChannel: number; nexusSpin: number };
await work(adopt(nexusChannel), threadId, Number.isInteger(nexusSpin) ? nexusSpin : 0);
// The team closed the channel: end the thread, even if a task left timers or sockets behind.
process.exit(0);
