import { mkdtemp, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import {
  type Channel,
  Dispatcher,
  journal,
  NexusError,
  Node,
  type NodeOptions,
  pipe,
  port,
  type Service,
} from '../dist/index.js';
import { EchoServer } from '../examples/services/echo.ts';
import { Client, refused } from './clients.js';
import { Faulty } from './fixtures/faulty.ts';
import { logsOf, nextLog, serveNode } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const faultyModule = { module: join(root, '__test__/fixtures/faulty.ts'), export: 'Faulty' };
const echoModule = { module: join(root, 'examples/services/echo.ts'), export: 'EchoServer' };
// For serveNode, which takes paths relative to the repository.
const served = {
  echo: { module: 'examples/services/echo.ts', export: 'EchoServer' },
  faulty: { module: '__test__/fixtures/faulty.ts', export: 'Faulty' },
};

function addressOf(node: Node, name: string): string {
  const address = (node.services.get(name) as { address?: string } | undefined)?.address;
  if (address === undefined) throw new Error(`no service "${name}" runs`);
  return address;
}

/** Sends a line on a new connection and resolves to the reply line. */
async function ask(address: string, line: string): Promise<string> {
  const client = await Client.connect(address);
  const answer = await client.ask(line);
  client.end();
  return answer;
}

/** Whether the echo service at `address` still echoes. */
async function echoes(address: string): Promise<boolean> {
  const client = await Client.connect(address);
  client.send('still there?');
  const answer = await client.take(12);
  client.end();
  return answer === 'still there?';
}

/** Runs a node (watching, not yet stopped) for the length of `body`, then stops it. */
async function running(options: NodeOptions, body: (node: Node) => Promise<void>): Promise<void> {
  const node = new Node(options);
  journal.activate(node.name);
  await node.prepare();
  const watching = node.watch();
  try {
    await body(node);
  } finally {
    node.stop();
    await watching;
    await node.shutdown();
  }
}

/**
 * A service written without Server: its own listener, handlers that are its own methods, and an
 * alarm its shutdown forgets. A peer that sends `boom` makes `process` throw.
 */
class Raw implements Service {
  address = 'ip4:127.0.0.1:0';
  listener: Channel | null = null;
  dispatcher: Dispatcher | null = null;
  shutdownThrows = false;
  readonly #buffer = Buffer.alloc(1024);

  activate(_application: unknown, dispatcher: Dispatcher): boolean {
    this.dispatcher = dispatcher;
    this.listener = port(this.address);
    this.address = this.listener.address as string;
    dispatcher.whenReadReady(this.listener, (channel) => this.acknowledge(channel));
    dispatcher.alarm(3600, () => 3600);
    return true;
  }
  acknowledge(channel: Channel): boolean {
    for (let peer = channel.accept(); peer !== null; peer = channel.accept()) {
      this.dispatcher?.whenReadReady(peer, (conversation) => this.process(conversation));
    }
    return true;
  }
  validate(): boolean {
    return true;
  }
  connect(): void {}
  process(channel: Channel): boolean {
    const length = channel.read(this.#buffer);
    if (length === null) return true;
    if (length === 0) {
      channel.close();
      return false;
    }
    const text = this.#buffer.toString('latin1', 0, length);
    if (text.includes('boom')) throw new Error('raw process() cannot take a boom');
    channel.write(text);
    return true;
  }
  shutdown(): void {
    this.listener?.close();
    if (this.shutdownThrows) throw new Error('raw shutdown() tripped over itself');
  }
}

// Child dispatchers: what a node gives each service.

test("a child's close drops what was registered through it and its children, and nothing else", async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const parentAlarm = dispatcher.alarm(3600, () => 3600);
  const child = dispatcher.child();
  t.true(child instanceof Dispatcher);
  child.whenReadReady(b, () => true);
  child.whenWriteReady(b, () => true);
  child.alarm(3600, () => 3600);
  const grandchild = child.child();
  grandchild.alarm(3600, () => 3600);
  t.is(dispatcher.handlerCount, 5);
  t.false(child.cancel(parentAlarm), "a child cannot cancel its parent's registrations");

  child.close();
  t.is(dispatcher.handlerCount, 1);
  t.throws(() => child.alarm(1, () => undefined), { code: 'ERR_NEXUS_DISPATCHER_CLOSED' });
  t.throws(() => grandchild.whenReadReady(b, () => true), { code: 'ERR_NEXUS_DISPATCHER_CLOSED' });
  t.true(dispatcher.cancel(parentAlarm));
  t.is(dispatcher.handlerCount, 0);
  dispatcher.close();
  a.close();
  b.close();
});

test("a child's handler that throws goes to the child's onError, and the loop carries on", async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const reported: string[] = [];
  const child = dispatcher.child({
    onError: (error, channel) => reported.push(`${(error as Error).message} ${channel === null ? 'alarm' : 'channel'}`),
  });
  child.alarm(0, () => {
    throw new Error('alarm broke');
  });
  child.whenReadReady(b, () => {
    throw new Error('handler broke');
  });
  child.alarm(0, async () => {
    throw new Error('async alarm broke');
  });
  let got = '';
  dispatcher.whenReadReady(b, (channel) => {
    const buffer = Buffer.alloc(16);
    const n = channel.read(buffer);
    if (n !== null && n > 0) got += buffer.toString('latin1', 0, n);
    return got.length < 2;
  });
  a.write('ok');
  await dispatcher.watch();
  t.is(got, 'ok', "the parent's handler ran to its end");
  t.deepEqual(reported.sort(), ['alarm broke alarm', 'async alarm broke alarm', 'handler broke channel']);
  t.is(dispatcher.handlerCount, 0);
  dispatcher.close();
  a.close();
  b.close();
});

test('without onError, a child handler that throws rejects the watch like any other', async (t) => {
  const dispatcher = new Dispatcher();
  dispatcher.child().alarm(0, () => {
    throw new Error('nobody listens');
  });
  await t.throwsAsync(dispatcher.watch(), { message: 'nobody listens' });
  dispatcher.close();
});

test('Dispatcher.child checks its options', (t) => {
  const dispatcher = new Dispatcher();
  t.throws(() => dispatcher.child({ onError: 'log' as never }), {
    message: 'Dispatcher.child: option "onError" must be a function, got string "log"',
  });
  t.throws(() => dispatcher.child({ spin: 5 } as never), { message: /unknown option "spin"/ });
  dispatcher.close();
});

// A node's services, one failing.

test('a throwing alarm stops its service alone: the failure is logged with its stack, the others answer', async (t) => {
  await running({ name: 'iso-alarm', services: { echo: new EchoServer(), faulty: new Faulty() } }, async (node) => {
    const faulty = addressOf(node, 'faulty');
    t.is(await ask(faulty, 'hello'), 'hello');
    const failed = nextLog('iso-alarm', /^service "faulty" failed/);
    t.is(await ask(faulty, 'alarm'), 'armed');
    const entry = await failed;
    t.is(entry.severity, 'error');
    t.regex(entry.message, /service "faulty" failed: Error: the alarm of faulty went off badly\n\s+at /);
    t.true(await echoes(addressOf(node, 'echo')));
    t.true(await refused(faulty), "the failed service's port is closed");
    t.deepEqual([...node.services.keys()], ['echo']);
    const failure = node.failures.get('faulty');
    t.is(failure?.state, 'stopped');
    t.regex(String(failure?.error), /went off badly/);
  });
});

test("a service's handler that throws: it stops, its port closes, its registrations go, the others answer", async (t) => {
  const raw = new Raw();
  await running({ name: 'iso-raw', services: { echo: new EchoServer(), raw } }, async (node) => {
    const client = await Client.connect(raw.address);
    client.send('hi');
    t.is(await client.take(2), 'hi');
    // The raw service has three registrations now: its listener, its alarm and this conversation.
    const before = node.dispatcher.handlerCount;
    const failed = nextLog('iso-raw', /^service "raw" failed/);
    client.send('boom');
    t.regex((await failed).message, /raw process\(\) cannot take a boom\n\s+at /);
    t.is(node.dispatcher.handlerCount, before - 3, 'everything the service registered is dropped');
    t.true(await refused(raw.address));
    t.true(await echoes(addressOf(node, 'echo')));
    t.false(node.services.has('raw'));
    t.is(node.failures.get('raw')?.state, 'stopped');
    client.socket.destroy();
  });
});

test('a failed service whose shutdown() throws too is logged, and the node carries on', async (t) => {
  const raw = new Raw();
  raw.shutdownThrows = true;
  await running({ name: 'iso-shutdown', services: { echo: new EchoServer(), raw } }, async (node) => {
    const client = await Client.connect(raw.address);
    const shutdown = nextLog('iso-shutdown', /could not shut down service "raw"/);
    client.send('boom');
    t.regex((await shutdown).message, /tripped over itself/);
    t.true(await echoes(addressOf(node, 'echo')));
    t.true(await refused(raw.address));
    client.socket.destroy();
  });
});

test("policy 'restart' makes the service afresh until the bound, then stops it", async (t) => {
  const made: Faulty[] = [];
  const options: NodeOptions = {
    name: 'iso-restart',
    onFailure: 'restart',
    restartLimit: 2,
    services: {
      echo: new EchoServer(),
      faulty: () => {
        const faulty = new Faulty();
        made.push(faulty);
        return faulty;
      },
    },
  };
  await running(options, async (node) => {
    for (const round of [1, 2]) {
      const restarted = nextLog('iso-restart', /^service "faulty" restarted/);
      t.is(await ask(addressOf(node, 'faulty'), 'alarm'), 'armed');
      await restarted;
      t.is(made.length, round + 1, 'a fresh instance each time');
      t.is(node.services.get('faulty'), made.at(-1));
      t.is(await ask(addressOf(node, 'faulty'), 'back'), 'back');
      t.false(node.failures.has('faulty'));
    }
    const gaveUp = nextLog('iso-restart', /^service "faulty" failed after 2 restarts within 60 s; giving up/);
    const last = addressOf(node, 'faulty');
    t.is(await ask(last, 'alarm'), 'armed');
    await gaveUp;
    t.is(made.length, 3);
    t.false(node.services.has('faulty'));
    t.like(node.failures.get('faulty'), { state: 'stopped', restarts: 2 });
    t.true(await refused(last));
    t.true(await echoes(addressOf(node, 'echo')));
  });
});

test("policy 'restart' of a service given as an object stops it instead, saying why", async (t) => {
  await running({ name: 'iso-object', onFailure: 'restart', services: { faulty: new Faulty() } }, async (node) => {
    const why = nextLog('iso-object', /cannot be restarted: it was given as an object/);
    t.is(await ask(addressOf(node, 'faulty'), 'alarm'), 'armed');
    await why;
    t.is(node.failures.get('faulty')?.state, 'stopped');
  });
});

test("policy 'exit' ends run() with an error naming the service, and shuts the others down", async (t) => {
  const echo = new EchoServer();
  const faulty = new Faulty();
  const node = new Node({ name: 'iso-exit', onFailure: 'exit', services: { echo, faulty } });
  const started = nextLog('iso-exit', /^service "faulty" started/);
  const run = node.run();
  await started;
  t.is(await ask(faulty.address, 'alarm'), 'armed');
  const error = await t.throwsAsync(run, {
    instanceOf: NexusError,
    code: 'ERR_NEXUS_SERVICE',
    message: 'service "faulty" failed: the alarm of faulty went off badly',
  });
  t.regex(String((error?.cause as Error | undefined)?.stack), /went off badly\n\s+at /);
  t.true(await refused(echo.address), 'the node shut its other services down');
});

test('a policy function decides per service and error; a policy that throws leaves the service stopped', async (t) => {
  const asked: string[] = [];
  const options: NodeOptions = {
    name: 'iso-function',
    services: { first: () => new Faulty(), second: () => new Faulty() },
    onFailure: (name, error) => {
      asked.push(`${name}: ${(error as Error).message}`);
      if (name === 'second') throw new Error('the policy itself is broken');
      return asked.length === 1 ? 'restart' : 'stop';
    },
  };
  await running(options, async (node) => {
    const restarted = nextLog('iso-function', /^service "first" restarted/);
    t.is(await ask(addressOf(node, 'first'), 'alarm'), 'armed');
    await restarted;
    const stopped = nextLog('iso-function', /^service "first" stopped/);
    t.is(await ask(addressOf(node, 'first'), 'alarm'), 'armed');
    await stopped;
    const broken = nextLog('iso-function', /the failure policy threw for service "second"/);
    t.is(await ask(addressOf(node, 'second'), 'alarm'), 'armed');
    t.regex((await broken).message, /the policy itself is broken/);
    t.deepEqual(asked, [
      'first: the alarm of faulty went off badly',
      'first: the alarm of faulty went off badly',
      'second: the alarm of faulty went off badly',
    ]);
    t.deepEqual([...node.failures.keys()].sort(), ['first', 'second']);
    t.deepEqual([...node.services.keys()], []);
  });
});

/** A configuration file in a directory of its own. */
async function configFile(services: object): Promise<{ path: string; write: (services: object) => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-isolation-'));
  const path = join(dir, 'node.json');
  const write = (services: object) => writeFile(path, JSON.stringify({ services }));
  await write(services);
  return { path, write };
}

test("a configuration entry's onFailure overrides the node's, and its restart is built from the entry", async (t) => {
  const config = await configFile({ echo: echoModule, faulty: { ...faultyModule, onFailure: 'restart' } });
  await running({ name: 'iso-entry', config: config.path, onFailure: 'exit' }, async (node) => {
    const before = node.services.get('faulty');
    const restarted = nextLog('iso-entry', /^service "faulty" restarted/);
    t.is(await ask(addressOf(node, 'faulty'), 'alarm'), 'armed');
    await restarted;
    t.not(node.services.get('faulty'), before);
    t.is(await ask(addressOf(node, 'faulty'), 'again'), 'again');
    t.true(await echoes(addressOf(node, 'echo')));
  });
});

test('a bad onFailure is named: in the node options, and in a configuration entry', async (t) => {
  t.throws(() => new Node({ onFailure: 'restrat' as never }), {
    instanceOf: TypeError,
    message: 'Node: option "onFailure" must be "stop", "restart", "exit" or a function, got string "restrat"',
  });
  t.throws(() => new Node({ restartLimit: -1 }), { instanceOf: RangeError, message: /"restartLimit" must be/ });
  const config = await configFile({ faulty: { ...faultyModule, onFailure: 'retry' } });
  const node = new Node({ config: config.path });
  await t.throwsAsync(node.prepare(), {
    instanceOf: NexusError,
    message:
      /node\.json service "faulty": "onFailure" must be "stop", "restart", "exit" or a function, got string "retry"$/,
  });
  await node.shutdown();
});

test('a reload starts a failed service again: the same version, or a fixed one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-isolation-reload-'));
  const module = join(dir, 'fragile.mjs');
  const writeModule = async (breaks: boolean, time: number) => {
    await writeFile(
      module,
      `import { Server } from ${JSON.stringify(join(root, 'dist/index.js'))};
export class Fragile extends Server {
  process(channel) {
    const buffer = Buffer.alloc(1024);
    const n = channel.read(buffer);
    if (n === null) return true;
    if (n === 0) { channel.close(); return false; }
    if (${breaks}) this.dispatcher.alarm(0, () => { throw new Error('fragile broke'); });
    this.reply(channel, 'fine\\n');
    return true;
  }
}
`,
    );
    await utimes(module, time, time);
  };
  await writeModule(true, 1000);
  const config = await configFile({ fragile: { module, export: 'Fragile' } });
  await running({ name: 'iso-reload', config: config.path }, async (node) => {
    let failed = nextLog('iso-reload', /^service "fragile" stopped/);
    t.is(await ask(addressOf(node, 'fragile'), 'x'), 'fine');
    await failed;
    t.false(node.services.has('fragile'));

    // The configuration did not change, but the service is down: a reload starts it again.
    t.like(await node.reload(), { added: ['fragile'], unchanged: [], failed: [] });
    t.false(node.failures.has('fragile'));
    failed = nextLog('iso-reload', /^service "fragile" stopped/);
    t.is(await ask(addressOf(node, 'fragile'), 'x'), 'fine');
    await failed;

    // A fixed module.
    await writeModule(false, 2000);
    t.like(await node.reload(), { added: ['fragile'], failed: [] });
    t.is(await ask(addressOf(node, 'fragile'), 'x'), 'fine');
    t.is(await ask(addressOf(node, 'fragile'), 'y'), 'fine');
    t.false(node.failures.has('fragile'));
    t.like(await node.reload(), { unchanged: ['fragile'], added: [] });
  });
  t.true(logsOf('iso-reload').some((message) => message.includes('fragile broke')));
});

// Under the nexus command.

test('nexus serve: a service whose alarm throws is stopped and reported, the others keep serving', async (t) => {
  const node = await serveNode(served);
  // Errors of the node are shown without --log.
  const failed = node.logged(/service "faulty" failed: Error: the alarm of faulty went off badly/);
  t.is(await ask(node.address('faulty'), 'alarm'), 'armed');
  t.regex(await failed, /^node\(error\)/);
  t.true(await echoes(node.address('echo')));
  t.true(await echoes(node.address('echo')), 'and again: the process did not exit');
  t.true(await refused(node.address('faulty')));
  node.child.kill('SIGTERM');
  t.deepEqual(await node.exit, { code: 0, signal: null });
});

test('nexus serve --on-failure=exit: a failing service ends the node with status 1 and its error', async (t) => {
  const node = await serveNode(served, '--on-failure=exit');
  const said = node.logged(/^nexus: service "faulty" failed: the alarm of faulty went off badly$/);
  t.is(await ask(node.address('faulty'), 'alarm'), 'armed');
  await said;
  t.deepEqual(await node.exit, { code: 1, signal: null });
});
