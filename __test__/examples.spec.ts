// The example services, run by `nexus serve` in a process of their own, under load from many
// clients and from clients that misbehave.
import test from 'ava';
import { Client } from './clients.js';
import { type ServedNode, serveNode } from './helpers.js';

const services = {
  echo: { module: 'examples/services/echo.ts', export: 'EchoServer', highWater: 64 * 1024 },
  kv: { module: 'examples/services/kv.ts', export: 'KeyValueServer', highWater: 64 * 1024 },
  stats: { module: '__test__/fixtures/stats.ts', export: 'StatsServer' },
};

interface Stats {
  rss: number;
  servers: Record<string, { connections: number; paused: number }>;
}

async function stats(reporter: Client): Promise<Stats> {
  return JSON.parse(await reporter.ask('stats')) as Stats;
}

/** Asks for stats until `done` holds: the state is in another process, which sends no events. */
async function statsWhen(reporter: Client, done: (s: Stats) => boolean): Promise<Stats> {
  for (;;) {
    const s = await stats(reporter);
    if (done(s)) return s;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const CLIENTS = 1000;

/** `count` echo clients connected at once, each doing `rounds` 64-byte round trips of its own bytes. */
async function echoClients(node: ServedNode, count: number, rounds: number, whileConnected?: () => Promise<void>) {
  const clients = await Promise.all(Array.from({ length: count }, () => Client.connect(node.address('echo'))));
  await whileConnected?.();
  await Promise.all(
    clients.map(async (client, i) => {
      for (let round = 0; round < rounds; round++) {
        const message = `client ${i} round ${round} `.padEnd(64, '.');
        client.send(message);
        if ((await client.take(64)) !== message) throw new Error(`client ${i} got someone else's bytes`);
      }
      client.end();
      await client.closed;
    }),
  );
}

/** `count` key-value clients at once, each setting, reading and deleting a key of its own. */
async function kvClients(node: ServedNode, count: number) {
  const clients = await Promise.all(Array.from({ length: count }, () => Client.connect(node.address('kv'))));
  const answers = await Promise.all(
    clients.map(async (client, i) => {
      const replies = [
        await client.ask(`SET key${i} value ${i}`),
        await client.ask(`GET key${i}`),
        await client.ask(`DEL key${i}`),
        await client.ask(`GET key${i}`),
      ];
      client.end();
      return replies.join('|');
    }),
  );
  return answers.filter((answer, i) => answer !== `OK|VALUE value ${i}|DELETED|NONE`);
}

test('1,000 concurrent clients of the echo and the key-value services are all served correctly', async (t) => {
  const node = await serveNode(services);
  const reporter = await Client.connect(node.address('stats'));
  await echoClients(node, CLIENTS, 5, async () => {
    const s = await statsWhen(reporter, (s) => s.servers.echo?.connections === CLIENTS);
    t.is(s.servers.echo?.connections, CLIENTS, 'all clients are connected at once');
  });
  t.deepEqual(await kvClients(node, CLIENTS), [], 'every key-value client got its own answers');
  node.child.kill('SIGTERM');
  t.deepEqual(await node.exit, { code: 0, signal: null });
});

test('slow, resetting and non-reading clients do not stop the node serving others, and memory stays bounded', async (t) => {
  const node = await serveNode(services);
  const reporter = await Client.connect(node.address('stats'));
  // Warm up with the load used below, so that the baseline includes what serving it costs.
  await echoClients(node, CLIENTS, 2);
  const baseline = await stats(reporter);

  // One byte per second.
  const slow = await Client.connect(node.address('kv'));
  t.is(await slow.ask('SET s yes'), 'OK');
  const dribble = (async () => {
    for (const byte of 'GET s\n') {
      slow.send(byte);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return slow.line();
  })();

  // Resets in the middle of a request.
  for (let i = 0; i < 50; i++) {
    const rude = await Client.connect(node.address(i % 2 ? 'kv' : 'echo'));
    rude.send('SET half a requ');
    rude.socket.resetAndDestroy();
  }

  // Never read their replies: an echo flood, and pipelined reads of a 60 KB value.
  const flood = await Client.connect(node.address('echo'));
  flood.socket.pause();
  const chunk = Buffer.alloc(64 * 1024, 'f');
  for (let sent = 0; sent < 64 * 1024 * 1024; sent += chunk.length) flood.send(chunk);
  const greedy = await Client.connect(node.address('kv'));
  greedy.socket.pause();
  greedy.send(`SET big ${'b'.repeat(60_000)}\n${'GET big\n'.repeat(4000)}`); // 240 MB of answers
  const stuck = await statsWhen(reporter, (s) => s.servers.echo?.paused === 1 && s.servers.kv?.paused === 1);

  // Everyone else is still served, while all that is going on.
  await echoClients(node, CLIENTS, 2);
  t.deepEqual(await kvClients(node, 100), []);
  t.is(await dribble, 'VALUE yes', 'the slow client was served too');

  const grown = (await stats(reporter)).rss - baseline.rss;
  t.log(
    `resident memory: ${mb(baseline.rss)} before, ${mb(stuck.rss)} with the non-readers paused, +${mb(grown)} at the end`,
  );
  t.true(grown < 48 * 1024 * 1024, `memory grew by ${mb(grown)}, more than the bound`);

  // Once the misbehaving clients go, so do their conversations.
  flood.socket.destroy();
  greedy.socket.destroy();
  slow.end();
  const after = await statsWhen(reporter, (s) => s.servers.echo?.connections === 0 && s.servers.kv?.connections === 0);
  t.deepEqual([after.servers.echo?.paused, after.servers.kv?.paused], [0, 0]);
  node.child.kill('SIGTERM');
  t.deepEqual(await node.exit, { code: 0, signal: null });
});

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
