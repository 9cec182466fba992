import { mkdtemp, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { NexusError, Node } from '../dist/index.js';
import { Client, refused } from './clients.js';
import { runScript } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const echo = { module: join(root, 'examples/services/echo.ts'), export: 'EchoServer' };
const kv = { module: join(root, 'examples/services/kv.ts'), export: 'KeyValueServer' };

/** A service module written for the test: it greets every line with `greeting`. */
function greeterSource(greeting: string): string {
  return `import { Server } from ${JSON.stringify(join(root, 'dist/index.js'))};
export class Greeter extends Server {
  process(channel) {
    const buffer = Buffer.alloc(1024);
    for (let n = channel.read(buffer); n !== null; n = channel.read(buffer)) {
      if (n === 0) { channel.close(); return false; }
      this.reply(channel, ${JSON.stringify(greeting)} + ' ' + buffer.toString('latin1', 0, n));
    }
    return true;
  }
}
`;
}

/** A directory with a configuration file and a greeter module, and ways to rewrite them. */
async function workspace() {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-reload-'));
  const config = join(dir, 'node.json');
  const greeter = join(dir, 'greeter.mjs');
  let version = Date.now() / 1000;
  return {
    config,
    greeter: { module: './greeter.mjs', export: 'Greeter' },
    writeConfig: (services: object) => writeFile(config, JSON.stringify({ services })),
    async writeGreeter(greeting: string) {
      await writeFile(greeter, greeterSource(greeting));
      // A distinct modification time, whatever the file system's clock resolution.
      version += 10;
      await utimes(greeter, version, version);
    },
  };
}

function addressOf(node: Node, name: string): string {
  const address = (node.services.get(name) as { address?: string } | undefined)?.address;
  if (address === undefined) throw new Error(`no service "${name}"`);
  return address;
}

async function greet(address: string, line: string): Promise<string> {
  const client = await Client.connect(address);
  const answer = await client.ask(line);
  client.end();
  return answer;
}

test('reload adds, removes and restarts services, and leaves the unchanged ones and their peers alone', async (t) => {
  const space = await workspace();
  await space.writeGreeter('hello');
  await space.writeConfig({ echo, greeter: space.greeter, kv });
  const node = new Node({ config: space.config });
  await node.prepare();
  const watching = node.watch();

  const steady = await Client.connect(addressOf(node, 'echo'));
  steady.send('before');
  t.is(await steady.take(6), 'before');
  const doomed = await Client.connect(addressOf(node, 'kv'));
  t.is(await doomed.ask('SET a 1'), 'OK');
  const kvAddress = addressOf(node, 'kv');
  t.is(await greet(addressOf(node, 'greeter'), 'you'), 'hello you');

  // Changed: the greeter's code and the key-value store's options. Removed: kv. Added: store.
  await space.writeGreeter('howdy');
  await space.writeConfig({ echo, greeter: space.greeter, store: { ...kv, maxLine: 100 } });
  const report = await node.reload();
  t.deepEqual(report, { added: ['store'], removed: ['kv'], changed: ['greeter'], unchanged: ['echo'], failed: [] });

  steady.send('after');
  t.is(await steady.take(5), 'after', 'the unchanged service kept its conversation');
  await doomed.closed;
  t.true(await refused(kvAddress), 'the removed service no longer listens');
  t.is(await greet(addressOf(node, 'greeter'), 'you'), 'howdy you', 'the changed module was loaded again');
  t.is(await greet(addressOf(node, 'store'), 'GET a'), 'NONE');
  t.deepEqual([...node.services.keys()].sort(), ['echo', 'greeter', 'store']);

  // A changed option restarts the service too.
  await space.writeConfig({
    echo: { ...echo, idleTimeout: 60 },
    greeter: space.greeter,
    store: { ...kv, maxLine: 100 },
  });
  t.deepEqual((await node.reload()).changed, ['echo']);
  await steady.closed;

  node.stop();
  await watching;
  await node.shutdown();
});

test('a configuration that does not read rejects the reload and changes nothing', async (t) => {
  const space = await workspace();
  await space.writeConfig({ echo });
  const node = new Node({ config: space.config });
  await node.prepare();
  const watching = node.watch();
  const peer = await Client.connect(addressOf(node, 'echo'));

  await writeFile(space.config, '{ "services": ');
  await t.throwsAsync(node.reload(), { instanceOf: NexusError, message: /node\.json is not valid JSON/ });
  await space.writeConfig({ echo: { export: 'EchoServer' } });
  await t.throwsAsync(node.reload(), { message: /service "echo" needs a "module"/ });
  await space.writeConfig({ echo: { ...echo, idleTimout: 5 } });
  t.regex(
    String((await node.reload()).failed[0]?.error),
    /service "echo": EchoServer: unknown option "idleTimout" \(did you mean "idleTimeout"\?\)/,
  );
  await space.writeConfig({ echo: { ...echo, export: 'Nope' } });
  const report = await node.reload();
  t.is(report.failed[0]?.name, 'echo');
  t.regex(String(report.failed[0]?.error), /has no class exported as "Nope"/);
  await space.writeConfig({ echo: { module: 'no-such-nexus-package', export: 'EchoServer' } });
  t.regex(
    String((await node.reload()).failed[0]?.error),
    /cannot load no-such-nexus-package: Cannot find package 'no-such-nexus-package'/,
  );

  peer.send('still');
  t.is(await peer.take(5), 'still', 'the old service still serves its peer');
  node.stop();
  await watching;
  await node.shutdown();
});

test('a changed service that cannot start keeps its old version running', async (t) => {
  const space = await workspace();
  await space.writeGreeter('hello');
  await space.writeConfig({ greeter: space.greeter });
  const node = new Node({ config: space.config });
  await node.prepare();
  const watching = node.watch();
  const before = addressOf(node, 'greeter');

  await space.writeConfig({ greeter: { ...space.greeter, address: 'unix:/no/such/directory/greeter.sock' } });
  const report = await node.reload();
  t.deepEqual(
    report.failed.map((f) => f.name),
    ['greeter'],
  );
  t.is(addressOf(node, 'greeter'), before);
  t.is(await greet(before, 'again'), 'hello again');

  node.stop();
  await watching;
  await node.shutdown();
});

test('a node started from a module configuration reloads it too', async (t) => {
  const space = await workspace();
  const module = join(space.config, '..', 'node.config.mjs');
  const write = async (services: object, time: number) => {
    await writeFile(module, `export default async () => (${JSON.stringify({ services })});`);
    await utimes(module, time, time);
  };
  await write({ echo }, 1000);
  const node = new Node({ config: module });
  await node.prepare();
  t.deepEqual([...node.services.keys()], ['echo']);
  await write({ echo, kv }, 2000);
  t.deepEqual((await node.reload()).added, ['kv']);
  await node.shutdown();
});

test('without a configuration, reload leaves every service as it is', async (t) => {
  const node = new Node();
  t.deepEqual(await node.reload(), { added: [], removed: [], changed: [], unchanged: [], failed: [] });
});

test('in plain Node, a reload loads the new version of JavaScript modules, not the cached one', async (t) => {
  // Without a TypeScript loader, JavaScript modules are require()d where Node allows it; a new
  // version is asked for with a query, which require() would ignore.
  const dir = await mkdtemp(join(tmpdir(), 'nexus-plain-reload-'));
  const { code, stdout, stderr } = await runScript(`
    import { utimes, writeFile } from 'node:fs/promises';
    import { join } from 'node:path';
    import { Node } from './dist/index.js';
    const dir = ${JSON.stringify(dir)};
    const config = join(dir, 'node.config.mjs');
    const greeter = join(dir, 'greeter.mjs');
    const write = async (file, text, time) => {
      await writeFile(file, text);
      await utimes(file, time, time);
    };
    const greeterOf = (word) =>
      'import { Server } from ' + JSON.stringify(join(process.cwd(), 'dist/index.js')) + '; ' +
      'export class Greeter extends Server { word = ' + JSON.stringify(word) + '; }';
    const spec = { module: './greeter.mjs', export: 'Greeter', address: 'ip4:127.0.0.1:0' };
    await write(greeter, greeterOf('hello'), 1000);
    await write(config, 'export default { services: {} };', 1000);
    const node = new Node({ config });
    await node.prepare();
    await write(config, 'export default ' + JSON.stringify({ services: { greeter: spec } }) + ';', 2000);
    const { added } = await node.reload();
    const before = node.services.get('greeter')?.word;
    await write(greeter, greeterOf('howdy'), 3000);
    const { changed } = await node.reload();
    const after = node.services.get('greeter')?.word;
    console.log(JSON.stringify({ added, changed, before, after }));
    await node.shutdown();
  `);
  t.is(code, 0, stderr);
  t.deepEqual(JSON.parse(stdout), { added: ['greeter'], changed: ['greeter'], before: 'hello', after: 'howdy' });
});
