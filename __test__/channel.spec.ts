import { spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { once } from 'node:events';
import { closeSync, fstatSync, mkdtempSync, openSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import test from 'ava';
import {
  AddressInUseError,
  adopt,
  BadAddressError,
  BufferTooSmallError,
  type Channel,
  ChannelClosedError,
  ChannelFullError,
  ConnectionResetError,
  Dispatcher,
  NeedsResolvingError,
  NexusError,
  NOTHING,
  parseAddress,
  pipe,
  port,
  resolveAddress,
  tcp,
  V8Marshaler,
} from '../dist/index.js';
import { native } from '../dist/native.js';
import { resolvableName } from './helpers.js';

setFlagsFromString('--expose-gc'); // for the spec on reused large-frame buffers

const marshaler = new V8Marshaler();
/** Accepted connections, kept referenced so the collector does not close them mid-test. */
const servers: Channel[] = [];

/** Accepts one connection on `listener` and exchanges a greeting both ways with `client`. */
async function converse(listener: Channel, client: Channel): Promise<unknown[]> {
  const dispatcher = new Dispatcher();
  const got: unknown[] = [];
  dispatcher.whenReadReady(listener, (l) => {
    const server = l.accept();
    if (server === null) return true;
    servers.push(server);
    dispatcher.whenReadReady(server, (s) => {
      const item = marshaler.recv(s);
      if (item === NOTHING) return !s.atEnd;
      marshaler.send(`hello ${String(item)}`, s);
      return false;
    });
    return false;
  });
  dispatcher.whenWriteReady(client, (c) => {
    marshaler.send('client', c);
    return false;
  });
  dispatcher.whenReadReady(client, (c) => {
    const item = marshaler.recv(c);
    if (item === NOTHING) return true;
    got.push(item, c.peer);
    return false;
  });
  await dispatcher.watch();
  return got;
}

test('addresses parse in pyre notation and bad ones name the bad part', (t) => {
  t.is(parseAddress('127.0.0.1:80'), 'ip4:127.0.0.1:80');
  t.is(parseAddress('ip6:[::1]:8080'), 'ip6:[::1]:8080');
  t.is(parseAddress('unix:/tmp/x.sock'), 'unix:/tmp/x.sock');
  const bad = (address: string, part: RegExp) => {
    const error = t.throws(() => parseAddress(address), { instanceOf: BadAddressError });
    t.is(error?.code, 'ERR_NEXUS_BAD_ADDRESS');
    t.regex(error?.message ?? '', part);
  };
  bad('localhost', /no port/);
  bad('127.0.0.1:http', /the port "http" is not a number/);
  bad('ip6:127.0.0.1:1', /not of the family/);
  bad('unix:', /path is empty/);
  t.throws(() => port(42 as never), { instanceOf: TypeError, message: /an address must be a string/ });
});

test('localhost is the loopback address, looked up nowhere: an ip6: prefix asks for ::1', async (t) => {
  t.is(parseAddress('localhost:80'), 'ip4:127.0.0.1:80');
  t.is(parseAddress('ip6:localhost:80'), 'ip6:[::1]:80');
  t.is(await resolveAddress('localhost:0'), 'ip4:127.0.0.1:0');
  const listener = port('localhost:0');
  t.regex(listener.address as string, /^ip4:127\.0\.0\.1:\d+$/);
  const portNumber = (listener.address as string).split(':').at(-1);
  const [greeting] = await converse(listener, tcp(`localhost:${portNumber}`));
  t.is(greeting, 'hello client');
  listener.close();
});

test('a host name in port, tcp or parseAddress is a NeedsResolvingError at once: nothing is looked up', async (t) => {
  // A name this machine resolves, if it has one: a lookup would have made an address of it.
  const name = (await resolvableName()) ?? 'nowhere.invalid';
  for (const call of [() => port(`${name}:0`), () => tcp(`ip4:${name}:7000`), () => parseAddress(`[${name}]:1`)]) {
    const error = t.throws(call, { instanceOf: NeedsResolvingError });
    t.is(error?.code, 'ERR_NEXUS_NEEDS_RESOLVING');
    t.true(error?.message.includes(`the host "${name}"`), error?.message);
    t.regex(error?.message ?? '', /give an IP address, or resolve the name first \(resolveAddress\)/);
  }
  t.throws(() => tcp('db.example:http'), { instanceOf: BadAddressError, message: /the port "http"/ });
});

test('resolveAddress looks a name up without blocking, as the system does (/etc/hosts included)', async (t) => {
  const name = await resolvableName();
  if (name === null) {
    t.log('this machine resolves no name but localhost: only the forms that need no lookup are tried');
  } else {
    const { address } = await lookup(name, { family: 4 });
    t.is(await resolveAddress(`ip4:${name}:5432`), `ip4:${address}:5432`);
    t.is(await resolveAddress(`${name}:0`), parseAddress(`${(await lookup(name)).address}:0`));
  }
  t.is(await resolveAddress('ip6:[::1]:9'), 'ip6:[::1]:9', 'an IP address comes back as parseAddress gives it');
  t.is(await resolveAddress('unix:/tmp/x.sock'), 'unix:/tmp/x.sock');
  await t.throwsAsync(resolveAddress('db.example:99999'), { instanceOf: BadAddressError, message: /"99999"/ });
});

test('a name that does not resolve is a BadAddressError naming the host', async (t) => {
  const error = await t.throwsAsync(resolveAddress('ip4:nowhere.invalid:80'), { instanceOf: BadAddressError });
  t.is(error?.code, 'ERR_NEXUS_BAD_ADDRESS');
  t.regex(
    error?.message ?? '',
    /^bad address "ip4:nowhere\.invalid:80": the host "nowhere\.invalid" does not resolve for IPv4 \(\w+\)$/,
  );
});

test('a taken port is an AddressInUseError that names the address', (t) => {
  const first = port('ip4:127.0.0.1:0');
  const taken = first.address as string;
  t.regex(taken, /^ip4:127\.0\.0\.1:\d+$/);
  for (const address of [taken, taken.replace('ip4:127.0.0.1', 'localhost')]) {
    const error = t.throws(() => port(address), { instanceOf: AddressInUseError });
    t.is(error?.code, 'ERR_NEXUS_ADDRESS_IN_USE');
    t.is(error?.message, `address ${taken} is already in use`);
  }
  first.close();
});

test('with anyPortIfTaken, a taken port gives another port of the same host', (t) => {
  const first = port('ip4:127.0.0.1:0');
  const taken = first.address as string;
  const second = port(taken, { anyPortIfTaken: true });
  t.not(second.address, taken);
  t.regex(second.address as string, /^ip4:127\.0\.0\.1:\d+$/);
  t.is(second.kind, 'listener');
  const free = port('ip4:127.0.0.1:0', { anyPortIfTaken: true });
  t.regex(free.address as string, /^ip4:127\.0\.0\.1:\d+$/, 'a port that is free is used as asked');
  for (const channel of [first, second, free]) channel.close();
});

test('TCP over IPv4: connect without blocking, accept, and talk', async (t) => {
  const listener = port('ip4:127.0.0.1:0');
  const client = tcp(listener.address as string);
  const [greeting, peer] = await converse(listener, client);
  t.is(greeting, 'hello client');
  t.is(peer, listener.address);
});

test('TCP over IPv6', async (t) => {
  const listener = port('ip6:[::1]:0');
  t.regex(listener.address as string, /^ip6:\[::1\]:\d+$/);
  const [greeting] = await converse(listener, tcp(listener.address as string));
  t.is(greeting, 'hello client');
});

test('Unix-domain listeners and connections; a path in use is refused', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'nexus-')), 'service.sock');
  const listener = port(`unix:${path}`);
  t.is(listener.address, `unix:${path}`);
  t.throws(() => port(`unix:${path}`), { instanceOf: AddressInUseError, message: /already in use/ });
  t.throws(
    () => port(`unix:${path}`, { anyPortIfTaken: true }),
    { instanceOf: AddressInUseError },
    'no port to fall back to',
  );
  const [greeting] = await converse(listener, tcp(`unix:${path}`));
  t.is(greeting, 'hello client');
  listener.close();
  // Closing the listener removes its socket file, so the path can be used again.
  port(`unix:${path}`).close();
});

test('a refused connection reaches the exception handler and the next write as an error', async (t) => {
  const listener = port('ip4:127.0.0.1:0');
  const address = listener.address as string;
  listener.close();
  const client = tcp(address);
  const dispatcher = new Dispatcher();
  let exception = false;
  dispatcher.whenException(client, () => {
    exception = true;
    return false;
  });
  await dispatcher.watch();
  t.true(exception);
  const error = t.throws(() => client.write('x'), { instanceOf: NexusError });
  t.regex(error?.message ?? '', /refused/i);
});

test('a peer that resets the connection gives a ConnectionResetError on that channel', async (t) => {
  const listener = port('ip4:127.0.0.1:0');
  const [, portNumber] = (listener.address as string).split(/:(?=\d+$)/);
  const socket = netConnect(Number(portNumber), '127.0.0.1');
  await once(socket, 'connect');
  const dispatcher = new Dispatcher();
  let caught: unknown;
  dispatcher.whenReadReady(listener, (l) => {
    const server = l.accept();
    if (server === null) return true;
    servers.push(server);
    socket.resetAndDestroy();
    dispatcher.whenReadReady(server, (s) => {
      try {
        return s.read(Buffer.alloc(16)) !== 0;
      } catch (error) {
        caught = error;
        return false;
      }
    });
    return false;
  });
  await dispatcher.watch();
  t.true(caught instanceof ConnectionResetError, String(caught));
  t.is((caught as NexusError).code, 'ERR_NEXUS_PEER_RESET');
});

test('output the kernel does not take is buffered up to the bound, then delivered in order', async (t) => {
  const [a, b] = pipe();
  a.outputBound = 1 << 20;
  const data = Buffer.alloc(8 << 20);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
  const accepted = a.write(data);
  t.true(accepted < data.length, 'a full socket and buffer accept only part');
  t.true(a.pendingOutput > 0 && a.pendingOutput <= 1 << 20, `pending ${a.pendingOutput}`);
  t.throws(() => a.sendFrame(Buffer.from('more')), {
    instanceOf: ChannelFullError,
    message: /at its bound of 1048576/,
  });
  // Watched, the rest flushes as the peer reads; closing after it still delivers everything.
  const dispatcher = new Dispatcher();
  const received: Buffer[] = [];
  let offset = accepted;
  dispatcher.whenWriteReady(a, (ch) => {
    offset += ch.write(data.subarray(offset));
    if (offset < data.length) return true;
    ch.close();
    return false;
  });
  dispatcher.whenReadReady(b, (ch) => {
    const chunk = Buffer.alloc(1 << 16);
    const n = ch.read(chunk);
    if (n) received.push(chunk.subarray(0, n));
    return n !== 0;
  });
  await dispatcher.watch();
  t.true(Buffer.concat(received).equals(data));
});

test('received frames own their bytes: small and large, across slabs, while more arrive', async (t) => {
  // Sizes from empty to well past the 8 KiB slab, each payload filled with its own byte.
  const sizes = Array.from({ length: 600 }, (_, i) => (i % 50 === 49 ? 20_000 + i : (i * 37) % 1500));
  const expected = (i: number) => Buffer.alloc(sizes[i] as number, i % 251);
  const scribble = (i: number) => (i * 7 + 3) % 256;
  const [a, b] = pipe();
  a.outputBound = 64 * 1024 * 1024;
  sizes.forEach((_, i) => {
    a.sendFrame(expected(i));
  });
  const kept: Buffer[] = [];
  const damaged: number[] = [];
  const dispatcher = new Dispatcher();
  // What the socket did not take goes out as it drains.
  dispatcher.whenWriteReady(a, (ch) => ch.pendingOutput > 0);
  dispatcher.whenReadReady(b, (ch) => {
    for (let frame = ch.recvFrame(); frame !== null; frame = ch.recvFrame()) {
      if (!frame.equals(expected(kept.length))) damaged.push(kept.length);
      // The receiver scribbles on what it got, each frame its own byte: no other may see it.
      frame.fill(scribble(kept.length));
      kept.push(frame);
    }
    return kept.length < sizes.length;
  });
  await dispatcher.watch();
  t.deepEqual(damaged, [], 'frames that arrived with the wrong bytes');
  t.deepEqual(
    kept.map((frame) => frame.length),
    sizes,
  );
  const overwritten = kept.findIndex((frame, i) => frame.some((byte) => byte !== scribble(i)));
  t.is(overwritten, -1, `frame ${overwritten} changed after it was received`);
});

test('large frames arrive whole and keep their bytes after others are collected and reused', async (t) => {
  // Large frames are read into buffers of their own, which go back for reuse once JavaScript
  // lets go of them. A Buffer still held must never be one of those.
  const collect = runInNewContext('gc') as () => void;
  const [a, b] = pipe();
  a.outputBound = 64 << 20;
  const sizes = [200_000, 1 << 20, 3 << 20, 150_000];
  let sent = 0;
  const sendRound = () => {
    for (const size of sizes) a.sendFrame(Buffer.alloc(size, sent++ % 251));
  };
  let received = 0;
  const kept: Array<{ frame: Buffer; byte: number }> = [];
  const damaged: number[] = [];
  const dispatcher = new Dispatcher();
  const receiveRound = async () => {
    const goal = received + sizes.length;
    dispatcher.whenWriteReady(a, (ch) => ch.pendingOutput > 0);
    dispatcher.whenReadReady(b, (ch) => {
      for (let frame = ch.recvFrame(); frame !== null; frame = ch.recvFrame()) {
        const byte = received % 251;
        if (frame.length !== sizes[received % sizes.length] || frame.some((x) => x !== byte)) {
          damaged.push(received);
        }
        if (received % 2 === 1) kept.push({ frame, byte }); // the others become garbage
        received += 1;
      }
      return received < goal;
    });
    await dispatcher.watch();
  };
  let gaveBack = false;
  for (let round = 0; round < 4; round++) {
    sendRound();
    await receiveRound();
    collect();
    await new Promise(setImmediate); // Node runs the collected Buffers' finalizers on the loop
    gaveBack ||= native.trimLargeFrameSpares(); // some memory is kept for the next round
  }
  t.deepEqual(damaged, [], 'frames that arrived with the wrong bytes');
  const changed = kept.findIndex(({ frame, byte }) => frame.some((x) => x !== byte));
  t.is(changed, -1, `kept frame ${changed} changed after it was received`);
  t.is(kept.length, 8);
  // What this spec is about did happen: collected frames' memory came back to be used again.
  t.true(gaveBack, 'no collected frame gave its memory back');
});

test('frames received into a buffer of the caller: small, large, at an offset, and one that does not fit stays queued', async (t) => {
  const [a, b] = pipe();
  a.outputBound = 64 << 20;
  const large = Buffer.alloc(1 << 20);
  for (let i = 0; i < large.length; i++) large[i] = (i * 13) % 256;
  const frames = [Buffer.from('hello'), large, Buffer.alloc(0), large, Buffer.from('after')];
  for (const frame of frames) a.sendFrame(frame);
  const buffer = Buffer.alloc(2 << 20);
  const got: Buffer[] = [];
  let refusal: unknown = null;
  const dispatcher = new Dispatcher();
  dispatcher.whenWriteReady(a, (ch) => ch.pendingOutput > 0);
  dispatcher.whenReadReady(b, (ch) => {
    for (;;) {
      // The first large frame is offered too little room first: it must stay the next frame.
      const offset = got.length === 1 && refusal === null ? buffer.length - 100 : got.length;
      let length: number | null;
      try {
        length = ch.recvFrameInto(buffer, offset);
      } catch (error) {
        refusal = error;
        continue;
      }
      if (length === null) break;
      got.push(Buffer.from(buffer.subarray(offset, offset + length)));
      buffer.fill(0xee); // the caller's to overwrite: the next frame must not depend on it
    }
    return got.length < frames.length;
  });
  await dispatcher.watch();
  t.true(refusal instanceof BufferTooSmallError, String(refusal));
  t.is((refusal as BufferTooSmallError).code, 'ERR_NEXUS_BUFFER_TOO_SMALL');
  t.regex(String((refusal as Error).message), /payload is 1048576 bytes, more than the 100 bytes of room/);
  t.deepEqual(got, frames);
  t.throws(() => b.recvFrameInto(buffer, buffer.length + 1), { instanceOf: RangeError });
  t.throws(() => b.recvFrameInto('text' as unknown as Buffer), { instanceOf: TypeError });
});

test('recheck lets a handler read what arrived during its own turn without waiting for the poll', async (t) => {
  const [a, b] = pipe();
  const dispatcher = new Dispatcher();
  const seen: Array<string | null> = [];
  a.sendFrame(Buffer.from('first'));
  dispatcher.whenReadReady(b, (ch) => {
    seen.push(String(ch.recvFrame()));
    seen.push(ch.recvFrame() === null ? null : 'more'); // found empty: the poll must say so again
    a.sendFrame(Buffer.from('second')); // arrives while this handler runs
    seen.push(ch.recvFrame() === null ? null : 'early'); // not asked of the kernel yet
    ch.recheck();
    seen.push(String(ch.recvFrame()));
    return false;
  });
  await dispatcher.watch();
  t.deepEqual(seen, ['first', null, null, 'second']);
});

test('using a closed channel, or a listener as a stream, is a clear error', (t) => {
  const [a] = pipe();
  a.close();
  a.close();
  t.true(a.closed);
  t.is(a.fd, null);
  t.throws(() => a.write('x'), { instanceOf: ChannelClosedError, message: 'the channel is closed' });
  t.throws(() => marshaler.send(1, a), { instanceOf: ChannelClosedError });
  const listener = port();
  t.throws(() => listener.read(Buffer.alloc(1)), {
    code: 'ERR_NEXUS_WRONG_KIND',
    message: 'cannot read on a listener channel',
  });
  t.throws(() => new Dispatcher().whenWriteReady(listener, () => true), {
    code: 'ERR_NEXUS_WRONG_KIND',
    message: 'cannot watch for writing on a listener channel',
  });
  listener.close();
  const [c] = pipe();
  t.throws(() => c.read(Buffer.alloc(0)), { instanceOf: TypeError, message: /got an empty Buffer/ });
  t.throws(() => c.read('x' as never), {
    instanceOf: TypeError,
    message: /expected a non-empty Buffer to read into, got string/,
  });
  t.throws(() => (a.maxFrame = 0), { instanceOf: RangeError, message: /maxFrame must be a whole number/ });
});

test('the binding refuses a value that is no channel, or no Buffer, with an error and not a crash', (t) => {
  // The calls made per message have glue written by hand (src/glue.rs), the others napi-rs's:
  // both take the handle apart the same way (src/handle.rs).
  const [a, b] = pipe();
  for (const value of [undefined, null, 3, {}, Buffer.alloc(4), a]) {
    t.throws(() => native.channelSendFrame(value as never, Buffer.alloc(1)), { message: 'expected a channel handle' });
    t.throws(() => native.channelAtEnd(value as never), { message: 'expected a channel handle' });
    t.throws(() => native.channelFd(value as never), { message: 'expected a channel handle' });
  }
  t.throws(() => native.channelRecvFrames(b.handle, 'slab' as never, 0));
  t.throws(() => (native.channelRead as (...args: unknown[]) => unknown)(b.handle));
  t.is(native.channelRecvFrameInto(b.handle, Buffer.alloc(1), 0), -1, 'the channel still works');
  a.close();
  b.close();
});

test('a channel that JavaScript lets go of is closed: its peer reads an end of file', async (t) => {
  const collect = runInNewContext('gc') as () => void;
  // Made in a frame of its own, which holds the other end until it returns.
  const b = (() => pipe()[1])();
  collect();
  await new Promise(setImmediate); // Node runs the collected externals' finalizers on the loop
  const buffer = Buffer.alloc(1);
  t.is(b.read(buffer), 0);
  t.true(b.atEnd);
  b.close();
});

test('adopting a descriptor that is not a socket is refused', (t) => {
  const fd = openSync(join(tmpdir(), 'nexus-not-a-socket'), 'w');
  t.throws(() => adopt(fd), { code: 'ERR_NEXUS_NOT_A_SOCKET', message: `descriptor ${fd} is not a socket` });
  closeSync(fd);
});

test('channels are close-on-exec: a spawned process does not inherit them', (t) => {
  const [a, b] = pipe();
  const listener = port();
  const fds = [a.fd, b.fd, listener.fd] as number[];
  const inodes = fds.map((fd) => fstatSync(fd).ino);
  const probe = `const fs = require('fs'); console.log(JSON.stringify(${JSON.stringify(fds)}.map((fd) => { try { return fs.fstatSync(fd).ino } catch { return null } })))`;
  const child = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
  const seen = JSON.parse(child.stdout) as (number | null)[];
  seen.forEach((ino, i) => {
    t.not(ino, inodes[i], `fd ${fds[i]} leaked into the child`);
  });
});
