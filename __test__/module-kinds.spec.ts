// One package whether imported or required: CommonJS and ES-module projects, plain or under tsx,
// get the same classes, and `nexus serve` loads their TypeScript services alike. Each project is a
// folder outside the repository whose node_modules/pyre-nexus is this repository (as installed).
import { mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { Client } from './clients.js';
import { runNode, serveConfig } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));

const echoService = `import { type Channel, Server } from 'pyre-nexus';

export class EchoServer extends Server {
  constructor(options: ConstructorParameters<typeof Server>[0], private readonly buffer = Buffer.alloc(1024)) {
    super(options);
  }
  override process(channel: Channel): boolean {
    const length = channel.read(this.buffer);
    if (length === null) return true;
    if (length === 0) {
      channel.close();
      return false;
    }
    this.reply(channel, this.buffer.subarray(0, length));
    return true;
  }
}
`;

/** A project folder of `kind` with pyre-nexus installed, an echo service in TypeScript and its node.json. */
async function project(kind: 'commonjs' | 'module'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `nexus-${kind}-project-`));
  await mkdir(join(dir, 'node_modules'));
  await symlink(root, join(dir, 'node_modules', 'pyre-nexus'), 'dir');
  // tsx is the package's own dependency: a real install puts it beside the package.
  await symlink(join(root, 'node_modules', 'tsx'), join(dir, 'node_modules', 'tsx'), 'dir');
  const manifest = kind === 'module' ? { name: 'user', type: 'module' } : { name: 'user' };
  await writeFile(join(dir, 'package.json'), JSON.stringify(manifest));
  await writeFile(join(dir, 'echo.ts'), echoService);
  const address = 'ip4:127.0.0.1:0';
  await writeFile(
    join(dir, 'node.json'),
    JSON.stringify({ services: { echo: { module: './echo.ts', export: 'EchoServer', address } } }),
  );
  return dir;
}

for (const kind of ['commonjs', 'module'] as const) {
  for (const nodeArgs of [[], ['--import', 'tsx']]) {
    const how = nodeArgs.length === 0 ? 'plain Node' : 'node --import tsx';
    test(`nexus serve serves a TypeScript Server from a ${kind} project (${how})`, async (t) => {
      const dir = await project(kind);
      const node = await serveConfig(join(dir, 'node.json'), ['echo'], { nodeArgs, cwd: dir });
      try {
        const client = await Client.connect(node.address('echo'));
        client.send('hello from a user project');
        t.is(await client.take(25), 'hello from a user project');
        client.end();
        await client.closed;
      } finally {
        node.child.kill('SIGTERM');
      }
      const { code } = await node.exit;
      t.is(code, 0, node.output());
    });
  }

  test(`a ${kind} project that both requires and imports pyre-nexus gets one instance of it`, async (t) => {
    const dir = await project(kind);
    await writeFile(
      join(dir, 'both.cjs'),
      `const required = require('pyre-nexus');
       const task = require('pyre-nexus/task');
       import('pyre-nexus').then(async (imported) => {
         const importedTask = await import('pyre-nexus/task');
         const names = ['Channel', 'Dispatcher', 'Pool', 'Server', 'Node', 'Task', 'NexusError'];
         console.log(JSON.stringify({
           differ: names.filter((name) => required[name] !== imported[name]),
           task: task.Task === required.Task && importedTask.Task === required.Task,
         }));
       });`,
    );
    for (const args of [['both.cjs'], ['--import', 'tsx', 'both.cjs']]) {
      const { code, stdout, stderr } = await runNode(args, dir);
      t.is(code, 0, stderr);
      t.deepEqual(JSON.parse(stdout), { differ: [], task: true }, args.join(' '));
    }
  });
}
