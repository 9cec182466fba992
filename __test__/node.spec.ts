import { lookup } from 'node:dns/promises';
import test from 'ava';
import { Dispatcher } from '../dist/index.js';
import { Client, refused } from './clients.js';
import { receive, resolvableName, serveNode, spawnPeer } from './helpers.js';

const kv = { module: 'examples/services/kv.ts', export: 'KeyValueServer' };

test('node signals: the child says ready, SIGHUP reloads, SIGTERM stops it cleanly with status 0', async (t) => {
  const { channel, child, exit } = spawnPeer('signal-node.ts');
  const dispatcher = new Dispatcher();
  t.is(await receive(dispatcher, channel), 'ready');
  child.kill('SIGHUP');
  t.is(await receive(dispatcher, channel), 'reloaded');
  // The node is idle (a listener, no traffic): SIGTERM must stop it without waiting for I/O.
  child.kill('SIGTERM');
  t.deepEqual(await exit, { code: 0, signal: null });
  channel.close();
});

test('nexus serve resolves a host name in a configuration and prints the address it listens at', async (t) => {
  const name = (await resolvableName()) ?? 'localhost';
  const { address: ip } = await lookup(name, { family: 4 });
  const node = await serveNode({ kv: { ...kv, address: `ip4:${name}:0` } });
  t.regex(node.address('kv'), new RegExp(`^ip4:${ip.replaceAll('.', '\\.')}:\\d+$`));
  node.child.kill('SIGTERM');
  t.deepEqual(await node.exit, { code: 0, signal: null });
});

test('SIGTERM closes the listeners and idle conversations first, and lets one in progress finish', async (t) => {
  const node = await serveNode({ kv }, '--grace=60', '--log=node:info');
  const busy = await Client.connect(node.address('kv'));
  const idle = await Client.connect(node.address('kv'));
  t.is(await busy.ask('SET answer 42'), 'OK');
  t.is(await idle.ask('SET other 1'), 'OK');
  // A whole request and half of the next in one segment: once the answer is back, the server
  // holds the half, and this conversation is in progress.
  busy.send('GET answer\nGET ans');
  t.is(await busy.line(), 'VALUE 42');
  const stopping = node.logged(/stopping/);
  node.child.kill('SIGTERM');
  await stopping;
  await idle.closed;
  t.true(await refused(node.address('kv')), 'the listener closes first');
  busy.send('wer\n');
  t.is(await busy.line(), 'VALUE 42');
  await busy.closed;
  t.deepEqual(await node.exit, { code: 0, signal: null });
  t.regex(node.output(), /stopped/);
});

test('conversations still in progress when the grace period ends are closed, and the node exits 0', async (t) => {
  const node = await serveNode({ kv }, '--grace=0.2', '--log=node:warning');
  const stuck = await Client.connect(node.address('kv'));
  t.is(await stuck.ask('SET k v'), 'OK');
  stuck.send('GET k\nGET never-finished');
  t.is(await stuck.line(), 'VALUE v');
  node.child.kill('SIGTERM');
  await stuck.closed;
  t.deepEqual(await node.exit, { code: 0, signal: null });
  t.regex(node.output(), /still open after 0.2 s/);
});

test('a second SIGTERM stops at once, without waiting out the grace period', async (t) => {
  const node = await serveNode({ kv }, '--grace=600', '--log=node:info');
  const stuck = await Client.connect(node.address('kv'));
  t.is(await stuck.ask('SET k v'), 'OK');
  stuck.send('GET k\nGET half');
  t.is(await stuck.line(), 'VALUE v');
  const stopping = node.logged(/stopping/);
  node.child.kill('SIGTERM');
  await stopping;
  node.child.kill('SIGTERM');
  t.deepEqual(await node.exit, { code: 0, signal: null });
});
