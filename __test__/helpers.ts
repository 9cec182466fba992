import { type ChildProcess, spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  type Channel,
  type Dispatcher,
  journal,
  type LogEntry,
  NOTHING,
  Node,
  pipe,
  Server,
  type Service,
  V8Marshaler,
} from '../dist/index.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));

/** A Node process running a fixture, which finds its channel on fd 3. */
export interface Peer {
  channel: Channel;
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnPeer(fixture: string, ...args: string[]): Peer {
  const [parent, child] = pipe();
  const proc = spawn(process.execPath, ['--import', 'tsx', fixtures + fixture, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', child.fd as number],
  });
  child.close();
  const exit = once(proc, 'exit').then(([code, signal]) => ({ code, signal }));
  return { channel: parent, child: proc, exit };
}

/** Runs Node with `args` in `cwd` and resolves with its exit code, stdout and stderr. */
export async function runNode(
  args: string[],
  cwd = root,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  // 'close', not 'exit': the process can exit before its last output has been read.
  const [code] = await once(proc, 'close');
  return { code, stdout, stderr };
}

/** Runs a node script given as text and resolves with its exit code, stdout and stderr. */
export function runScript(source: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runNode(['--input-type=module', '-e', source]);
}

/** The next item `channel` brings, through `dispatcher`; rejects if the peer closes first. */
export async function receive(
  dispatcher: Dispatcher,
  channel: Channel,
  marshaler = new V8Marshaler(),
): Promise<unknown> {
  let item: unknown = NOTHING;
  dispatcher.whenReadReady(channel, (ch) => {
    item = marshaler.recv(ch);
    return item === NOTHING && !ch.atEnd;
  });
  await dispatcher.watch();
  if (item === NOTHING) throw new Error('the peer closed its channel before sending anything');
  return item;
}

/** A node run by the `nexus serve` command, in its own process. */
export interface ServedNode {
  child: ChildProcess;
  /** A service's address, as the command printed it. */
  address(service: string): string;
  /** Resolves when a line of the node's stderr matches. */
  logged(pattern: RegExp): Promise<string>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything the node printed. */
  output(): string;
}

/**
 * Runs `nexus serve` on a configuration written to a temporary file; `services` maps names to
 * specs whose `module` is a path relative to the repository. Resolves once every service listens.
 */
export async function serveNode(
  services: Record<string, Record<string, unknown>>,
  ...args: string[]
): Promise<ServedNode> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-node-'));
  const config = join(dir, 'node.json');
  const absolute = Object.fromEntries(
    Object.entries(services).map(([name, spec]) => [name, { ...spec, module: join(root, spec.module as string) }]),
  );
  await writeFile(config, JSON.stringify({ services: absolute }));
  return serveConfig(config, Object.keys(services), { nodeArgs: ['--import', 'tsx'] }, ...args);
}

/**
 * Runs `nexus serve config` (the repository's build) with `nodeArgs` in `cwd`, and resolves once
 * each of `services` says where it listens.
 */
export async function serveConfig(
  config: string,
  services: string[],
  { nodeArgs = [], cwd = root }: { nodeArgs?: string[]; cwd?: string },
  ...args: string[]
): Promise<ServedNode> {
  const child = spawn(process.execPath, [...nodeArgs, join(root, 'dist/cli.js'), 'serve', config, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exit = once(child, 'exit').then(([code, signal]) => ({ code, signal }));
  let output = '';
  const waiting: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => {
    output += `${line}\n`;
    for (const w of waiting.filter((w) => w.pattern.test(line))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(line);
    }
  });
  const addresses: Record<string, string> = {};
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => {
      output += `${line}\n`;
      const match = /^(\S+) listening at (\S+)$/.exec(line);
      if (match) addresses[match[1] as string] = match[2] as string;
      if (Object.keys(addresses).length === services.length) resolve();
    });
    void exit.then(({ code }) => reject(new Error(`the node exited with ${code} before it was ready:\n${output}`)));
  });
  await ready;
  return {
    child,
    address: (service) => {
      const address = addresses[service];
      if (address === undefined) throw new Error(`the node has no service "${service}"`);
      return address;
    },
    exit,
    output: () => output,
    logged: (pattern) => new Promise((resolve) => waiting.push({ pattern, resolve })),
  };
}

/** The port of an `ip4:host:port` address. */
export function portOf(address: string | undefined): number {
  const port = Number(address?.split(':').at(-1));
  if (!Number.isInteger(port)) throw new Error(`no port in address ${address}`);
  return port;
}

/**
 * A name other than localhost that this machine resolves to an IPv4 address: its own host name,
 * or one from /etc/hosts; null if there is none.
 */
export async function resolvableName(): Promise<string | null> {
  let hosts = '';
  try {
    hosts = readFileSync('/etc/hosts', 'utf8');
  } catch {}
  const listed = hosts.split('\n').flatMap((line) => line.replace(/#.*/, '').trim().split(/\s+/).slice(1));
  for (const name of [hostname(), ...listed]) {
    if (name === '' || name.toLowerCase() === 'localhost' || name.includes(':')) continue;
    try {
      await lookup(name, { family: 4 });
      return name;
    } catch {}
  }
  return null;
}

// What this process's log channels say: a spec names its services, and waits on what they log.
const entries: LogEntry[] = [];
const waiting: { channel: string; pattern: RegExp; resolve: (entry: LogEntry) => void }[] = [];

function hear(entry: LogEntry): void {
  entries.push(entry);
  for (const w of waiting.filter((w) => w.channel === entry.channel && w.pattern.test(entry.message))) {
    waiting.splice(waiting.indexOf(w), 1);
    w.resolve(entry);
  }
}

/** The next entry of log `channel` matching `pattern` (the channel is switched on). */
export function nextLog(channel: string, pattern: RegExp): Promise<LogEntry> {
  journal.device = hear;
  journal.activate(channel);
  return new Promise((resolve) => waiting.push({ channel, pattern, resolve }));
}

/** The messages log `channel` has given so far that match `pattern`. */
export function logsOf(channel: string, pattern = /(?:)/): string[] {
  return entries.filter((e) => e.channel === channel && pattern.test(e.message)).map((e) => e.message);
}

/** Runs a node with `services` for the length of `body`, the logs of its servers on. */
export async function serving<T extends Record<string, Service>>(
  services: T,
  body: (services: T) => Promise<void>,
): Promise<void> {
  journal.device = hear;
  for (const service of Object.values(services)) if (service instanceof Server) journal.activate(service.name);
  const node = new Node({ services });
  await node.prepare();
  const watching = node.watch();
  try {
    await body(services);
  } finally {
    node.stop();
    await watching;
    await node.shutdown();
  }
}
