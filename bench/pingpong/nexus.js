// pyre-nexus ping-pong: two processes, 64-byte framed messages, JS handlers on both sides.
// Usage: node bench/pingpong/nexus.js <socketpair|tcp> <roundTrips> <warmup>
// The child end runs this file with `child <transport> [address]`.
// $BENCH_PAYLOAD sets the payload size in bytes (default 64); when it is not 64 the JSON line
// also says "payloadBytes". Every echo's length is checked.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { adopt, Dispatcher, pipe, port, tcp } from '../../dist/index.js';
import { envInt, fail } from '../peers/common.js';

const [role, transport, ...rest] = process.argv.slice(2);
// $BENCH_SPIN: microseconds each side's dispatcher polls before sleeping (DispatcherOptions.spin).
const spin = envInt('BENCH_SPIN', 0);
// $BENCH_INTO=1: both sides receive with recvFrameInto into one buffer of their own, reused.
const into = envInt('BENCH_INTO', 0) === 1;
const impl = spin > 0 ? 'pyre-nexus-spin' : into ? 'pyre-nexus-into' : 'pyre-nexus';
const size = envInt('BENCH_PAYLOAD', 64);
/** Receives every whole frame there is, handing each to `take`: its own Buffer, or a view of `room`. */
const room = into ? Buffer.alloc(Math.max(size, 1)) : null;
function receive(ch, take) {
  if (room === null) {
    for (let frame = ch.recvFrame(); frame !== null; frame = ch.recvFrame()) if (take(frame) === false) return false;
  } else {
    for (let n = ch.recvFrameInto(room); n !== null; n = ch.recvFrameInto(room)) {
      if (take(room.subarray(0, n)) === false) return false;
    }
  }
  return true;
}

if (role === 'child') {
  // Echo every frame back until the parent closes.
  const channel = transport === 'tcp' ? tcp(rest[0]) : adopt(3);
  const dispatcher = new Dispatcher({ spin });
  dispatcher.whenReadReady(channel, (ch) => {
    receive(ch, (frame) => ch.sendFrame(frame));
    if (ch.atEnd) ch.close();
    return !ch.atEnd;
  });
  await dispatcher.watch();
} else {
  const mode = role;
  const roundTrips = Number(transport ?? 100000);
  const warmup = Number(rest[0] ?? 5000);
  const self = fileURLToPath(import.meta.url);
  let channel;
  let child;
  if (mode === 'tcp') {
    const listener = port('ip4:127.0.0.1:0');
    child = spawn(process.execPath, [self, 'child', 'tcp', listener.address], { stdio: 'inherit' });
    const accepting = new Dispatcher({ spin });
    accepting.whenReadReady(listener, (l) => {
      channel = l.accept();
      return channel === null;
    });
    await accepting.watch();
    listener.close();
  } else {
    const [parent, childEnd] = pipe();
    child = spawn(process.execPath, [self, 'child', 'socketpair'], {
      stdio: ['inherit', 'inherit', 'inherit', childEnd.fd],
    });
    childEnd.close();
    channel = parent;
  }
  const exited = once(child, 'exit');
  if (size < 1) fail('pingpong/nexus.js', 'BENCH_PAYLOAD must be at least 1', 64);
  const payload = Buffer.alloc(size, 7);
  const dispatcher = new Dispatcher({ spin });
  let done = 0;
  let started = 0n;
  let seconds = 0;
  dispatcher.whenReadReady(channel, (ch) => {
    const more = receive(ch, (frame) => {
      if (frame.length !== size) throw new Error(`echo of ${frame.length} bytes, expected ${size}`);
      done += 1;
      if (done === warmup) started = process.hrtime.bigint();
      if (done === warmup + roundTrips) {
        seconds = Number(process.hrtime.bigint() - started) / 1e9;
        ch.close();
        return false;
      }
      ch.sendFrame(payload);
    });
    if (!more) return false;
    if (ch.atEnd) throw new Error('the echo process went away');
    return true;
  });
  channel.sendFrame(payload);
  if (warmup === 0) started = process.hrtime.bigint();
  await dispatcher.watch();
  await exited;
  const sized = size === 64 ? {} : { payloadBytes: size };
  console.log(JSON.stringify({ impl, transport: mode, roundTrips, ...sized, seconds }));
}
