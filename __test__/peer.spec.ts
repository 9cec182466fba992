import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import * as nexus from '../dist/index.js';
import {
  Asynchronous,
  type Dispatcher,
  journal,
  type LogEntry,
  Nexus,
  NexusError,
  Node,
  Peer,
  peer,
  Server,
  Service,
  Timer,
} from '../dist/index.js';
import { EchoServer } from '../examples/services/echo.ts';
import { refused } from './clients.js';

test('run() is prepare, then watch, then shutdown, and resolves to what watch gave', async (t) => {
  const steps: string[] = [];
  class Traced extends Peer {
    override async prepare() {
      steps.push('prepare');
      this.dispatcher.alarm(0, () => {
        steps.push('watching');
      });
    }
    override async watch() {
      await super.watch();
      return 'watched';
    }
    override shutdown() {
      steps.push('shutdown');
    }
  }
  const traced = new Traced();
  t.is(await traced.run(), 'watched');
  t.deepEqual(steps, ['prepare', 'watching', 'shutdown']);
  t.false(traced.timer.running);
  t.true(traced.timer.read() > 0);
});

test('run() shuts down even when watch rejects, and rejects with its error', async (t) => {
  let shutdown = false;
  class Failing extends Peer {
    override prepare() {
      this.dispatcher.alarm(0, () => {
        throw new Error('handler bug');
      });
    }
    override shutdown() {
      shutdown = true;
    }
  }
  await t.throwsAsync(new Failing().run(), { message: 'handler bug' });
  t.true(shutdown);
});

test.serial('a node whose prepare fails still shuts down and lets go of its signal handlers', async (t) => {
  const before = process.listenerCount('SIGTERM');
  const node = new Node({ services: { broken: new EchoServer({ address: 'nonsense' }) } });
  node.registerSignalHandlers();
  await t.throwsAsync(node.run(), { message: /service "broken" failed to start/ });
  t.is(process.listenerCount('SIGTERM'), before);
});

test('stop() ends the loop of a peer', async (t) => {
  const p = new Peer();
  p.dispatcher.alarm(3600, () => undefined);
  p.dispatcher.alarm(0, () => p.stop());
  await p.run();
  t.is(p.dispatcher.handlerCount, 1, 'registrations stay after stop');
  p.dispatcher.close();
});

test('log channels are silent by default, cost no message building when off, and switch by name', (t) => {
  const seen: LogEntry[] = [];
  const device = journal.device;
  journal.device = (entry) => seen.push(entry);
  try {
    const quiet = new Peer({ name: 'quiet-peer' });
    let built = 0;
    quiet.debug.log(() => `built ${++built}`);
    quiet.error.log('not shown');
    t.is(built, 0);
    t.deepEqual(seen, []);

    journal.activate('quiet-*', ['debug']);
    quiet.debug.log(() => `built ${++built}`);
    quiet.error.log('still off');
    t.deepEqual(
      seen.map((e) => [e.channel, e.severity, e.message]),
      [['quiet-peer', 'debug', 'built 1']],
    );
    t.true(new Peer({ name: 'quiet-later' }).debug.active, 'channels made later follow the switch');

    journal.deactivate('quiet-*');
    quiet.debug.log('off again');
    t.is(seen.length, 1);
  } finally {
    journal.device = device;
  }
  t.throws(() => journal.activate(''), { message: /non-empty string/ });
  t.throws(() => journal.activate('x', ['loud' as 'info']), { message: /unknown severity loud/ });
});

test('protocols carry their defaults: nexus is Node, asynchronous is Peer, service has none', (t) => {
  t.is(Nexus.pyreDefault(), Node);
  t.is(Asynchronous.pyreDefault(), Peer);
  t.is(Service.pyreDefault(), null);
  t.true(Service.isImplementedBy(new EchoServer()));
  t.true(Nexus.isImplementedBy(new Node()));
  t.false(Service.isImplementedBy({ activate() {} }));
  t.false(Service.isImplementedBy(null));
});

test("pyre's lowercase names are exported", (t) => {
  t.is(nexus.nexus, Nexus);
  t.is(nexus.node, Node);
  t.is(nexus.service, Service);
  t.is(nexus.server, Server);
  t.is(nexus.asynchronous, Asynchronous);
  t.is(peer(), Peer);
});

test('the timer accumulates running stretches', (t) => {
  const timer = new Timer();
  t.is(timer.read(), 0);
  timer.start();
  t.true(timer.running);
  timer.stop();
  const first = timer.read();
  t.is(timer.lap(), 0);
  timer.start().stop();
  t.true(timer.read() >= first);
  t.is(timer.reset().read(), 0);
});

test('bad node and peer options get messages that name the option', (t) => {
  t.throws(() => new Node({ grace: -1 }), { instanceOf: RangeError, message: /option "grace"/ });
  t.throws(() => new Node({ config: 7 as unknown as string }), {
    instanceOf: TypeError,
    message: 'Node: option "config" must be the path of a configuration file, got number 7',
  });
  t.throws(() => new Node({ services: { x: {} as Service } }), {
    instanceOf: TypeError,
    message: /option "services" names "x", which is not a service/,
  });
  t.throws(() => new Peer({ name: '' }), { message: 'Peer: option "name" must be a non-empty string, got string ""' });
  t.throws(() => new Peer({ dispatcher: {} as Dispatcher }), { message: /option "dispatcher"/ });
  t.throws(() => new Peer({ marshaler: {} as never }), {
    message: 'Peer: option "marshaler" must be a Marshaler (with send, recv), got an object',
  });
  t.throws(() => new Peer('x' as never), { message: 'Peer: options must be an object, got string "x"' });
});

test('a service that fails to start names itself, and the ones already started are shut down', async (t) => {
  const first = new EchoServer();
  const node = new Node({ services: { first, broken: new EchoServer({ address: 'nonsense' }) } });
  await t.throwsAsync(node.prepare(), { instanceOf: NexusError, message: /service "broken" failed to start/ });
  t.true(await refused(first.address), 'the first was shut down');
});

test('a config naming a service that the options name too is refused', async (t) => {
  const config = fileURLToPath(new URL('./fixtures/echo-node.json', import.meta.url));
  const node = new Node({ config, services: { echo: new EchoServer() } });
  await t.throwsAsync(node.prepare(), { message: /service "echo" is named twice/ });
});

// Serial: these two count the process's signal listeners.
test.serial('signal() dispatches through the index; signal handlers are released at shutdown', async (t) => {
  const node = new Node();
  let reloads = 0;
  node.reload = async () => {
    reloads++;
    return { added: [], removed: [], changed: [], unchanged: [], failed: [] };
  };
  const before = process.listenerCount('SIGHUP');
  node.registerSignalHandlers();
  node.registerSignalHandlers(); // twice is once
  t.is(process.listenerCount('SIGHUP'), before + 1);
  await node.signal('SIGHUP');
  t.is(reloads, 1);
  t.throws(() => node.signal('SIGUSR2'), { instanceOf: NexusError, message: /no handler for SIGUSR2/ });
  await node.shutdown();
  t.is(process.listenerCount('SIGHUP'), before);
});

test('the nexus command explains its usage and names a bad configuration', async (t) => {
  const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
  const run = async (...args: string[]) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = await once(child, 'exit');
    return { code, stderr };
  };
  const bare = await run();
  t.is(bare.code, 2);
  t.regex(bare.stderr, /no command given\nusage: nexus serve/);
  t.is((await run('serve')).code, 2);
  const colour = await run('serve', 'x.json', '--colour=red');
  t.is(colour.code, 2);
  t.regex(colour.stderr, /unknown option --colour/);
  const missing = await run('serve', '/no/such/node.json');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /configuration \/no\/such\/node.json cannot be read/);
});
