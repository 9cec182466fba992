// Memory and descriptors are given back when their owner ends, not when JavaScript's collector
// gets to it. The services run in a process of their own (fixtures/memory-node.ts), so that its
// resident memory is theirs; no spec forces a collection.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { Dispatcher, pipe, port, tcp } from '../dist/index.js';
import { portOf } from './helpers.js';

const fixture = fileURLToPath(new URL('./fixtures/memory-node.ts', import.meta.url));

/** What the services' process reports; memory in MiB. */
interface State {
  addresses: string[];
  baseline: number;
  rss: number;
  peak: number;
  connections: number;
  paused: number;
  fds: number;
}

/** The services' process, answering one command at a time (see the fixture). */
class Services {
  readonly child: ChildProcess;
  readonly #lines: AsyncIterator<string>;

  private constructor(child: ChildProcess) {
    this.child = child;
    // biome-ignore lint/style/noNonNullAssertion: spawned with a stdout pipe
    this.#lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  }

  /** Starts the process and resolves with it and its state once it listens. */
  static async start(...args: string[]): Promise<[Services, State]> {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const services = new Services(child);
    return [services, await services.#next()];
  }

  ask(command: string): Promise<State> {
    this.child.stdin?.write(`${command}\n`);
    return this.#next();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill();
    await exited;
  }

  async #next(): Promise<State> {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error('the services exited');
    return JSON.parse(value);
  }
}

/** A connection to a TCP (`ip4:…`) or Unix-domain (`unix:…`) address, once connected. */
async function connect(address: string): Promise<net.Socket> {
  const socket = address.startsWith('unix:')
    ? net.connect({ path: address.slice('unix:'.length) })
    : net.connect({ port: portOf(address), host: '127.0.0.1' });
  socket.on('error', () => {}); // resets are part of these specs; 'close' is what they wait for
  await once(socket, 'connect');
  return socket;
}

/** Resolves once `socket` has closed, however: a reset is one way for these peers to go. */
function closed(socket: net.Socket): Promise<void> {
  return socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));
}

/** Resolves once `socket` has received `bytes` bytes, or rejects if it closes first. */
function received(socket: net.Socket, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    socket.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (got >= bytes) resolve();
    });
    socket.on('close', () => reject(new Error(`closed after ${got} of ${bytes} bytes`)));
  });
}

/**
 * Seconds the node has to give the memory back once its server has seen the last peer go. It
 * does so at once; before, it held it until a collection, five seconds or more later.
 */
const SOON = 2;

test('peers that abandon a 60 MiB frame leave the node where it started, without a collection', async (t) => {
  const [services, start] = await Services.start('framed');
  try {
    const announced = 60 * 2 ** 20;
    const sent = Buffer.alloc(59 * 2 ** 20, 7);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(announced);
    const [address] = start.addresses as [string];
    const peers = await Promise.all([1, 2, 3, 4].map(() => connect(address)));
    await Promise.all(
      peers.map(async (peer) => {
        peer.write(header);
        peer.end(sent); // the server reads it all, then the end: a frame cut short
        await closed(peer); // the server has seen the peer go, and closed its end
      }),
    );
    const after = await services.ask(`settled 64 ${SOON}`);
    t.log(`baseline ${start.baseline.toFixed(0)} MiB, peak ${after.peak.toFixed(0)}, after ${after.rss.toFixed(0)}`);
    t.true(after.peak - start.baseline >= 50, 'the frames were held while they came');
    t.is(after.connections, 0);
    t.true(after.rss - start.baseline <= 64, `${after.rss.toFixed(0)} MiB, from ${start.baseline.toFixed(0)}`);
    // Fewer is no leak: the collector may close what Node itself left it, when it likes.
    t.true(after.fds <= start.fds, `${after.fds} descriptors open, against ${start.fds} before`);
  } finally {
    await services.stop();
  }
});

/** A client that sends its request a piece at a time, reads the answer, then leaves. */
async function slow(address: string, request: Buffer, answer: number): Promise<void> {
  const socket = await connect(address);
  const answered = received(socket, answer);
  for (let at = 0; at < request.length; at += 100) {
    socket.write(request.subarray(at, at + 100));
    await delay(5); // what makes it slow: not a synchronisation
  }
  await answered;
  socket.end();
  await closed(socket);
}

/** A client that sends and never reads. Left to the caller to end. */
async function deaf(address: string, request: Buffer): Promise<net.Socket> {
  const socket = await connect(address);
  socket.pause();
  socket.write(request);
  return socket;
}

/** A client that leaves in the middle of a request, while the server's answers wait unread. */
async function rude(address: string, request: Buffer): Promise<void> {
  const socket = await connect(address);
  socket.write(request.subarray(0, request.length / 2));
  await delay(5);
  socket.destroy();
  await closed(socket);
}

/**
 * How far above its baseline the node may stay once every client has left, in MiB: V8's heap
 * grows to serve 400 conversations and is not collected without need (heapTotal up to 9 MiB
 * more, measured), and channels' freed buffers are handed back to the system 4 MiB at a time.
 * (Before, glibc kept 20-22 MiB of them.)
 */
const BOUND = 16;

// Linux: the bound counts on glibc's heap being trimmed (see crates/core/src/sys/heap.rs).
(process.platform === 'linux' ? test : test.skip)(
  'slow, deaf and rude clients of the example services leave no memory or descriptor behind',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pyre-nexus-memory-'));
    const [services, start] = await Services.start('examples', dir);
    try {
      const [echo, kv] = start.addresses as [string, string];
      const echoed = Buffer.alloc(2000, 'e');
      const command = (i: number) => Buffer.from(`SET key${i} ${'v'.repeat(100)}\nGET key${i}\n`);
      const answer = `OK\nVALUE ${'v'.repeat(100)}\n`.length;
      // Unix-domain sockets hold about 200 KiB each way, so a peer that does not read makes the
      // server hold its answers: a 256 KiB high-water mark's worth, in a buffer of 512 KiB.
      const flood = Buffer.alloc(2 ** 20, 'd');
      const questions = Buffer.from('GET nothing\n'.repeat(2 ** 17)); // 640 KiB of answers
      const deafs = await Promise.all([
        ...Array.from({ length: 50 }, () => deaf(echo, flood)),
        ...Array.from({ length: 50 }, () => deaf(kv, questions)),
      ]);
      const clients = [
        ...Array.from({ length: 100 }, () => slow(echo, echoed, echoed.length)),
        ...Array.from({ length: 100 }, (_, i) => slow(kv, command(i), answer)),
        ...Array.from({ length: 50 }, () => rude(echo, Buffer.alloc(400_000, 'r'))),
        ...Array.from({ length: 50 }, () => rude(kv, Buffer.from('SET half a request'))),
      ];
      const held = await services.ask('paused 100');
      t.is(held.paused, 100, 'every deaf client is paused, its answers held');
      await Promise.all(clients);
      for (const socket of deafs) socket.destroy();
      await Promise.all(deafs.map(closed));
      const after = await services.ask(`settled ${BOUND} ${SOON}`);
      t.log(
        `baseline ${start.baseline.toFixed(0)} MiB, with the deaf ones held ${held.rss.toFixed(0)}, after ${after.rss.toFixed(0)}`,
      );
      t.true(held.rss - start.baseline > BOUND, 'their answers took more than the bound');
      t.is(after.connections, 0);
      t.true(
        after.fds <= start.fds,
        `every conversation closed its descriptor: ${after.fds} open, against ${start.fds}`,
      );
      t.true(after.rss - start.baseline <= BOUND, `${after.rss.toFixed(0)} MiB, from ${start.baseline.toFixed(0)}`);
    } finally {
      await services.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

function openDescriptors(): number {
  return readdirSync(process.platform === 'linux' ? '/proc/self/fd' : '/dev/fd').length;
}

test('closed channels give their descriptors back at once, watched or not', (t) => {
  const dispatcher = new Dispatcher();
  try {
    const before = openDescriptors();
    const listener = port();
    const channels = [listener, tcp(listener.address as string)];
    for (let i = 0; i < 100; i++) channels.push(...pipe());
    for (const channel of channels.slice(0, 100)) dispatcher.whenReadReady(channel, () => true);
    t.true(openDescriptors() >= before + channels.length);
    for (const channel of channels) channel.close();
    t.is(openDescriptors(), before);
  } finally {
    dispatcher.close();
  }
});
