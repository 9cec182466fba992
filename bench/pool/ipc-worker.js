// The child of the child_process.fork round-robin: one Node IPC message per task and per result.
// An async task's result is sent when it settles, and tasks that arrive meanwhile do not wait for
// it (this contender is not in the scenarios that have async tasks).
import { sleep, spin, trivial } from './tasks.js';

const tasks = { trivial, spin, sleep };

process.on('message', ([id, kind, arg]) => {
  const result = tasks[kind](arg);
  if (result instanceof Promise) result.then((r) => process.send([id, r]));
  else process.send([id, result]);
});
process.on('disconnect', () => process.exit(0));
