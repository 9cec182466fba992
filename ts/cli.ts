#!/usr/bin/env node
/**
 * The `nexus` command: `nexus serve` runs a node's services, `nexus run` carries out a workplan
 * (see COMMANDS, from which `nexus --help` and `nexus <command> --help` are written).
 *
 * Options may also be given in pyre's style (`--node.grace=2`, `--team.size=4`). A mistake on the
 * command line (an unknown option, a missing or bad value) is named, with a pointer to --help,
 * and exits with 2. TypeScript modules need no build step.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { FailureAction } from './nexus/config.js';
import { journal, type Severity } from './nexus/journal.js';
import { importModule } from './nexus/loader.js';
import { Node } from './nexus/node.js';
import { integer, nearest, type Rule, seconds } from './options.js';
import { type RunSettings, runWorkplan } from './run.js';

/** One option of a command. */
interface Option {
  /** How help shows its value (`<seconds>`); an option without one is a flag. */
  value?: string;
  short?: string;
  /** Given more than once, it keeps every value (else the last). */
  multiple?: true;
  /** What help says it does, with its default in brackets. */
  help: string;
  /** For a number: the value is converted and must pass this. */
  number?: Rule;
  /** The values it takes. */
  choices?: readonly string[];
}

/** An option's values as the command gets them: numbers converted, flags true. */
type Values = Record<string, string | number | boolean | string[] | undefined>;

interface Command {
  /** The operands, as usage shows them. */
  operands: string;
  /** What `nexus --help` says of it, in a line or two. */
  summary: string;
  /** What `nexus <command> --help` says before its options. */
  details: string;
  options: Record<string, Option>;
  /** Carries the command out; resolves to the exit status. */
  run(values: Values, operands: string[]): Promise<number>;
}

/** Options every command takes, and `nexus` alone. */
const COMMON: Record<string, Option> = {
  help: { short: 'h', help: 'says what the command does and takes, and exits' },
  version: { short: 'v', help: "prints pyre-nexus's version, and exits" },
};

const COMMANDS: Record<string, Command> = {
  serve: {
    operands: '<config.json|module>',
    summary:
      'runs a node with the services its configuration names; SIGHUP reloads it, SIGTERM or\nSIGINT stops it gracefully',
    details:
      "Runs a node with the services its configuration names and prints each one's address. A\n" +
      'service that cannot start (its port is taken, say) stops the node with an error naming it.\n' +
      'A service whose handler throws is shut down and its error printed on standard error; the\n' +
      'others carry on. Then --on-failure, or the "onFailure" of its entry, says what follows:\n' +
      'nothing (stop), a restart (restart, at most 5 within a minute) or the end of the node\n' +
      '(exit, with status 1).',
    options: {
      grace: {
        value: '<seconds>',
        number: seconds,
        help: 'how long services have to finish their conversations on stop (5)',
      },
      'on-failure': {
        value: 'stop|restart|exit',
        choices: ['stop', 'restart', 'exit'],
        help: 'what follows when a service fails, unless its entry says (stop)',
      },
      log: { value: '<pattern>[:<severity>]', multiple: true, help: 'turns on the journal channels whose names match' },
    },
    run: serve,
  },
  run: {
    operands: '<workplan module> [arguments...]',
    summary:
      'carries out the workplan a module exports with a pool of workers, with a progress bar\nand a summary; exits with 1 if any task failed',
    details:
      'Carries out the workplan the module exports (`workplan` or its default: tasks, an iterable of\n' +
      'tasks, or a function of the arguments that returns one). Arguments for the workplan that\n' +
      'begin with - go after --. Exits with 0 when every task was done, 1 when some failed, 2 for a\n' +
      'mistake on the command line, and 130 when Ctrl-C stopped it: the workers are stopped, and\n' +
      'the summary says what finished (a second Ctrl-C exits at once).',
    options: {
      size: { value: '<n>', number: integer(1), help: 'members of the team (the number of CPUs)' },
      retries: {
        value: '<n>',
        number: integer(0),
        help: 'runs again after a RecoverableError or a lost member (3)',
      },
      timeout: { value: '<seconds>', number: seconds, help: 'how long a task may run (no limit)' },
      pending: { value: '<n>', number: integer(1), help: 'tasks read ahead of their outcomes (1024)' },
      pipeline: { value: '<n>', number: integer(1), help: 'tasks a member holds at once (256)' },
      recruiter: { value: 'fork|threads', choices: ['fork', 'threads'], help: 'processes (fork) or worker threads' },
      progress: {
        value: 'auto|on|off',
        choices: ['auto', 'on', 'off'],
        help: 'the progress bar, on standard error (auto: on a terminal)',
      },
      results: {
        help: 'prints each outcome as a line of JSON on standard output,\nand the summary on standard error',
      },
    },
    run,
  },
};

/** A mistake on the command line: exit status 2, and a pointer to help. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

async function main(argv: string[]): Promise<number> {
  const [first = ''] = argv;
  const name = first.startsWith('-') ? '' : first;
  const command = COMMANDS[name];
  try {
    if (name !== '' && command === undefined) {
      const near = nearest(name, Object.keys(COMMANDS));
      throw new UsageError(`unknown command "${name}"${near === undefined ? '' : ` (did you mean "${near}"?)`}`, '');
    }
    const { values, operands } = parse(name, name === '' ? argv : argv.slice(1), { ...command?.options, ...COMMON });
    if (values.version === true) {
      process.stdout.write(`${version()}\n`);
      return 0;
    }
    if (values.help === true) {
      process.stdout.write(`${help(name)}\n`);
      return 0;
    }
    if (command === undefined) {
      process.stderr.write(`nexus: no command given\n${usage()}\nSee 'nexus --help'.\n`);
      return 2;
    }
    return await command.run(values, operands);
  } catch (error) {
    if (error instanceof UsageError) {
      const who = error.command === '' ? 'nexus' : `nexus ${error.command}`;
      process.stderr.write(`${who}: ${error.message}\nSee '${who} --help'.\n`);
      return 2;
    }
    process.stderr.write(`nexus: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/**
 * Reads a command's line with parseArgs, then checks each option it found against the table:
 * an unknown option, a missing value, a value for a flag and a bad number or choice are named.
 */
function parse(name: string, args: string[], options: Record<string, Option>): { values: Values; operands: string[] } {
  // pyre's style: --node.grace and --team.size are --grace and --size (up to a --, after
  // which every word is an operand).
  const end = args.includes('--') ? args.indexOf('--') : args.length;
  const { tokens } = parseArgs({
    args: args.map((arg, i) => (i < end ? arg.replace(/^--(node|team)\./, '--') : arg)),
    options: Object.fromEntries(
      Object.entries(options).map(([key, option]) => [
        key,
        {
          type: option.value === undefined ? ('boolean' as const) : ('string' as const),
          ...(option.short === undefined ? {} : { short: option.short }),
        },
      ]),
    ),
    allowPositionals: true,
    // Checked below, to name the option and the one a misspelt name may be meant for.
    strict: false,
    tokens: true,
  });
  const values: Values = {};
  const operands: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') operands.push(token.value);
    if (token.kind !== 'option') continue;
    const option = options[token.name];
    const shown = token.rawName;
    if (option === undefined) {
      const near = nearest(token.name, Object.keys(options));
      throw new UsageError(`unknown option ${shown}${near === undefined ? '' : ` (did you mean --${near}?)`}`, name);
    }
    if (option.value === undefined) {
      if (token.value !== undefined) throw new UsageError(`option ${shown} takes no value`, name);
      values[token.name] = true;
      continue;
    }
    // A separate value that looks like an option is the next option: this one has none.
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-'))) {
      throw new UsageError(`option ${shown} needs a value: ${shown}=${option.value}`, name);
    }
    const value = read(name, shown, option, token.value);
    values[token.name] = option.multiple
      ? [...((values[token.name] as string[] | undefined) ?? []), token.value]
      : value;
  }
  return { values, operands };
}

/** An option's value, converted and checked. */
function read(name: string, shown: string, option: Option, text: string): string | number {
  if (option.choices !== undefined && !option.choices.includes(text)) {
    const choices = `${option.choices.slice(0, -1).join(', ')} or ${option.choices.at(-1)}`;
    throw new UsageError(`option ${shown} must be ${choices}, got "${text}"`, name);
  }
  if (option.number === undefined) return text;
  const number = text.trim() === '' ? Number.NaN : Number(text);
  if (!option.number.accepts(number)) {
    throw new UsageError(`option ${shown} must be ${option.number.expected}, got "${text}"`, name);
  }
  return number;
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, command]) => `nexus ${name} ${command.operands} [options]`);
  return [...lines, 'nexus --help | --version'].map((line, i) => (i === 0 ? 'usage: ' : '       ') + line).join('\n');
}

/** What --help says, of one command or of all. */
function help(name: string): string {
  const command = COMMANDS[name];
  if (command === undefined) {
    const summaries = Object.entries(COMMANDS).map(
      ([name, command]) => `${name.padEnd(7)}${command.summary.replaceAll('\n', `\n${' '.repeat(7)}`)}`,
    );
    return (
      `${usage()}\n\n${summaries.join('\n')}\n\n` +
      `Options may be given in pyre's style too (--node.grace=2, --team.size=4). TypeScript modules\n` +
      `need no build step. 'nexus <command> --help' says what a command takes.`
    );
  }
  const shown = Object.entries({ ...command.options, ...COMMON }).map(([key, option]) => {
    const flag = `${option.short === undefined ? '' : `-${option.short}, `}--${key}`;
    return [option.value === undefined ? flag : `${flag}=${option.value}`, option.help] as const;
  });
  const width = Math.max(...shown.map(([flag]) => flag.length)) + 2;
  const options = shown.map(
    ([flag, text]) => `  ${flag.padEnd(width)}${text.replaceAll('\n', `\n${' '.repeat(width + 2)}`)}`,
  );
  return `usage: nexus ${name} ${command.operands} [options]\n\n${command.details}\n\n${options.join('\n')}`;
}

async function serve(values: Values, operands: string[]): Promise<number> {
  const [config, ...extra] = operands;
  if (config === undefined || extra.length > 0) {
    throw new UsageError('takes exactly one configuration file', 'serve');
  }
  for (const spec of (values.log as string[] | undefined) ?? []) {
    const [pattern = '', severity] = spec.split(':');
    journal.activate(pattern, severity === undefined ? undefined : [severity as Severity]);
  }
  const grace = values.grace as number | undefined;
  const onFailure = values['on-failure'] as FailureAction | undefined;
  const node = new Node({
    config,
    ...(grace === undefined ? {} : { grace }),
    ...(onFailure === undefined ? {} : { onFailure }),
  });
  // A service that fails must not go unnoticed: the node's errors are shown, whatever --log says.
  journal.activate(node.name, ['error']);
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
  return 0;
}

async function run(values: Values, operands: string[]): Promise<number> {
  const [module, ...args] = operands;
  if (module === undefined) throw new UsageError('needs a workplan module', 'run');
  const settings = Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));
  const namespace = await importModule(pathToFileURL(resolve(module)).href);
  const exported = namespace.workplan ?? namespace.default;
  if (exported === undefined) throw new Error(`${module} exports no workplan (export \`workplan\` or a default)`);
  const workplan = typeof exported === 'function' ? await exported(...args) : exported;
  return runWorkplan(workplan, settings as RunSettings);
}

/** The package's version, from its package.json (beside dist/). */
function version(): string {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
