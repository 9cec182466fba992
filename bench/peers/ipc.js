// Ping-pong between two Node processes over the child_process.fork IPC channel
// (process.send / 'message'; under the hood a libuv pipe over a Unix socketpair).
//
//   node bench/peers/ipc.js <json|advanced> [roundTrips] [warmup]
//
// json:     fork(..., { serialization: 'json' }), the message is a 64-character string.
// advanced: fork(..., { serialization: 'advanced' }), the message is a 64-byte Buffer.
// The child echoes every message back; the parent sends the next one when the echo arrives.
// The child first sends 'ready' so no message can be sent before it listens.
//
// Defaults: roundTrips = $BENCH_ROUNDTRIPS or 100000, warmup = $BENCH_WARMUP or 5% of roundTrips,
// hard limit $BENCH_TIMEOUT_MS (default 120000) after which the child is killed and we exit 3.
// $BENCH_PAYLOAD sets the message size (default 64: characters for json, bytes for advanced).
//
// Prints one line on stdout:
//   {"impl":"child_process-ipc-json","transport":"ipc","roundTrips":100000,"seconds":0.123456789}
// with "payloadBytes":<n> before "seconds" when the payload is not 64.

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { envInt, fail as failWith } from './common.js';

const PAYLOAD = envInt('BENCH_PAYLOAD', 64);
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 120_000);

function fail(message, code = 2) {
  failWith('ipc.js', message, code);
}

function runChild() {
  setTimeout(() => fail('child timeout', 3), TIMEOUT_MS + 5_000).unref();
  process.on('message', (msg) => process.send(msg));
  process.on('disconnect', () => process.exit(0));
  process.send('ready');
}

function runParent(serialization, roundTrips, warmup) {
  const self = fileURLToPath(import.meta.url);
  const child = fork(self, ['--child'], {
    serialization,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const timer = setTimeout(() => {
    child.kill('SIGKILL');
    fail(`timeout after ${TIMEOUT_MS} ms`, 3);
  }, TIMEOUT_MS);
  timer.unref();
  process.on('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  const message = serialization === 'advanced' ? Buffer.alloc(PAYLOAD, 0x78) : 'x'.repeat(PAYLOAD);
  const valid =
    serialization === 'advanced'
      ? (m) => m instanceof Uint8Array && m.length === PAYLOAD
      : (m) => typeof m === 'string' && m.length === PAYLOAD;

  const total = warmup + roundTrips;
  let i = 0;
  let t0 = 0n;
  let started = false;
  const sendPing = () => {
    if (i === warmup) t0 = process.hrtime.bigint();
    child.send(message);
  };

  child.on('message', (msg) => {
    if (!started) {
      if (msg !== 'ready') fail(`unexpected first message ${JSON.stringify(msg)}`);
      started = true;
      sendPing();
      return;
    }
    if (!valid(msg)) fail(`bad echo at round trip ${i}`);
    i += 1;
    if (i < total) {
      sendPing();
      return;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const impl = `child_process-ipc-${serialization}`;
    const sized = PAYLOAD === 64 ? {} : { payloadBytes: PAYLOAD };
    process.stdout.write(`${JSON.stringify({ impl, transport: 'ipc', roundTrips, ...sized, seconds })}\n`);
    child.disconnect(); // the child exits on 'disconnect'
  });
  child.on('error', (err) => fail(`child: ${err.message}`));
  child.on('exit', (code, signal) => {
    clearTimeout(timer);
    if (i < total) fail(`child exited early (${signal ?? code})`);
    if (code !== 0) fail(`child exited with ${signal ?? code}`);
  });
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  runChild();
} else {
  const serialization = args[0];
  if (serialization !== 'json' && serialization !== 'advanced') {
    process.stderr.write('usage: node bench/peers/ipc.js <json|advanced> [roundTrips] [warmup]\n');
    process.exit(64);
  }
  const roundTrips = args[1] !== undefined ? Number(args[1]) : envInt('BENCH_ROUNDTRIPS', 100_000);
  const warmup = args[2] !== undefined ? Number(args[2]) : envInt('BENCH_WARMUP', Math.floor(roundTrips / 20));
  if (!Number.isInteger(roundTrips) || roundTrips <= 0 || !Number.isInteger(warmup) || warmup < 0) {
    fail('roundTrips must be a positive integer and warmup a non-negative integer', 64);
  }
  runParent(serialization, roundTrips, warmup);
}
