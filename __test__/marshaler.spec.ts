import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import test from 'ava';
import {
  BadPayloadError,
  type Channel,
  Dispatcher,
  FrameTooLargeError,
  HybridMarshaler,
  JsonMarshaler,
  NexusError,
  NOTHING,
  pipe,
  port,
  TruncatedFrameError,
  V8Marshaler,
} from '../dist/index.js';
import { spawnPeer } from './helpers.js';

const marshaler = new V8Marshaler();

/** Reads items from `channel` until end of file or an error, which is returned with them. */
function drain(dispatcher: Dispatcher, channel: Channel, m = marshaler): { items: unknown[]; error?: unknown } {
  const result: { items: unknown[]; error?: unknown } = { items: [] };
  dispatcher.whenReadReady(channel, (ch) => {
    try {
      for (let item = m.recv(ch); item !== NOTHING; item = m.recv(ch)) result.items.push(item);
    } catch (error) {
      result.error = error;
      ch.close();
      return false;
    }
    if (ch.atEnd) ch.close();
    return !ch.atEnd;
  });
  return result;
}

test('two processes exchange 100,000 framed messages with none lost or reordered', async (t) => {
  const peer = spawnPeer('peer.ts', 'count', '100000');
  const dispatcher = new Dispatcher();
  const got = drain(dispatcher, peer.channel);
  await dispatcher.watch();
  t.is(got.error, undefined, String(got.error));
  t.is(got.items.length, 100_000);
  t.true(
    got.items.every((item, i) => item === i),
    'every message arrived once, in order',
  );
  t.deepEqual(await peer.exit, { code: 0, signal: null });
});

test('a 16 MiB message crosses to another process and back intact', async (t) => {
  const peer = spawnPeer('peer.ts', 'echo');
  const big = randomBytes(16 << 20);
  const dispatcher = new Dispatcher();
  marshaler.send(big, peer.channel);
  let back: Buffer | undefined;
  dispatcher.whenReadReady(peer.channel, (ch) => {
    const item = marshaler.recv(ch);
    if (item === NOTHING) return true;
    back = item as Buffer;
    ch.close();
    return false;
  });
  await dispatcher.watch();
  t.true(Buffer.isBuffer(back) && back.equals(big));
  t.is((await peer.exit).code, 0);
});

test('a frame sent one byte at a time is delivered whole, once', async (t) => {
  const peer = spawnPeer('peer.ts', 'bytewise');
  const dispatcher = new Dispatcher();
  let partial = 0;
  const items: unknown[] = [];
  dispatcher.whenReadReady(peer.channel, (ch) => {
    const item = marshaler.recv(ch);
    if (item !== NOTHING) items.push(item);
    else if (!ch.atEnd) {
      partial += 1;
      ch.write('k'); // acknowledge: the peer sends the next byte
    }
    if (ch.atEnd) ch.close();
    return !ch.atEnd;
  });
  await dispatcher.watch();
  const frameLength = 4 + marshaler.encode({ greeting: 'one byte at a time', numbers: [1, 2, 3] }).length;
  t.deepEqual(items, [{ greeting: 'one byte at a time', numbers: [1, 2, 3] }]);
  t.is(partial, frameLength - 1, 'every partial state was seen, and none was handed out');
});

test('a peer announcing a 4 GiB frame gets an error on its channel only; others carry on', async (t) => {
  const peer = spawnPeer('peer.ts', 'huge');
  const [a, b] = pipe();
  const dispatcher = new Dispatcher();
  const bad = drain(dispatcher, peer.channel);
  const good = drain(dispatcher, b);
  marshaler.send('still here', a);
  a.close();
  await dispatcher.watch();
  t.true(bad.error instanceof FrameTooLargeError);
  t.is(
    (bad.error as FrameTooLargeError).message,
    'the peer announced a frame of 4294967295 bytes, more than the maximum of 67108864',
  );
  t.deepEqual(good.items, ['still here']);
  t.is((await peer.exit).code, 0, 'the peer saw its channel closed and ended');
});

test('a peer dying in the middle of a frame is a TruncatedFrameError for that channel', async (t) => {
  const peer = spawnPeer('peer.ts', 'die-mid-frame');
  const dispatcher = new Dispatcher();
  const got = drain(dispatcher, peer.channel);
  await dispatcher.watch();
  t.true(got.error instanceof TruncatedFrameError, String(got.error));
  t.regex((got.error as Error).message, /in the middle of a frame \(9 of \d+ bytes\)/);
  t.is((await peer.exit).signal, 'SIGKILL');
});

test('the maximum frame size is configurable per channel', async (t) => {
  const [a, b] = pipe();
  b.maxFrame = 10;
  marshaler.send('x'.repeat(100), a);
  const dispatcher = new Dispatcher();
  const got = drain(dispatcher, b);
  await dispatcher.watch();
  t.true(got.error instanceof FrameTooLargeError);
  t.regex((got.error as Error).message, /more than the maximum of 10$/);
});

test('a payload that does not decode is a BadPayloadError, and the next frame still arrives', (t) => {
  const [a, b] = pipe();
  a.sendFrame(Buffer.from('not v8 data'));
  marshaler.send({ ok: true }, a);
  const error = t.throws(() => marshaler.recv(b), { instanceOf: BadPayloadError });
  t.is(error?.code, 'ERR_NEXUS_BAD_PAYLOAD');
  t.regex(error?.message ?? '', /an 11-byte frame is not a V8-serialized value|a 11-byte frame/);
  t.deepEqual(marshaler.recv(b), { ok: true });
  const json = new JsonMarshaler();
  a.sendFrame(Buffer.from('{oops'));
  t.throws(() => json.recv(b), { instanceOf: BadPayloadError, message: /frame is not JSON/ });
});

test('the JSON marshaler speaks plain length-prefixed JSON', (t) => {
  const [a, b] = pipe();
  const json = new JsonMarshaler();
  json.send({ answer: 42, list: ['a'] }, a);
  const raw = b.recvFrame() as Buffer;
  t.is(raw.toString(), '{"answer":42,"list":["a"]}');
  json.send([1, 2], a);
  t.deepEqual(json.recv(b), [1, 2]);
});

test('recv says "no whole message yet" with NOTHING, a symbol no peer can send', (t) => {
  const [a, b] = pipe();
  t.is<symbol, symbol>(NOTHING, Symbol.for('pyre-nexus.NOTHING'), 'registered: two copies of the library agree on it');
  a.write(Buffer.from([5, 0, 0])); // part of a frame's header
  for (const m of [marshaler, new HybridMarshaler(), new JsonMarshaler()]) {
    t.is(m.recv(b), NOTHING);
    t.throws(() => m.send(NOTHING, a), { instanceOf: TypeError, message: /NOTHING is what recv returns/ });
  }
  t.is(a.pendingOutput, 0, 'nothing was sent for NOTHING');
});

test('undefined is a message like any other: it arrives between others, in order', (t) => {
  const [a, b] = pipe();
  for (const m of [marshaler, new HybridMarshaler()]) {
    for (const item of [1, undefined, 'between', undefined, undefined, null]) m.send(item, a);
    const got: unknown[] = [];
    for (let item = m.recv(b), bound = 0; item !== NOTHING && bound < 100; item = m.recv(b), bound++) got.push(item);
    t.deepEqual(got, [1, undefined, 'between', undefined, undefined, null], m.constructor.name);
  }
});

test("a peer's undefined, a V8 frame written by hand on a TCP connection, arrives as a message", async (t) => {
  // Another program's bytes, not our marshaler's: the frames of 1, undefined and 'after', as
  // V8's serializer (format version 15) writes them, after their 4-byte little-endian lengths.
  const frame = (...payload: number[]) => Buffer.from([payload.length, 0, 0, 0, ...payload]);
  const bytes = Buffer.concat([
    frame(0xff, 0x0f, 0x49, 0x02),
    frame(0xff, 0x0f, 0x5f),
    frame(0xff, 0x0f, 0x22, 0x05, ...Buffer.from('after')),
  ]);
  for (const m of [marshaler, new HybridMarshaler()]) {
    const listener = port('ip4:127.0.0.1:0');
    const peer = netConnect(Number(listener.address?.split(':').at(-1)), '127.0.0.1');
    peer.end(bytes);
    const dispatcher = new Dispatcher();
    let got: { items: unknown[]; error?: unknown } = { items: [] };
    dispatcher.whenReadReady(listener, (l) => {
      const server = l.accept();
      if (server === null) return true;
      got = drain(dispatcher, server, m);
      l.close();
      return false;
    });
    await dispatcher.watch();
    peer.destroy();
    t.is(got.error, undefined, String(got.error));
    t.deepEqual(got.items, [1, undefined, 'after'], m.constructor.name);
  }
});

test('the JSON marshaler refuses to send undefined, which JSON cannot carry, and sends nothing', (t) => {
  const [a, b] = pipe();
  const json = new JsonMarshaler();
  t.throws(() => json.send(undefined, a), {
    instanceOf: TypeError,
    message:
      'JsonMarshaler: undefined has no JSON form; send null, or use a V8Marshaler or HybridMarshaler, which carry undefined',
  });
  t.throws(() => json.send(() => 1, a), { instanceOf: TypeError, message: /a function has no JSON form/ });
  json.send(null, a);
  t.is(json.recv(b), null, 'the next message is the next one sent');
  t.is(json.recv(b), NOTHING);
});

test('a loop that stops at undefined is stopped with an error, not left to spin forever', async (t) => {
  const [, b] = pipe();
  let asked = 0;
  const error = t.throws(
    () => {
      // Bounded for the test's sake; the loop a user wrote before NOTHING has no bound.
      for (let item = marshaler.recv(b); item !== undefined && asked < 10_000_000; item = marshaler.recv(b)) asked++;
    },
    { instanceOf: NexusError },
  );
  t.is(error?.code, 'ERR_NEXUS_RECV_LOOP');
  t.regex(error?.message ?? '', /without the program yielding.*stop at NOTHING/);
  t.true(asked < 2_000_000, `stopped after ${asked} NOTHINGs`);
  // A program that yields between its questions is never stopped, however often it asks.
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 600_000; i++) marshaler.recv(b);
    await Promise.resolve();
  }
  t.is(marshaler.recv(b), NOTHING);
});

test('V8 marshaling keeps rich values', (t) => {
  const [a, b] = pipe();
  const value = { when: new Date(0), map: new Map([[1, 'one']]), bytes: Buffer.from([1, 2]), big: 10n };
  marshaler.send(value, a);
  const back = marshaler.recv(b) as typeof value;
  t.deepEqual(back.when, value.when);
  t.deepEqual([...back.map], [[1, 'one']]);
  t.deepEqual([...back.bytes], [1, 2]);
  t.is(back.big, 10n);
});

test('the hybrid marshaler gives every value back exactly: JSON for plain data, V8 for the rest', (t) => {
  const hybrid = new HybridMarshaler();
  const plain = [0, 1.5, -2, 'héllo \ud800', true, null, [1, [2, 'x']], { a: 1, b: { c: [null, 'd'] } }, ''];
  const other = [
    undefined,
    -0,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    10n,
    new Date(0),
    new Map([[1, 2]]),
    new Set(['a']),
    Buffer.from([1, 2]),
    Object.assign(new Array(3), { 0: 1, 2: 3 }), // a hole, which JSON would fill with null
    { a: undefined },
    { when: new Date(5) },
    [new Uint8Array([9])],
    Object.create(null),
  ];
  for (const value of plain) {
    const payload = hybrid.encode(value);
    t.not(payload[0], 0xff, `${String(value)} travels as JSON`);
    t.deepEqual(hybrid.decode(payload), value);
  }
  for (const [i, value] of other.entries()) {
    const payload = hybrid.encode(value);
    t.is(payload[0], 0xff, `other[${i}] travels through V8`);
    t.deepEqual(hybrid.decode(payload), value);
  }
  t.throws(() => hybrid.decode(Buffer.from('{oops')), { instanceOf: BadPayloadError, message: /neither JSON nor V8/ });
});
