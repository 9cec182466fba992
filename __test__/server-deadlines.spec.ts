// A server's deadlines against peers that are slow or stuck: requests that never arrive whole,
// output that never goes out (peers that do not read, half-closed or not, and conversations
// already ended), while well-behaved peers keep being served.
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { type Channel, Node, Server } from '../dist/index.js';
import { EchoServer } from '../examples/services/echo.ts';
import { KeyValueServer } from '../examples/services/kv.ts';
import { Client } from './clients.js';
import { logsOf, portOf, serving } from './helpers.js';

// Serial: the specs count this process's sockets.
const serial = test.serial;

/** This process's open sockets (Linux). */
function sockets(): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) count++;
    } catch {
      // the directory's own descriptor, gone once read
    }
  }
  return count;
}

/** Waits until `done()` holds, looking every 10 ms for 10 s at most; `what` names it if not. */
async function eventually(what: string, done: () => boolean): Promise<void> {
  for (let waited = 0; !done(); waited += 10) {
    if (waited >= 10_000) throw new Error(`still not so after 10 s: ${what}`);
    await delay(10);
  }
}

/** A raw connection that never reads until told to (the Client helper reads as data comes). */
async function nonReader(address: string): Promise<net.Socket> {
  const socket = address.startsWith('unix:')
    ? net.connect({ path: address.slice('unix:'.length) })
    : net.connect({ port: portOf(address), host: '127.0.0.1' });
  socket.pause();
  socket.on('error', () => {}); // the server's abort may reach it as a reset
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** Reads and drops what the peer has sent. */
function drainInput(channel: Channel): void {
  const buffer = Buffer.alloc(4096);
  while ((channel.read(buffer) ?? 0) > 0) {}
}

/** Reads what `socket` still gets until it closes; resolves to the number of bytes. */
function readToClose(socket: net.Socket): Promise<number> {
  if (socket.closed) return Promise.resolve(0);
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(bytes)));
  socket.resume();
  return closed;
}

serial('half-closed peers that never read are aborted by the drain deadline, and their sockets freed', async (t) => {
  const highWater = 64 * 1024;
  const services = {
    stuckkv: new KeyValueServer({ name: 'stuckkv', highWater, drainTimeout: 0.5 }),
    stuckecho: new EchoServer({ name: 'stuckecho', highWater, drainTimeout: 0.5 }),
  };
  await serving(services, async ({ stuckkv, stuckecho }) => {
    const before = sockets();
    const value = 'v'.repeat(60_000);
    const requests = `SET big ${value}\n${'GET big\n'.repeat(400)}`; // 24 MB of answers
    const echoed = Buffer.alloc(24 * 1024 * 1024, 'e');
    const peers = [];
    for (let i = 0; i < 3; i++) {
      const kv = await nonReader(stuckkv.address);
      kv.end(requests); // and half-closes
      const echo = await nonReader(stuckecho.address);
      echo.end(echoed);
      peers.push(kv, echo);
    }
    await eventually('every conversation is paused', () => stuckkv.paused === 3 && stuckecho.paused === 3);
    t.is(sockets(), before + 12, 'each peer and each conversation holds a socket');
    await eventually(
      'the drain deadline has ended every conversation',
      () => stuckkv.connections + stuckkv.closing + stuckecho.connections + stuckecho.closing === 0,
    );
    // A peer still writing when its conversation was aborted has seen the reset and closed.
    const open = peers.filter((peer) => !peer.destroyed).length;
    t.is(sockets(), before + open, "the server's sockets are closed; only the peers' are left");
    t.is(logsOf('stuckkv', /has read none of its replies for 0\.5 s, aborting/).length, 3);
    t.is(logsOf('stuckecho', /has read none of its replies for 0\.5 s, aborting/).length, 3);
    const received = await Promise.all(peers.map(readToClose));
    for (const [i, bytes] of received.entries()) {
      const asked = i % 2 === 0 ? 400 * (value.length + 7) + 3 : echoed.length;
      t.true(bytes < asked, `peer ${i} got ${bytes} of ${asked} bytes: its conversation was cut short`);
    }
    t.is(sockets(), before);
  });
});

serial('a conversation ended with close() whose peer never reads is aborted by the drain deadline', async (t) => {
  // Answers the first input with as much as the channel takes, then hangs up.
  class Farewell extends Server {
    override process(channel: Channel): boolean {
      drainInput(channel);
      const chunk = Buffer.alloc(64 * 1024, 'f');
      while (channel.write(chunk) === chunk.length) {}
      channel.close();
      return false;
    }
  }
  await serving({ farewell: new Farewell({ name: 'farewell', drainTimeout: 0.3 }) }, async ({ farewell }) => {
    const before = sockets();
    const peer = await nonReader(farewell.address);
    peer.write('hello');
    await eventually('the conversation has ended, its output waiting', () => farewell.closing === 1);
    t.is(farewell.connections, 0, 'an ended conversation is no longer a connection');
    t.is(sockets(), before + 2, 'but it holds its socket while its output waits');
    await eventually('the drain deadline has aborted it', () => farewell.closing === 0);
    t.is(sockets(), before + 1, "the server's socket is closed");
    t.is(logsOf('farewell', /has read none of its last replies for 0\.3 s, aborting/).length, 1);
    await readToClose(peer);
    t.is(sockets(), before);
  });
});

serial(
  'an ended conversation whose peer reads slowly keeps its socket while its output moves, then lets it go',
  async (t) => {
    // Ends the conversation with 4 MiB still to send. A Unix-domain socket, whose kernel buffers
    // are small and fixed: the server sees its output move every 200 KB or so the peer reads (TCP
    // on the loopback may buffer megabytes first).
    const total = 4 * 1024 * 1024;
    class Farewell extends Server {
      override process(channel: Channel): boolean {
        drainInput(channel);
        channel.outputBound = total;
        this.reply(channel, Buffer.alloc(total, 'f'));
        channel.close();
        return false;
      }
    }
    const address = `unix:${join(await mkdtemp(join(tmpdir(), 'nexus-deadlines-')), 'goodbye.sock')}`;
    const server = new Farewell({ name: 'goodbye', address, drainTimeout: 1 });
    await serving({ server }, async () => {
      const before = sockets();
      const peer = await nonReader(server.address);
      peer.write('hello');
      await eventually('the conversation has ended, its output waiting', () => server.closing === 1);
      // Sips 32 KiB every 20 ms: the 4 MiB take 2.5 s at least, longer than the drain deadline,
      // but the output moves about every 0.15 s.
      let received = 0;
      let closed = false;
      peer.once('close', () => {
        closed = true;
      });
      for (let sips = 0; received < total && !closed && sips < 10_000; sips++) {
        const chunk = (peer.read(32 * 1024) ?? peer.read()) as Buffer | null;
        if (chunk !== null) received += chunk.length;
        await delay(20);
      }
      t.is(received, total, 'every byte arrived');
      t.deepEqual(logsOf('goodbye', /aborting/), []);
      await eventually('nothing is closing', () => server.closing === 0);
      await readToClose(peer);
      t.is(sockets(), before);
    });
  },
);

serial('a peer sending a byte at a time is closed by the request deadline; others are served', async (t) => {
  const store = new KeyValueServer({ name: 'dribble', requestTimeout: 0.5, idleTimeout: 0 });
  await serving({ store }, async () => {
    const steady = await Client.connect(store.address);
    const slow = await Client.connect(store.address);
    let slowClosed = false;
    void slow.closed.then(() => {
      slowClosed = true;
    });
    // A line that never ends, a byte every 100 ms, for 10 s at most; the steady client talks
    // meanwhile.
    let rounds = 0;
    for (let i = 0; i < 100 && !slowClosed; i++) {
      slow.send(i === 0 ? 'SET slow ' : 'x');
      t.is(await steady.ask(`SET round ${rounds}`), 'OK');
      t.is(await steady.ask('GET round'), `VALUE ${rounds}`);
      rounds++;
      await delay(100);
    }
    t.true(slowClosed, 'the slow peer was closed');
    t.is(logsOf('dribble', /sent part of a request and not the rest within 0\.5 s, closing/).length, 1);
    t.is(store.connections, 1, 'the steady client is still connected');
    t.is(await steady.ask('GET round'), `VALUE ${rounds - 1}`);
    steady.end();
  });
});

serial('whole requests sent slowly, or streamed back to back, are never taken for a slow request', async (t) => {
  const requestTimeout = 0.3;
  const store = new KeyValueServer({ name: 'patient', requestTimeout, idleTimeout: 1 });
  await serving({ store }, async () => {
    t.is(store.requestTimeout, requestTimeout);
    // Slow: a whole request at a time, each in one write, further apart than the deadline.
    const slow = await Client.connect(store.address);
    // Streamed: each write ends the last request and begins the next, so the server always
    // holds part of one, but never the same part for long.
    const streamed = await Client.connect(store.address);
    t.is(await streamed.ask('SET k v'), 'OK');
    streamed.send('GET ');
    const since = performance.now();
    for (let i = 0; performance.now() - since < 2000; i++) {
      if (i % 8 === 0) t.is(await slow.ask(`SET slow ${i}`), 'OK'); // every 0.4 s or so
      streamed.send('k\nGET ');
      t.is(await streamed.line(), 'VALUE v');
      await delay(50);
    }
    t.is(store.connections, 2, 'neither was closed');
    // Silent now, the slow peer is closed by the idle timeout, and only by that.
    streamed.send('k\n');
    t.is(await streamed.line(), 'VALUE v');
    streamed.end();
    await slow.closed;
    t.is(logsOf('patient', /idle for 1 s, closing/).length, 1);
    t.deepEqual(logsOf('patient', /part of a request/), []);
  });
});

serial('a paused peer is not idle: the drain deadline, not the idle timeout, ends it', async (t) => {
  const echo = new EchoServer({ name: 'quiet', highWater: 64 * 1024, idleTimeout: 0.2, drainTimeout: 1 });
  await serving({ echo }, async () => {
    const peer = await nonReader(echo.address);
    peer.write(Buffer.alloc(16 * 1024 * 1024, 'q'));
    await eventually('the peer is paused', () => echo.paused === 1);
    await eventually('the conversation has ended', () => echo.connections + echo.closing === 0);
    t.is(logsOf('quiet', /has read none of its replies for 1 s, aborting/).length, 1);
    t.deepEqual(logsOf('quiet', /idle/), []);
    peer.destroy();
  });
});

serial('bad deadlines are refused with messages that name them', (t) => {
  t.throws(() => new Server({ requestTimeout: -1 }), {
    instanceOf: RangeError,
    message: 'Server: option "requestTimeout" must be a non-negative number of seconds under 1e9, got number -1',
  });
  t.throws(() => new Server({ drainTimeout: '5' as unknown as number }), {
    instanceOf: TypeError,
    message: 'Server: option "drainTimeout" must be a non-negative number of seconds under 1e9, got string "5"',
  });
  t.throws(() => new Server({ idleTimeout: 1e10 }), { instanceOf: RangeError, message: /"idleTimeout".*1e9/ });
  t.throws(() => new Server({ drainTimeout: Number.NaN }), { instanceOf: RangeError, message: /"drainTimeout"/ });
  t.throws(() => new Server({ requestTimout: 5 } as object), { message: /did you mean "requestTimeout"/ });
  const server = new Server();
  t.deepEqual([server.idleTimeout, server.requestTimeout, server.drainTimeout], [300, 60, 60]);
});

serial("a node's configuration file sets the deadlines, and a bad one names the service and option", async (t) => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const dir = await mkdtemp(join(tmpdir(), 'nexus-deadlines-'));
  const config = join(dir, 'node.json');
  const kv = { module: join(root, 'examples/services/kv.ts'), export: 'KeyValueServer' };
  await writeFile(config, JSON.stringify({ services: { kv: { ...kv, requestTimeout: 2.5, drainTimeout: 0 } } }));
  const node = new Node({ config });
  await node.prepare();
  const server = node.services.get('kv') as KeyValueServer;
  t.deepEqual([server.requestTimeout, server.drainTimeout], [2.5, 0]);
  await node.shutdown();
  await writeFile(config, JSON.stringify({ services: { kv: { ...kv, drainTimeout: -2 } } }));
  const bad = new Node({ config });
  await t.throwsAsync(bad.prepare(), { message: /"drainTimeout" must be a non-negative number of seconds/ });
  await bad.shutdown();
});
