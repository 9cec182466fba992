#!/usr/bin/env node
/**
 * The `nexus` command.
 *
 *   nexus serve <config> [--grace=<seconds>] [--log=<pattern>[:<severity>]]...
 *   nexus run <workplan module> [arguments...] [--size=<n>] [--retries=<n>] [--timeout=<seconds>]
 *             [--recruiter=fork|threads] [--progress=auto|on|off]
 *
 * `serve` runs a node with the services its configuration names (see `NodeConfig`), prints
 * each service's address once it listens, reloads the configuration on SIGHUP and stops
 * gracefully on SIGTERM or SIGINT. Options may also be given in pyre's style (`--node.grace=2`).
 *
 * `run` carries out the workplan a module exports (`workplan`, or its default export: tasks, an
 * iterable of tasks, or a function of the arguments that returns one) with a pool, shows a
 * progress bar on a terminal, and prints a summary; it exits with 1 if any task was aborted.
 * pyre's style works here too (`--team.size=4`). TypeScript modules need no build step.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { journal, type Severity } from './nexus/journal.js';
import { importModule } from './nexus/loader.js';
import { Node } from './nexus/node.js';
import { type RunSettings, runWorkplan } from './run.js';

const USAGE = [
  'usage: nexus serve <config.json|module> [--grace=<seconds>] [--log=<pattern>[:<severity>]]',
  '       nexus run <workplan module> [arguments...] [--size=<n>] [--retries=<n>] [--timeout=<seconds>]',
  '                 [--recruiter=fork|threads] [--progress=auto|on|off]',
  '       nexus --help | --version',
].join('\n');

/** What `--help` says, of one command or of all. */
const HELP: Record<string, string> = {
  '': `${USAGE}\n\nserve  runs a node with the services its configuration names; SIGHUP reloads it, SIGTERM or\n       SIGINT stops it gracefully\nrun    carries out the workplan a module exports with a pool of workers, with a progress bar\n       and a summary; exits with 1 if any task was aborted\n\nOptions may be given in pyre's style too (--node.grace=2, --team.size=4). TypeScript modules\nneed no build step.`,
  serve: `usage: nexus serve <config.json|module> [--grace=<seconds>] [--log=<pattern>[:<severity>]]\n\nRuns a node with the services its configuration names and prints each one's address.\n  --grace=<seconds>            how long services have to finish their conversations on stop\n  --log=<pattern>[:<severity>] turns on the journal channels whose names match`,
  run: `usage: nexus run <workplan module> [arguments...] [options]\n\nCarries out the workplan the module exports (\`workplan\` or its default: tasks, an iterable of\ntasks, or a function of the arguments that returns one).\n  --size=<n>                   members of the team (the number of CPUs)\n  --retries=<n>                runs again after a RecoverableError or a lost member (3)\n  --timeout=<seconds>          how long a task may run (no limit)\n  --recruiter=fork|threads     processes (fork) or worker threads\n  --progress=auto|on|off       the progress bar (auto: on a terminal)`,
};

/** Options that take no value. */
const FLAGS = new Map([
  ['--help', 'help'],
  ['-h', 'help'],
  ['--version', 'version'],
  ['-v', 'version'],
]);

interface Command {
  name: string;
  operands: string[];
  options: Map<string, string[]>;
  /** `--help` or `--version`, anywhere on the line. */
  flags: Set<string>;
}

/** Splits the command line: `--a=b`, `--a b` and pyre's `--node.a=b` are the same option. */
function parse(argv: string[]): Command {
  const operands: string[] = [];
  const options = new Map<string, string[]>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const flag = FLAGS.get(arg);
    if (flag !== undefined) {
      flags.add(flag);
      continue;
    }
    if (!arg.startsWith('--')) {
      operands.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const key = (eq === -1 ? arg.slice(2) : arg.slice(2, eq)).replace(/^(node|team)\./, '');
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new UsageError(`--${key} needs a value`);
    options.set(key, [...(options.get(key) ?? []), value]);
  }
  const [name = '', ...rest] = operands;
  return { name, operands: rest, options, flags };
}

class UsageError extends Error {}

async function serve({ operands, options }: Command): Promise<void> {
  const [config, ...extra] = operands;
  if (config === undefined || extra.length > 0) throw new UsageError('serve takes exactly one configuration file');
  for (const key of options.keys()) {
    if (key !== 'grace' && key !== 'log') throw new UsageError(`unknown option --${key}`);
  }
  for (const spec of options.get('log') ?? []) {
    const [pattern = '', severity] = spec.split(':');
    journal.activate(pattern, severity === undefined ? undefined : [severity as Severity]);
  }
  const grace = options.get('grace')?.at(-1);
  const node = new Node({ config, ...(grace === undefined ? {} : { grace: Number(grace) }) });
  node.registerSignalHandlers();
  // SIGINT is the application's in pyre; here the application is this command, and it stops.
  const interrupt = () => node.stop();
  process.on('SIGINT', interrupt);
  try {
    await node.prepare();
    for (const [name, service] of node.services) {
      const address = (service as { address?: unknown }).address;
      process.stdout.write(`${name} listening at ${typeof address === 'string' ? address : '(no address)'}\n`);
    }
    await node.watch();
  } finally {
    await node.shutdown();
    process.removeListener('SIGINT', interrupt);
  }
  process.stdout.write('stopped\n');
}

async function run({ operands, options }: Command): Promise<number> {
  const [module, ...args] = operands;
  if (module === undefined) throw new UsageError('run needs a workplan module');
  const settings: Record<string, number | string> = {};
  for (const [key, values] of options) {
    const value = values.at(-1) as string;
    if (key === 'recruiter' || key === 'progress') settings[key] = value;
    else if (['size', 'retries', 'timeout', 'pending', 'pipeline'].includes(key)) {
      const number = Number(value);
      if (value === '' || !Number.isFinite(number)) throw new UsageError(`--${key} needs a number, got "${value}"`);
      settings[key] = number;
    } else throw new UsageError(`unknown option --${key}`);
  }
  if (settings.recruiter !== undefined && settings.recruiter !== 'fork' && settings.recruiter !== 'threads') {
    throw new UsageError(`--recruiter is fork or threads, got "${settings.recruiter}"`);
  }
  if (settings.progress !== undefined && !['auto', 'on', 'off'].includes(settings.progress as string)) {
    throw new UsageError(`--progress is auto, on or off, got "${settings.progress}"`);
  }
  const namespace = await importModule(pathToFileURL(resolve(module)).href);
  const exported = namespace.workplan ?? namespace.default;
  if (exported === undefined) throw new Error(`${module} exports no workplan (export \`workplan\` or a default)`);
  const workplan = typeof exported === 'function' ? await exported(...args) : exported;
  return runWorkplan(workplan, settings as RunSettings);
}

async function main(argv: string[]): Promise<number> {
  try {
    const command = parse(argv);
    if (command.flags.has('version')) {
      process.stdout.write(`${version()}\n`);
      return 0;
    }
    if (command.flags.has('help')) {
      process.stdout.write(`${HELP[command.name] ?? HELP['']}\n`);
      return 0;
    }
    if (command.name === 'serve') {
      await serve(command);
      return 0;
    }
    if (command.name === 'run') return await run(command);
    throw new UsageError(command.name === '' ? 'no command given' : `unknown command "${command.name}"`);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`nexus: ${error.message}\n${USAGE}\n`);
      return 64;
    }
    process.stderr.write(`nexus: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/** The package's version, from its package.json (beside dist/). */
function version(): string {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
