import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'ava';
import { Dispatcher, Fork, Pool, type Task, TaskStatus, Threads, WorkerLostError } from '../dist/index.js';
import { parentSpin, TEAM_SPIN, teamSpin, workerExecArgv } from '../dist/nexus/recruiting.js';
import { Bulky, Explode, Garbage, Later, Square, Whoami } from './fixtures/tasks.js';
import { runNode, runScript } from './helpers.js';
import { InThisThread } from './pool-helpers.js';

// Pool: recruiters and the members' environment: Fork and Threads, recruiters of your own, Node
// options, module kinds, the bundled member, pyre-nexus/task, large states crossing, and the spin
// policy.

test('a recruiter of your own: members in this thread, running Crew.work on the other end of a pipe', async (t) => {
  const the = new Pool({ size: 1, recruiter: new InThisThread() });
  t.is(await the.submit(new Whoami()), process.pid);
  t.deepEqual(
    (await the.assemble([new Square(3), new Later('own')])).outcomes.map((o) => o.result),
    [9, 'OWN'],
  );
  await the.close();
});

test('the threads recruiter runs members as worker threads of this process', async (t) => {
  const the = new Pool({ size: 2, recruiter: new Threads() });
  t.is(await the.submit(new Whoami()), process.pid);
  const report = await the.assemble(Array.from({ length: 100 }, (_, i) => new Square(i)));
  t.is(report.completed, 100);
  const crash = await the.assemble([new Garbage(), new Square(1)]);
  t.like(crash.outcomes[1], { status: TaskStatus.completed, result: 1 });
  // An uncaught exception ends a thread; the error says which.
  const error = await t.throwsAsync(the.submit(new Explode(), { timeout: 0 }), { instanceOf: WorkerLostError });
  t.regex(error?.message ?? '', /ended \(TypeError: boom\) while running task Explode, 4 times: given up/);
  await the.close();
  t.is(the.active.size + the.retired.size, 0);
});

test('workers start from a parent run as `node --input-type=module -e`, whose options they cannot share', async (t) => {
  const { code, stdout, stderr } = await runScript(`
    import { Pool } from './dist/index.js';
    import { Double } from './__test__/fixtures/plain-tasks.js';
    const pool = new Pool({ size: 1 });
    console.log(await pool.submit(new Double(21)));
    await pool.close();
  `);
  t.is(code, 0, stderr);
  t.is(stdout, '42\n');
});

test('members get the Node options of their parent, less those a worker cannot share, values and all', (t) => {
  t.deepEqual(
    workerExecArgv([
      '--cpu-prof',
      '--cpu-prof-dir',
      '/tmp/profiles',
      '--cpu-prof-interval',
      '50',
      '--max-old-space-size',
      '100',
      '--title=team',
      '-r',
      './setup.cjs',
      '--import',
      'tsx',
      '--input-type',
      'module',
      '-e',
      '-1',
    ]),
    ['--max-old-space-size', '100', '--title=team', '-r', './setup.cjs'],
  );
});

test('a parent run with profiling options that take values still gets members', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-profiles-'));
  const { code, stdout, stderr } = await runNode([
    '--cpu-prof',
    '--cpu-prof-dir',
    dir,
    '--cpu-prof-interval',
    '1000',
    '--input-type=module',
    '-e',
    `
      import { Pool } from './dist/index.js';
      import { Double } from './__test__/fixtures/plain-tasks.js';
      const pool = new Pool({ size: 1 });
      console.log(await pool.submit(new Double(21)));
      await pool.close();
    `,
  ]);
  t.is(code, 0, stderr);
  t.is(stdout, '42\n');
  t.is((await readdir(dir)).length, 1, 'the parent is profiled, its members are not');
});

test('where Node cannot require() ES modules, members import() their task modules', async (t) => {
  // Node before 20.19 has no require() of ES modules; this flag turns it off in later ones.
  const { code, stdout, stderr } = await runNode([
    '--no-experimental-require-module',
    '--input-type=module',
    '-e',
    `
      import { Pool, Threads } from './dist/index.js';
      import { Double } from './__test__/fixtures/plain-tasks.js';
      const results = [process.features.require_module];
      for (const recruiter of [undefined, new Threads()]) {
        const pool = new Pool({ size: 1, ...(recruiter === undefined ? {} : { recruiter }) });
        results.push(await pool.submit(new Double(21)));
        await pool.close();
      }
      console.log(JSON.stringify(results));
    `,
  ]);
  t.is(code, 0, stderr);
  t.deepEqual(JSON.parse(stdout), [false, 42, 42]);
});

for (const recruiter of ['Fork', 'Threads']) {
  test(`${recruiter} members run the library from one bundled file, not from its modules one by one`, async (t) => {
    const { code, stdout, stderr } = await runScript(`
      import { Pool, ${recruiter} } from './dist/index.js';
      import { CallerFiles } from './__test__/fixtures/plain-tasks.js';
      const pool = new Pool({ size: 1, recruiter: new ${recruiter}() });
      console.log(JSON.stringify(await pool.submit(new CallerFiles())));
      await pool.close();
    `);
    t.is(code, 0, stderr);
    t.deepEqual(JSON.parse(stdout), [join('dist', 'member.cjs')]);
  });

  test(`${recruiter} members load pyre-nexus/task as they start, before the first task's module`, async (t) => {
    // It starts Node's ES module loader while the team answers READY, where the first task's
    // import would otherwise start it. A resolve hook in the members notes what they import.
    const dir = await mkdtemp(join(tmpdir(), 'nexus-warm-'));
    const log = join(dir, 'resolved');
    await writeFile(
      join(dir, 'hook.mjs'),
      `import { appendFileSync } from 'node:fs';
      export async function resolve(specifier, context, next) {
        const resolved = await next(specifier, context);
        if (/[/](dist|fixtures)[/]/.test(resolved.url)) appendFileSync(${JSON.stringify(log)}, resolved.url + '\\n');
        return resolved;
      }`,
    );
    await writeFile(
      join(dir, 'register.mjs'),
      `import { register } from 'node:module'; register(${JSON.stringify(pathToFileURL(join(dir, 'hook.mjs')).href)});`,
    );
    const execArgv = ['--import', pathToFileURL(join(dir, 'register.mjs')).href];
    const the = new Pool({
      size: 1,
      recruiter: recruiter === 'Fork' ? new Fork({ execArgv }) : new Threads({ execArgv }),
    });
    const plain = './fixtures/plain-tasks.js'; // plain JavaScript, without types of its own
    const { Double } = (await import(plain)) as { Double: new (n: number) => Task<number> };
    t.is(await the.submit(new Double(4)), 8);
    await the.close();
    const resolved = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
    t.deepEqual(
      resolved.map((url) => url.slice(url.lastIndexOf('/') + 1)),
      ['member.cjs', 'task.js', 'plain-tasks.js', 'task.js'],
      'the member, the library, then the task module and what it imports',
    );
  });

  test(`${recruiter} members load every kind of JavaScript task module, and say why one fails`, async (t) => {
    const { code, stdout, stderr } = await runScript(`
      import { Pool, ${recruiter} } from './dist/index.js';
      import { Double } from './__test__/fixtures/plain-tasks.js';
      import { Doomed, Later, Triple } from './__test__/fixtures/module-kinds.js';
      const pool = new Pool({ size: 1, recruiter: new ${recruiter}() });
      const results = [await pool.submit(new Double(1)), await pool.submit(new Later(1)), await pool.submit(new Triple(1))];
      const failure = await pool.submit(new Doomed()).catch((error) => error.message);
      console.log(JSON.stringify({ results, failure, healthy: pool.active.size }));
      await pool.close();
    `);
    t.is(code, 0, stderr);
    const { results, failure, healthy } = JSON.parse(stdout);
    t.deepEqual(results, [2, 2, 3]);
    t.regex(failure, /cannot import task module .*throwing-module\.js: this module refuses to load/);
    t.is(healthy, 1, 'a module that does not load costs no member');
  });
}

test('pyre-nexus/task is one module, and its classes are the library’s own', async (t) => {
  // A resolve hook (which runs in a thread of its own) notes, before the import can finish, each
  // module of the library that importing `pyre-nexus/task` loads.
  const log = join(await mkdtemp(join(tmpdir(), 'nexus-task-entry-')), 'loaded');
  const hook = `import { appendFileSync } from 'node:fs';
    let log;
    export async function initialize(data) { log = data.log; }
    export async function resolve(specifier, context, next) {
      const resolved = await next(specifier, context);
      const at = resolved.url.indexOf('/dist/');
      if (at !== -1) appendFileSync(log, resolved.url.slice(at) + '\\n');
      return resolved;
    }`;
  const { code, stdout, stderr } = await runScript(`
    import { register } from 'node:module';
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}), { data: { log: ${JSON.stringify(log)} } });
    const entry = await import('pyre-nexus/task');
    const { readFileSync } = await import('node:fs');
    const loaded = readFileSync(${JSON.stringify(log)}, 'utf8').split('\\n').filter(Boolean);
    const library = await import('pyre-nexus');
    const same = ['Task', 'TaskStatus', 'CrewStatus', 'NexusError', 'RecoverableError']
      .filter((name) => entry[name] === library[name]);
    console.log(JSON.stringify({ loaded, same }));
  `);
  t.is(code, 0, stderr);
  const { loaded, same } = JSON.parse(stdout) as { loaded: string[]; same: string[] };
  // The ES-module entry and the one CommonJS module it re-exports (which require() gives alone).
  t.deepEqual(loaded, ['/dist/task.mjs', '/dist/task.js']);
  t.deepEqual(same, ['Task', 'TaskStatus', 'CrewStatus', 'NexusError', 'RecoverableError']);
});

for (const [recruiting, recruiter] of [
  ['processes', undefined],
  ['threads', new Threads()],
] as const) {
  test(`large task states and results cross even while the other side is too busy to read them (${recruiting})`, async (t) => {
    // 40 half-megabyte states and results, more than the default 1 MiB of unsent output a channel
    // holds: a member holding several at once must not be lost for it. Frames this large are read
    // into memory reused once collected; a thread's members end with such memory still held.
    const the = new Pool({ size: 1, ...(recruiter ? { recruiter } : {}) });
    const report = await the.assemble(Array.from({ length: 40 }, () => new Bulky(Buffer.alloc(512 * 1024, 1))));
    t.is(report.completed, 40, report.outcomes.find((o) => o.error)?.error?.message);
    t.true(report.outcomes.every((o) => o.result?.length === 512 * 1024 && o.attempts === 1));
    await the.close();
  });
}

test('members, and on Linux a pool on a dispatcher of its own, poll before sleeping only while the team fits the CPUs', async (t) => {
  const cpus = availableParallelism();
  t.true(teamSpin({ size: cpus }) > 0);
  t.is(teamSpin({ size: cpus + 1 }), 0, 'spinning beside more members than CPUs takes CPU from them');
  const fits = new Pool({ size: cpus });
  const crowded = new Pool({ size: cpus + 1 });
  const given = new Pool({ size: 1, dispatcher: new Dispatcher() });
  t.is(fits.dispatcher.spin, parentSpin(fits));
  t.is(parentSpin(fits), process.platform === 'linux' ? TEAM_SPIN : 0, 'elsewhere a spin cannot see the sockets');
  t.is(crowded.dispatcher.spin, 0);
  t.is(given.dispatcher.spin, 0, 'a dispatcher given to the pool keeps its own settings');
  await Promise.all([fits.close(), crowded.close(), given.close()]);
});

test('Ctrl-C at a terminal, which signals the whole process group, leaves Fork members to their team', async (t) => {
  // The team handles SIGINT (as `nexus run` does); its member, in the same process group, gets the
  // signal too and must not die of it: its task finishes and its result comes back.
  const dir = await mkdtemp(join(tmpdir(), 'nexus-sigint-'));
  const gate = join(dir, 'gate');
  const script = `
    import { writeFileSync } from 'node:fs';
    import { Pool } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, '..', 'dist', 'index.js')).href)};
    import { FileGated } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, 'fixtures', 'tasks.ts')).href)};
    process.on('SIGINT', () => writeFileSync(${JSON.stringify(gate)}, ''));
    const pool = new Pool({ size: 1, retries: 0 });
    pool.on('started', () => console.log('started'));
    try {
      console.log('result', await pool.submit(new FileGated(${JSON.stringify(gate)}, 7)));
    } catch (error) {
      console.log('lost', error.message);
    }
    await pool.close();`;
  const team = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    detached: true, // a process group of its own, as a terminal gives a command
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  team.stdout.on('data', (chunk) => {
    output += chunk;
    if (output === 'started\n') process.kill(-(team.pid as number), 'SIGINT');
  });
  const [code] = await once(team, 'close');
  t.is(output, 'started\nresult 7\n');
  t.is(code, 0);
});
