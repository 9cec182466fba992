// The child of the child_process.fork round-robin: one Node IPC message per task and per result.
import { spin, trivial } from './tasks.js';

const tasks = { trivial, spin };

process.on('message', ([id, kind, arg]) => process.send([id, tasks[kind](arg)]));
process.on('disconnect', () => process.exit(0));
