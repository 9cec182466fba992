// Ping-pong between two Node processes over Node's `net` module.
//
//   node bench/peers/net.js <tcp|unix> [roundTrips] [warmup]
//
// The parent listens (127.0.0.1 on an ephemeral port, or a Unix-domain socket in the temp dir:
// the closest Node gets to a socketpair), spawns this same file as a child that connects, and
// then does `warmup` uncounted plus `roundTrips` counted round trips of a 64-byte message framed
// as a 4-byte little-endian length + payload. Frames are parsed from the byte stream (partial
// frames and several frames per chunk are handled). The child echoes every frame back.
//
// Defaults: roundTrips = $BENCH_ROUNDTRIPS or 100000, warmup = $BENCH_WARMUP or 5% of roundTrips,
// hard limit $BENCH_TIMEOUT_MS (default 120000) after which the child is killed and we exit 3.
// $BENCH_PAYLOAD sets the payload size in bytes (default 64, at least 4 for the sequence number).
//
// Prints one line on stdout:
//   {"impl":"node-net","transport":"tcp","roundTrips":100000,"seconds":0.123456789}
// with "payloadBytes":<n> before "seconds" when the payload is not 64 bytes.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envInt, fail as failWith } from './common.js';

const PAYLOAD = envInt('BENCH_PAYLOAD', 64);
const HEADER = 4;
const MAX_PAYLOAD = Math.max(1024, PAYLOAD);
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 120_000);

function fail(message, code = 2) {
  failWith('net.js', message, code);
}

/** Returns a function to feed stream chunks to; calls onFrame(frame) with each whole frame
 *  (header included, a view into the received data) as soon as it is complete. The chunks of an
 *  incomplete frame are kept apart and joined once, when the last of them arrives, so a large
 *  frame is copied once rather than once per chunk. */
function frameParser(onFrame) {
  let pending = [];
  let pendingBytes = 0;
  let needed = HEADER; // bytes the pending chunks must add up to before anything can be parsed
  return (chunk) => {
    let buf = chunk;
    if (pendingBytes > 0) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes < needed) return;
      buf = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
    }
    let off = 0;
    needed = HEADER;
    while (buf.length - off >= HEADER) {
      const len = buf.readUInt32LE(off);
      if (len > MAX_PAYLOAD) fail(`frame too large (${len})`);
      const end = off + HEADER + len;
      if (end > buf.length) {
        needed = HEADER + len;
        break;
      }
      onFrame(buf.subarray(off, end));
      off = end;
    }
    if (off < buf.length) {
      pending = [buf.subarray(off)];
      pendingBytes = buf.length - off;
    }
  };
}

function runChild(transport, address) {
  // Bounded on its own too; unref'd so it never keeps the process alive by itself.
  setTimeout(() => fail('child timeout', 3), TIMEOUT_MS + 5_000).unref();
  const sock =
    transport === 'tcp'
      ? net.connect({ host: '127.0.0.1', port: Number(address), noDelay: true })
      : net.connect({ path: address });
  // The frame is a view into the chunk we received; Node does not reuse that memory, so it can be
  // written back as is.
  sock.on(
    'data',
    frameParser((frame) => sock.write(frame)),
  );
  sock.on('end', () => sock.end());
  sock.on('close', () => process.exit(0));
  sock.on('error', (err) => fail(`child socket: ${err.message}`));
}

function runParent(transport, roundTrips, warmup) {
  const self = fileURLToPath(import.meta.url);
  const server = net.createServer({ noDelay: true });
  let sockPath = null;
  let child = null;

  const timer = setTimeout(() => {
    if (child !== null) child.kill('SIGKILL');
    cleanupPath();
    fail(`timeout after ${TIMEOUT_MS} ms`, 3);
  }, TIMEOUT_MS);
  timer.unref();

  function cleanupPath() {
    if (sockPath === null) return;
    try {
      unlinkSync(sockPath);
    } catch {}
    sockPath = null;
  }

  server.on('error', (err) => fail(`server: ${err.message}`));
  server.once('connection', (sock) => {
    server.close(); // one peer only; also stops listening (and removes the Unix socket file)
    sock.setNoDelay(true);
    sock.on('error', (err) => fail(`parent socket: ${err.message}`));

    const total = warmup + roundTrips;
    let i = 0;
    let t0 = 0n;
    const sendPing = () => {
      if (i === warmup) t0 = process.hrtime.bigint();
      // A fresh frame each time (a large one too: Node may still hold the last one it was given).
      const frame = Buffer.allocUnsafe(HEADER + PAYLOAD);
      frame.writeUInt32LE(PAYLOAD, 0);
      frame.fill(0x78, HEADER); // 'x'
      frame.writeUInt32LE(i, HEADER); // sequence number, checked on the way back
      sock.write(frame);
    };
    sock.on(
      'data',
      frameParser((frame) => {
        if (frame.length !== HEADER + PAYLOAD || frame.readUInt32LE(HEADER) !== i) fail(`bad echo at round trip ${i}`);
        i += 1;
        if (i < total) {
          sendPing();
          return;
        }
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const sized = PAYLOAD === 64 ? {} : { payloadBytes: PAYLOAD };
        process.stdout.write(`${JSON.stringify({ impl: 'node-net', transport, roundTrips, ...sized, seconds })}\n`);
        sock.end(); // the child ends its side and exits
      }),
    );
    sock.on('close', () => {
      if (i < total) fail('peer closed early');
    });
    sendPing();
  });

  const onListening = () => {
    const address = transport === 'tcp' ? String(server.address().port) : sockPath;
    child = spawn(process.execPath, [self, '--child', transport, address], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.on('error', (err) => fail(`spawn: ${err.message}`));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      cleanupPath();
      if (code !== 0) fail(`child exited with ${signal ?? code}`);
    });
  };

  if (transport === 'tcp') {
    server.listen({ host: '127.0.0.1', port: 0 }, onListening);
  } else {
    sockPath = join(tmpdir(), `pyre-nexus-bench-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
    server.listen({ path: sockPath }, onListening);
  }
  process.on('exit', () => {
    if (child !== null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    cleanupPath();
  });
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  runChild(args[1], args[2]);
} else {
  const transport = args[0];
  if (transport !== 'tcp' && transport !== 'unix') {
    process.stderr.write('usage: node bench/peers/net.js <tcp|unix> [roundTrips] [warmup]\n');
    process.exit(64);
  }
  const roundTrips = args[1] !== undefined ? Number(args[1]) : envInt('BENCH_ROUNDTRIPS', 100_000);
  const warmup = args[2] !== undefined ? Number(args[2]) : envInt('BENCH_WARMUP', Math.floor(roundTrips / 20));
  if (!Number.isInteger(roundTrips) || roundTrips <= 0 || !Number.isInteger(warmup) || warmup < 0) {
    fail('roundTrips must be a positive integer and warmup a non-negative integer', 64);
  }
  if (PAYLOAD < 4) fail('BENCH_PAYLOAD must be at least 4 (the sequence number)', 64);
  runParent(transport, roundTrips, warmup);
}
