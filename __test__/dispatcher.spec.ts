import { spawn } from 'node:child_process';
import { once } from 'node:events';
import test from 'ava';
import { type Channel, Dispatcher, type DispatcherOptions, NOTHING, pipe, V8Marshaler } from '../dist/index.js';
import { runScript } from './helpers.js';

const marshaler = new V8Marshaler();

/** A read handler that collects items until it has `count`, then drops itself. */
function collect(into: unknown[], count: number) {
  return (channel: Channel) => {
    for (let item = marshaler.recv(channel); item !== NOTHING; item = marshaler.recv(channel)) into.push(item);
    return into.length < count;
  };
}

test('a handler returning false is not called again; watch ends when nothing is left', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  let calls = 0;
  dispatcher.whenReadReady(b, () => {
    calls += 1;
    return false;
  });
  a.write('xyz');
  await dispatcher.watch();
  t.is(calls, 1);
  t.is(dispatcher.handlerCount, 0);
});

test('a handler that leaves data unread is called again (level-triggered)', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const seen: string[] = [];
  dispatcher.whenReadReady(b, (ch) => {
    const one = Buffer.alloc(1);
    const n = ch.read(one);
    if (n === 1) seen.push(one.toString());
    return seen.length < 4;
  });
  a.write('abcd');
  await dispatcher.watch();
  t.deepEqual(seen, ['a', 'b', 'c', 'd']);
});

test('several handlers on one channel run in registration order, read before write', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const order: string[] = [];
  for (const name of ['r1', 'r2', 'r3']) {
    dispatcher.whenReadReady(b, () => {
      order.push(name);
      return false;
    });
  }
  dispatcher.whenWriteReady(b, () => {
    order.push('w1');
    return false;
  });
  a.write('x');
  await dispatcher.watch();
  t.deepEqual(order, ['r1', 'r2', 'r3', 'w1']);
});

test('promise jobs and nextTick callbacks run after each handler, before the next one', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const log: string[] = [];
  for (const name of ['first', 'second']) {
    dispatcher.whenReadReady(b, () => {
      log.push(name);
      process.nextTick(() => log.push(`${name}:tick`));
      Promise.resolve().then(() => log.push(`${name}:promise`));
      return false;
    });
  }
  a.write('x');
  await dispatcher.watch();
  t.deepEqual(log, ['first', 'first:tick', 'first:promise', 'second', 'second:tick', 'second:promise']);
});

test('a greedy handler does not starve timers or other channels', async (t) => {
  t.timeout(20_000);
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const [c, d] = pipe();
  a.write('never read');
  let greedy = 0;
  dispatcher.whenReadReady(b, () => {
    greedy += 1;
    return true; // leaves the channel ready forever: level-triggered, so it runs every turn
  });
  let other = false;
  dispatcher.whenReadReady(d, () => {
    other = true;
    return false;
  });
  c.write('y');
  const watching = dispatcher.watch();
  // If the greedy handler starved Node's loop, this timer would never fire and the test time out.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const turnsBefore = greedy;
  await new Promise((resolve) => setImmediate(resolve));
  dispatcher.stop();
  await watching;
  t.true(other, 'the other channel was served');
  t.true(greedy > turnsBefore, 'the greedy handler kept running between Node callbacks');
});

test('read and write handlers share one channel', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const got: unknown[] = [];
  dispatcher.whenWriteReady(b, (ch) => {
    marshaler.send('request', ch);
    return false;
  });
  dispatcher.whenReadReady(b, collect(got, 1));
  dispatcher.whenReadReady(a, (ch) => {
    const item = marshaler.recv(ch);
    if (item === NOTHING) return true;
    marshaler.send(`reply to ${String(item)}`, ch);
    return false;
  });
  await dispatcher.watch();
  t.deepEqual(got, ['reply to request']);
});

test('a spinning dispatcher serves a conversation whose replies come at once, in order', async (t) => {
  const dispatcher = new Dispatcher({ spin: 300 });
  const [a, b] = pipe();
  const echoed: number[] = [];
  dispatcher.whenReadReady(b, (ch) => {
    for (let item = marshaler.recv(ch); item !== NOTHING; item = marshaler.recv(ch)) marshaler.send(item, ch);
    return !ch.atEnd;
  });
  dispatcher.whenReadReady(a, (ch) => {
    for (let item = marshaler.recv(ch); item !== NOTHING; item = marshaler.recv(ch)) {
      echoed.push(item as number);
      if (echoed.length === 2000) {
        ch.close();
        return false;
      }
      marshaler.send(echoed.length, ch);
    }
    return true;
  });
  marshaler.send(0, a);
  await dispatcher.watch();
  t.deepEqual(
    echoed,
    Array.from({ length: 2000 }, (_, i) => i),
  );
});

test('a spinning dispatcher notices a channel closed by a handler, and its watch ends', async (t) => {
  const dispatcher = new Dispatcher({ spin: 300 });
  const [a, b] = pipe();
  const [, d] = pipe();
  dispatcher.whenReadReady(b, (ch) => {
    marshaler.recv(ch);
    d.close(); // the wake-up this posts must survive the spin that follows the turn
    return false;
  });
  dispatcher.whenReadReady(d, () => true);
  marshaler.send('close the other one', a);
  await dispatcher.watch();
  t.is(dispatcher.handlerCount, 0);
});

test('a spinning dispatcher fed slowly stops spinning and sleeps', async (t) => {
  // In a process of its own, as the idle test below. A spin of 20 ms after each of 8 frames sent
  // 60 ms apart would burn a third of the time; the first spin finds nothing, and the pauses that
  // follow (about 40 ms, measured asleep) are longer than the spin, so it stays off.
  const { code, stdout, stderr } = await runScript(`
    import { Dispatcher, JsonMarshaler, NOTHING, pipe } from './dist/index.js';
    const marshaler = new JsonMarshaler();
    const dispatcher = new Dispatcher({ spin: 20000 });
    const [a, b] = pipe();
    let got = 0;
    dispatcher.whenReadReady(b, (ch) => {
      while (marshaler.recv(ch) !== NOTHING) got++;
      return got < 8;
    });
    const watching = dispatcher.watch();
    const before = process.cpuUsage();
    const started = process.hrtime.bigint();
    let sent = 0;
    const timer = setInterval(() => {
      marshaler.send(++sent, a);
      if (sent === 8) clearInterval(timer);
    }, 60);
    await watching;
    const used = process.cpuUsage(before);
    const elapsed = Number(process.hrtime.bigint() - started) / 1000;
    console.log(JSON.stringify({ got, used: used.user + used.system, elapsed }));
  `);
  t.is(code, 0, stderr);
  const { got, used, elapsed } = JSON.parse(stdout) as { got: number; used: number; elapsed: number };
  t.is(got, 8);
  t.true(used < elapsed / 6, `used ${used} µs of CPU in ${elapsed} µs`);
});

test("a spinning dispatcher gives way to the thread's timers, immediates, its own alarms and sockets", async (t) => {
  // A spin of 1 s after each turn, if it held the thread, would hold each of these that long;
  // the spin gives way instead. Each stage starts the next one from its own callback.
  const { code, stdout, stderr } = await runScript(`
    import { spawn } from 'node:child_process';
    import { once } from 'node:events';
    import { Dispatcher, JsonMarshaler, pipe } from './dist/index.js';
    const marshaler = new JsonMarshaler();
    const echo = spawn(process.execPath, ['-e', 'process.stdin.pipe(process.stdout)'], { stdio: ['pipe', 'pipe', 'inherit'] });
    echo.stdin.write('up');
    await once(echo.stdout, 'data');
    const dispatcher = new Dispatcher({ spin: 1000000 });
    const [a, b] = pipe();
    const delays = {};
    dispatcher.whenReadReady(b, (ch) => {
      const started = performance.now();
      const stage = marshaler.recv(ch);
      const done = (next) => () => {
        delays[stage] = performance.now() - started;
        if (next === null) a.close();
        else marshaler.send(next, a);
      };
      if (stage === 'timer') setTimeout(done('immediate'), 0);
      else if (stage === 'immediate') setImmediate(done('alarm'));
      else if (stage === 'alarm') dispatcher.alarm(0.005, done('socket'));
      else if (stage === 'socket') {
        echo.stdout.once('data', done(null));
        echo.stdin.write('x');
      }
      return !ch.atEnd;
    });
    marshaler.send('timer', a);
    await dispatcher.watch();
    echo.stdin.end();
    console.log(JSON.stringify(delays));
  `);
  t.is(code, 0, stderr);
  const delays = JSON.parse(stdout) as Record<string, number>;
  t.deepEqual(Object.keys(delays), ['timer', 'immediate', 'alarm', 'socket']);
  for (const [stage, ms] of Object.entries(delays)) t.true(ms < 500, `the ${stage} came ${ms} ms after the turn`);
});

test('bad dispatcher options are refused, naming them', (t) => {
  t.throws(() => new Dispatcher({ spin: -1 }), { instanceOf: RangeError, message: /option "spin"/ });
  t.throws(() => new Dispatcher({ spin: 1.5 }), { instanceOf: RangeError, message: /option "spin"/ });
  const misspelt = { spinn: 300 } as unknown as DispatcherOptions;
  t.throws(() => new Dispatcher(misspelt), { instanceOf: TypeError, message: /unknown option "spinn"/ });
});

test('spurious readiness is a value: reading with nothing there returns null', (t) => {
  const [, b] = pipe();
  t.is(b.read(Buffer.alloc(8)), null);
  t.is(b.recvFrame(), null);
  t.is(marshaler.recv(b), NOTHING);
});

test('end of file reaches the read handler after the last item', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  marshaler.send('last words', a);
  a.close();
  const seen: unknown[] = [];
  dispatcher.whenReadReady(b, (ch) => {
    for (let item = marshaler.recv(ch); item !== NOTHING; item = marshaler.recv(ch)) seen.push(item);
    if (ch.atEnd) seen.push('EOF');
    return !ch.atEnd;
  });
  await dispatcher.watch();
  t.deepEqual(seen, ['last words', 'EOF']);
});

test('a handler that throws rejects watch with its error, is dropped, and the others stay', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  dispatcher.whenReadReady(b, () => {
    throw new Error('handler failed');
  });
  dispatcher.alarm(60, () => undefined);
  a.write('x');
  await t.throwsAsync(dispatcher.watch(), { message: 'handler failed' });
  t.is(dispatcher.handlerCount, 1, 'the alarm is still registered');
  t.false(dispatcher.watching);
  // The dispatcher is consistent: it can watch again.
  const got: unknown[] = [];
  dispatcher.whenReadReady(b, (ch) => {
    got.push(ch.read(Buffer.alloc(8)));
    dispatcher.stop();
    return false;
  });
  await dispatcher.watch();
  t.deepEqual(got, [0 + 1]);
});

test('with onError, a throwing handler is reported and the loop carries on', async (t) => {
  const errors: string[] = [];
  const dispatcher = new Dispatcher({ onError: (e, ch) => errors.push(`${(e as Error).message} on ${ch?.kind}`) });
  const [a, b] = pipe();
  dispatcher.whenReadReady(b, () => {
    throw new Error('bad handler');
  });
  let fine = 0;
  dispatcher.whenReadReady(b, (ch) => {
    fine += 1;
    ch.read(Buffer.alloc(8));
    return false;
  });
  a.write('x');
  await dispatcher.watch();
  t.deepEqual(errors, ['bad handler on stream']);
  t.is(fine, 1);
});

test('a handler may close its own channel: the channel’s other handlers are dropped', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  dispatcher.whenReadReady(b, (ch) => {
    ch.close();
    return true;
  });
  dispatcher.whenReadReady(b, () => t.fail('a handler of a closed channel ran'));
  dispatcher.whenException(b, () => t.fail('a handler of a closed channel ran'));
  a.write('x');
  await dispatcher.watch();
  t.is(dispatcher.handlerCount, 0);
});

test('a handler may register others and call stop()', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const log: string[] = [];
  dispatcher.whenReadReady(b, () => {
    log.push('outer');
    dispatcher.alarm(0, () => {
      log.push('alarm');
      dispatcher.stop();
    });
    return true;
  });
  a.write('x');
  await dispatcher.watch();
  t.deepEqual(log.slice(-1), ['alarm']);
  t.true(log.includes('outer'));
  t.is(dispatcher.handlerCount, 1, 'the outer handler stays registered after stop');
});

test('stop() from outside the loop settles watch; watching twice is refused', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  dispatcher.whenReadReady(b, () => !b.atEnd && a.fd !== null);
  const watching = dispatcher.watch();
  await t.throwsAsync(dispatcher.watch(), { code: 'ERR_NEXUS_ALREADY_WATCHING' });
  setImmediate(() => dispatcher.stop());
  await watching;
  t.false(dispatcher.watching);
});

test('alarms due together fire in deadline order, with the current time', async (t) => {
  const dispatcher = new Dispatcher();
  const log: string[] = [];
  dispatcher.alarm(0.02, () => {
    log.push('later');
  });
  dispatcher.alarm(0.01, (timestamp) => {
    t.true(Math.abs(timestamp - Date.now() / 1000) < 5, 'the timestamp is the current time in seconds');
    log.push('sooner');
  });
  // Block this thread past both deadlines, so both are due in the first turn whatever the load.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30);
  await dispatcher.watch();
  t.deepEqual(log, ['sooner', 'later']);
});

test('an alarm re-arms with the interval it returns and is dropped when it returns nothing', async (t) => {
  const dispatcher = new Dispatcher();
  let ticks = 0;
  dispatcher.alarm(0.001, () => {
    ticks += 1;
    return ticks < 3 ? 0.001 : undefined;
  });
  await dispatcher.watch();
  t.is(ticks, 3);
  t.is(dispatcher.handlerCount, 0);
});

test('cancel drops a handler or alarm', async (t) => {
  const dispatcher = new Dispatcher();
  const id = dispatcher.alarm(0.001, () => t.fail('a cancelled alarm ran'));
  t.true(dispatcher.cancel(id));
  t.false(dispatcher.cancel(id));
  await dispatcher.watch();
  t.is(dispatcher.handlerCount, 0);
});

test('a reused descriptor number does not inherit the old channel’s handlers', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const oldFd = b.fd;
  dispatcher.whenReadReady(b, () => t.fail('the closed channel’s handler ran'));
  a.close();
  b.close();
  const [c, d] = pipe();
  t.true([c.fd, d.fd].includes(oldFd), 'the kernel reused the descriptor number');
  const got: unknown[] = [];
  dispatcher.whenReadReady(d, collect(got, 1));
  marshaler.send('fresh', c);
  await dispatcher.watch();
  t.deepEqual(got, ['fresh']);
});

test('Node timers, promises and child processes keep working while the dispatcher watches', async (t) => {
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  dispatcher.whenReadReady(b, () => !b.atEnd && a.fd !== null);
  const watching = dispatcher.watch();
  await new Promise((resolve) => setTimeout(resolve, 1));
  const child = spawn(process.execPath, ['-e', 'process.exit(7)']);
  const [code] = await once(child, 'exit');
  t.is(code, 7, 'the other child process delivered its exit event');
  dispatcher.stop();
  await watching;
});

test('bad arguments get clear errors', (t) => {
  const dispatcher = new Dispatcher();
  const [a] = pipe();
  t.throws(() => dispatcher.whenReadReady({} as Channel, () => true), {
    message: 'whenReadReady: expected a Channel, got Object',
  });
  t.throws(() => dispatcher.whenWriteReady(a, 'nope' as never), {
    message: /the handler must be a function, got string/,
  });
  t.throws(() => dispatcher.alarm(-1, () => undefined), {
    message: /non-negative number of seconds under 1e9, got -1/,
  });
  t.throws(() => dispatcher.alarm(1e9, () => undefined), { message: /under 1e9, got 1000000000/ });
  t.throws(() => new Dispatcher({ onError: 5 as never }), {
    message: 'Dispatcher: option "onError" must be a function, got number 5',
  });
  const other = new Dispatcher();
  dispatcher.whenReadReady(a, () => true);
  t.throws(() => other.whenReadReady(a, () => true), { code: 'ERR_NEXUS_ALREADY_WATCHED' });
  a.close();
  t.throws(() => other.whenReadReady(a, () => true), { code: 'ERR_NEXUS_CHANNEL_CLOSED' });
  dispatcher.close();
  t.throws(() => dispatcher.alarm(1, () => undefined), { code: 'ERR_NEXUS_DISPATCHER_CLOSED' });
});

test('a process whose dispatcher has nothing left exits by itself', async (t) => {
  const { code, stdout } = await runScript(`
    import { Dispatcher, pipe } from './dist/index.js';
    const dispatcher = new Dispatcher();
    const [a, b] = pipe();
    dispatcher.whenReadReady(b, () => false);
    a.write('x');
    await dispatcher.watch();
    // Channels and a dispatcher that still exist but are not watched keep nothing alive.
    dispatcher.whenReadReady(b, () => true);
    console.log('done');
  `);
  t.is(code, 0);
  t.is(stdout.trim(), 'done');
});

test('an idle watching dispatcher uses no CPU', async (t) => {
  // In a process of its own: CPU time is counted per process, and other specs run concurrently.
  const { code, stdout, stderr } = await runScript(`
    import { Dispatcher, pipe } from './dist/index.js';
    const dispatcher = new Dispatcher();
    // Both ends stay referenced: a collected end would close, and the end of file it causes
    // would (rightly) keep a handler that ignores it busy.
    const [a, b] = pipe();
    globalThis.peer = a;
    dispatcher.whenReadReady(b, () => true);
    const watching = dispatcher.watch();
    const before = process.cpuUsage();
    const started = process.hrtime.bigint();
    setTimeout(async () => {
      const used = process.cpuUsage(before);
      const elapsed = Number(process.hrtime.bigint() - started) / 1000;
      dispatcher.stop();
      await watching;
      console.log(JSON.stringify({ used: used.user + used.system, elapsed }));
    }, 300);
  `);
  t.is(code, 0, stderr);
  const { used, elapsed } = JSON.parse(stdout) as { used: number; elapsed: number };
  // A busy loop would burn the whole window; waiting in epoll burns next to nothing.
  t.true(used < elapsed / 4, `used ${used} µs of CPU in ${elapsed} µs`);
});

test('the addon runs in two worker threads at once and survives their teardown while watching', async (t) => {
  const { Worker } = await import('node:worker_threads');
  const source = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}).then(({ Dispatcher, NOTHING, pipe, V8Marshaler }) => {
      const dispatcher = new Dispatcher();
      const marshaler = new V8Marshaler();
      const [a, b] = pipe();
      let n = 0;
      dispatcher.whenReadReady(b, (ch) => {
        for (let item = marshaler.recv(ch); item !== NOTHING; item = marshaler.recv(ch)) {
          n += 1;
          if (n === 1000) parentPort.postMessage('busy');
          marshaler.send(item, a);
        }
        return true;
      });
      dispatcher.alarm(3600, () => undefined);
      marshaler.send(1, a);
      dispatcher.watch();
    });
  `;
  const workers = [0, 1].map(() => new Worker(source, { eval: true }));
  await Promise.all(workers.map((w) => once(w, 'message')));
  const codes = await Promise.all(workers.map((w) => w.terminate()));
  t.deepEqual(codes, [1, 1]);
  // The main thread's own dispatcher still works after the workers' environments were torn down.
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  const got: unknown[] = [];
  dispatcher.whenReadReady(b, collect(got, 1));
  marshaler.send('after', a);
  await dispatcher.watch();
  t.deepEqual(got, ['after']);
});

test('close() from inside a handler settles watch and releases the dispatcher', async (t) => {
  t.timeout(10_000);
  const dispatcher = new Dispatcher();
  const [a, b] = pipe();
  dispatcher.whenReadReady(b, () => {
    dispatcher.close();
    return true;
  });
  dispatcher.whenReadReady(b, () => t.fail('a handler ran after close'));
  a.write('x');
  await dispatcher.watch();
  t.false(dispatcher.watching);
  t.is(dispatcher.handlerCount, 0);
  t.throws(() => dispatcher.whenReadReady(b, () => true), { code: 'ERR_NEXUS_DISPATCHER_CLOSED' });
});
