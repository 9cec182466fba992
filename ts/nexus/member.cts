/**
 * The entry of every crew member: Fork's processes (`node member.cjs process <spin>`, channel on
 * fd 3) and Threads' worker threads (argv `thread <spin> <fd>`). CommonJS on purpose: where Node
 * can require() ES modules (20.19 and later) the member loads the library, and its task modules,
 * without starting Node's ES-module loader, which costs a member 8-10 ms here; older Nodes import().
 * Kept small: not even node:worker_threads (3 ms) in a process.
 */
type Crew = typeof import('./crew.js');

const [kind, spinArg, fdArg] = process.argv.slice(2);
const spin = Number(spinArg);

function crew(): Crew | Promise<Crew> {
  return process.features.require_module ? (require('./crew.js') as Crew) : import('./crew.js');
}

async function main(): Promise<void> {
  const { serve } = await crew();
  if (kind === 'thread') {
    const { threadId } = require('node:worker_threads') as typeof import('node:worker_threads');
    await serve(Number(fdArg), threadId, spin, false);
  } else {
    await serve(3, process.pid, spin, true);
  }
  // The team closed the channel: leave, even if a task left timers or sockets behind.
  process.exit(0);
}

void main();
