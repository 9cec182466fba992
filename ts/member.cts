/**
 * The entry of every crew member: Fork's processes (`node member.cjs process <spin>
 * [take-back-stderr]`, channel on fd 3) and Threads' worker threads (argv `thread <spin> <fd>`).
 *
 * The build bundles this entry and everything it imports into one CommonJS file, dist/member.cjs
 * (`npm run build:member`): each ES module a fresh thread or process loads costs it 1-2 ms, and
 * the crew's eight cost a member 15-19 ms before its first task, against 3-5 ms for the bundle.
 * The bundle's classes are copies of the library's, which a member's task modules may also load
 * (`pyre-nexus/task` is one module, which costs a fresh worker no more than an empty one): the
 * crew tells a task class and a recoverable error by shape and name, never by identity.
 * Unbundled (tsc's own output), it still works: it then requires the library's modules.
 * Kept small: not even node:worker_threads (3 ms) in a process.
 */
type Crew = typeof import('./nexus/crew/work.js');

/**
 * `pyre-nexus/task`, which task modules import: loaded while the team answers READY, it starts
 * Node's ES module loader in this fresh thread or process before the first task's import needs it.
 */
const taskModule = require('node:url').pathToFileURL(require('node:path').join(__dirname, 'task.js')).href as string;

const [kind, spinArg, fdOrFlag] = process.argv.slice(2);
const spin = Number(spinArg);

async function main(): Promise<void> {
  const { serve, inheritedBegunWord } = require('./nexus/crew/work.js') as Crew;
  if (kind === 'thread') {
    const { threadId, workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
    const begun = workerData?.begun instanceof SharedArrayBuffer ? new Int32Array(workerData.begun) : null;
    const adopted = workerData?.adopted instanceof SharedArrayBuffer ? new Int32Array(workerData.adopted) : null;
    await serve(Number(fdOrFlag), threadId, { spin, warm: taskModule, watchParent: false, begun, adopted });
  } else {
    // Ctrl-C at a terminal signals the whole process group: the team decides what it means (it
    // dismisses its members, or dies and they follow it), not each member for itself.
    process.on('SIGINT', () => {});
    // Its team hears its stderr while it starts, and gives it its own stderr to take back (see Fork).
    const takeBackStderr = fdOrFlag === 'take-back-stderr';
    await serve(3, process.pid, {
      spin,
      warm: taskModule,
      watchParent: true,
      begun: inheritedBegunWord(),
      takeBackStderr,
    });
  }
  // The team closed the channel: leave, even if a task left timers or sockets behind, once what
  // the tasks wrote is out: process.exit() drops what a pipe (to the team, say) has not taken yet.
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(0);
}

function flushed(stream: NodeJS.WriteStream): Promise<void> | undefined {
  if (stream.writableLength === 0) return undefined;
  return new Promise((resolve) => stream.write('', () => resolve()));
}

void main();
