import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { port } from '../dist/index.js';
import { renderBar } from '../dist/run.js';
import { runNode } from './helpers.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Runs the nexus command in plain Node: no TypeScript loader on the command line. */
const nexus = (...args: string[]) => runNode([cli, ...args]);

test('nexus run carries out a TypeScript workplan with no build step, with a progress bar and a summary', async (t) => {
  const { code, stdout, stderr } = await nexus('run', fixture('plan.ts'), '300', '--team.size=2', '--progress=on');
  t.is(code, 0, stderr);
  t.regex(stdout, /^300 tasks: 300 done, 0 failed, 0 attempts retried, in [\d.]+ s/);
  t.regex(stderr, /\[#{24}\] 300\/300 · 300 done · 0 failed · 0 retried · 0 running · [\d.]+ s/);
});

test('nexus run names the failed tasks and exits with 1; the threads recruiter runs the same workplan', async (t) => {
  const { code, stdout } = await nexus('run', fixture('plan.ts'), '20', '3', '--size', '2', '--recruiter=threads');
  t.is(code, 1);
  t.regex(stdout, /^23 tasks: 20 done, 3 failed/);
  t.regex(stdout, /task #20 \(Chancy\): RangeError: task 0 cannot work/);
});

test('nexus run --results prints a line of JSON per outcome, and the summary on standard error', async (t) => {
  const { code, stdout, stderr } = await nexus('run', fixture('plan.ts'), '3', '1', '--size=1', '--results');
  t.is(code, 1, 'a task failed');
  const lines = stdout.trimEnd().split('\n');
  const outcomes = lines.map((line) => JSON.parse(line) as { index: number }).sort((a, b) => a.index - b.index);
  t.deepEqual(outcomes, [
    { index: 0, task: 'Square', status: 'done', value: 0, attempts: 1 },
    { index: 1, task: 'Square', status: 'done', value: 1, attempts: 1 },
    { index: 2, task: 'Square', status: 'done', value: 4, attempts: 1 },
    {
      index: 3,
      task: 'Chancy',
      status: 'failed',
      error: { name: 'RangeError', message: 'task 0 cannot work', code: 'E_CHANCY' },
      attempts: 1,
    },
  ]);
  t.regex(stderr, /^4 tasks: 3 done, 1 failed, 0 attempts retried, in [\d.]+ s.*\n {2}task #3 \(Chancy\): RangeError/);
});

test('Ctrl-C stops nexus run: the workers stop, the summary says what finished, and it exits with 130', async (t) => {
  // One square, then a task that never ends: only the interrupt ends this run.
  const child = spawn(process.execPath, [cli, 'run', fixture('plan.ts'), '1', '0', '1', '--size=1', '--results'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    if (lines.length === 1) child.kill('SIGINT');
  });
  const [code] = await once(child, 'close');
  t.is(code, 130, stderr);
  t.deepEqual(JSON.parse(lines[0] ?? ''), { index: 0, task: 'Square', status: 'done', value: 0, attempts: 1 });
  t.like(JSON.parse(lines[1] ?? ''), {
    index: 1,
    task: 'Forever',
    status: 'aborted',
    error: { name: 'NexusError', code: 'ERR_NEXUS_INTERRUPTED' },
  });
  t.is(lines.length, 2);
  t.regex(stderr, /^interrupted after [\d.]+ s: 1 done, 0 failed, 1 unfinished\n$/);
});

test('the progress bar fits the width it is given, and never reaches the last column', (t) => {
  const progress = { submitted: 2000, done: 1234, failed: 5, retried: 17, running: 8, seconds: 12.345 };
  t.is(
    renderBar(progress, 200),
    `[${'#'.repeat(15)}${'-'.repeat(9)}] 1239/2000 · 1234 done · 5 failed · 17 retried · 8 running · 12.3 s`,
  );
  t.is(renderBar(progress, 40), `[${'#'.repeat(10)}${'-'.repeat(6)}] 1239/2000 · 5 failed`);
  t.is(renderBar(progress, 20), '1239/2000');
  for (let columns = 1; columns <= 200; columns++) {
    t.true(renderBar(progress, columns).length < Math.max(columns, 2), `at ${columns} columns`);
  }
  const start = { submitted: 0, done: 0, failed: 0, retried: 0, running: 0, seconds: 0 };
  t.is(renderBar(start, 20), `[${'-'.repeat(13)}] 0/0`);
});

const script = '/usr/bin/script'; // util-linux: runs a command on a pseudo-terminal
const onTerminal = process.platform === 'linux' && existsSync(script) ? test : test.skip;

onTerminal('on a terminal of 40 columns, every drawing of the bar fits in them', async (t) => {
  const command = `stty cols 40; exec ${process.execPath} ${cli} run ${fixture('plan.ts')} 300 --size=2`;
  const child = spawn(script, ['-qec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  const [code] = await once(child, 'close');
  t.is(code, 0, stdout);
  // The bar is redrawn in place: each drawing follows a carriage return.
  const drawings = stdout
    .replaceAll('\x1b[K', '') // what the bar writes after itself: clears the rest of the line
    .split(/[\r\n]+/)
    .filter((line) => /^\[[#-]+\] /.test(line));
  t.true(drawings.length > 0, stdout);
  for (const drawing of drawings) t.true(drawing.length < 40, drawing);
  t.regex(stdout, /300 tasks: 300 done/);
});

test('a mistake on the command line names the option, points to --help and exits with 2', async (t) => {
  const refused = async (args: string[], message: string, command = 'run') => {
    const { code, stdout, stderr } = await nexus(...args);
    t.is(code, 2, args.join(' '));
    t.is(stdout, '');
    t.is(stderr, `nexus ${command}: ${message}\nSee 'nexus ${command} --help'.\n`);
  };
  const plan = fixture('plan.ts');
  await refused(['run', plan, '--sise=2'], 'unknown option --sise (did you mean --size?)');
  await refused(['run', plan, '--colour=red'], 'unknown option --colour');
  await refused(['run', plan, '--size'], 'option --size needs a value: --size=<n>');
  await refused(['run', plan, '--size', '--retries=1'], 'option --size needs a value: --size=<n>');
  await refused(['run', plan, '--team.size=many'], 'option --size must be a positive integer, got "many"');
  await refused(['run', plan, '--size=0'], 'option --size must be a positive integer, got "0"');
  await refused(['run', plan, '--timeout=-1'], 'option --timeout must be a non-negative number of seconds, got "-1"');
  await refused(['run', plan, '--recruiter=ssh'], 'option --recruiter must be fork or threads, got "ssh"');
  await refused(['run', plan, '--help=yes'], 'option --help takes no value');
  await refused(['run'], 'needs a workplan module');
  await refused(['serve', 'a.json', 'b.json'], 'takes exactly one configuration file', 'serve');
  await refused(
    ['serve', 'node.json', '--node.grace=soon'],
    'option --grace must be a non-negative number of seconds, got "soon"',
    'serve',
  );

  const unknown = await nexus('rn', plan);
  t.is(unknown.code, 2);
  t.is(unknown.stderr, `nexus: unknown command "rn" (did you mean "run"?)\nSee 'nexus --help'.\n`);
  const bare = await nexus();
  t.is(bare.code, 2);
  t.regex(bare.stderr, /^nexus: no command given\nusage: nexus serve .*\n[\s\S]*See 'nexus --help'\.\n$/);
  t.is((await nexus('--verbose')).stderr, `nexus: unknown option --verbose\nSee 'nexus --help'.\n`);
});

test('nexus run: a failing workplan module exits with 1 and says why', async (t) => {
  const none = await nexus('run', fixture('tasks.ts'));
  t.is(none.code, 1);
  t.regex(none.stderr, /exports no workplan/);
});

test('nexus serve loads TypeScript services with no loader on the command line', async (t) => {
  const child = spawn(process.execPath, [cli, 'serve', fixture('echo-node.json')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  t.regex(line.toString(), /echo listening at ip4:127\.0\.0\.1:\d+/);
  child.kill('SIGTERM');
  t.deepEqual(await once(child, 'exit'), [0, null]);
});

test('nexus serve on a taken port fails to start that service, names the address, and exits with 1', async (t) => {
  const taken = port('ip4:127.0.0.1:0');
  const dir = await mkdtemp(join(tmpdir(), 'nexus-cli-'));
  const echo = { module: fixture('../../examples/services/echo.ts'), export: 'EchoServer', address: taken.address };
  const config = join(dir, 'node.json');
  await writeFile(config, JSON.stringify({ services: { echo } }));
  const refused = await nexus('serve', config);
  t.is(refused.code, 1);
  t.is(refused.stdout, '');
  t.regex(
    refused.stderr,
    new RegExp(`^nexus: service "echo" failed to start: address ${taken.address} is already in use; `),
  );

  // pyre's way, asked for in the configuration: another port of the same host.
  await writeFile(config, JSON.stringify({ services: { echo: { ...echo, anyPortIfTaken: true } } }));
  const child = spawn(process.execPath, [cli, 'serve', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const [, address] = /^echo listening at (\S+)/.exec(line.toString()) ?? [];
  t.regex(address ?? '', /^ip4:127\.0\.0\.1:\d+$/);
  t.not(address, taken.address);
  child.kill('SIGTERM');
  t.deepEqual(await once(child, 'exit'), [0, null]);
  taken.close();
});

test('nexus --help, nexus <command> --help and --version exit 0 with text on standard output', async (t) => {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  for (const flag of ['--help', '-h']) {
    const help = await nexus(flag);
    t.is(help.code, 0, help.stderr);
    t.regex(help.stdout, /^usage: nexus serve .*\n\s+nexus run /);
  }
  const run = await nexus('run', '--help');
  t.is(run.code, 0);
  t.regex(run.stdout, /^usage: nexus run <workplan module>/);
  t.regex(run.stdout, /--recruiter=fork\|threads/);
  const serve = await nexus('serve', '--help');
  t.is(serve.code, 0);
  t.regex(serve.stdout, /^usage: nexus serve /);
  for (const flag of ['--version', '-v']) {
    const shown = await nexus(flag);
    t.is(shown.code, 0);
    t.is(shown.stdout, `${version}\n`);
  }
});
