// What a dispatcher holds natively (descriptors, handles in Node's loop, handler references) goes
// when it closes, not when the collector gets to it. Serial: the tests count the process's
// descriptors, which a test running alongside would change.
import { readdirSync } from 'node:fs';
import test from 'ava';
import { Dispatcher, DispatcherClosedError, pipe } from '../dist/index.js';
import { runNode } from './helpers.js';

/** The descriptors this process has open. */
function descriptors(): number {
  return readdirSync(process.platform === 'linux' ? '/proc/self/fd' : '/dev/fd').length;
}

const closed = { instanceOf: DispatcherClosedError, code: 'ERR_NEXUS_DISPATCHER_CLOSED' };

/** Every call but close() throws on a closed dispatcher; its getters say it holds nothing. */
function assertClosed(t: import('ava').ExecutionContext, dispatcher: Dispatcher): void {
  const [a, b] = pipe();
  t.throws(() => dispatcher.whenReadReady(b, () => true), closed);
  t.throws(() => dispatcher.whenWriteReady(b, () => true), closed);
  t.throws(() => dispatcher.whenException(b, () => true), closed);
  t.throws(() => dispatcher.alarm(1, () => undefined), closed);
  t.throws(() => dispatcher.cancel(1), closed);
  t.throws(() => dispatcher.stop(), closed);
  t.notThrows(() => dispatcher.close(), 'closing again does nothing');
  t.false(dispatcher.watching);
  t.is(dispatcher.handlerCount, 0);
  a.close();
  b.close();
}

test.serial('1,000 dispatchers created and closed leave the descriptor count where it was', (t) => {
  new Dispatcher().close(); // whatever Node opens the first time an addon's handle joins its loop
  const before = descriptors();
  for (let i = 0; i < 1000; i++) {
    const dispatcher = new Dispatcher();
    dispatcher.alarm(3600, () => undefined);
    dispatcher.close();
  }
  // No collection forced, none awaited: close() released them. (Fewer is no leak: the collector
  // may close what earlier tests left it, and it runs when it likes.)
  const after = descriptors();
  t.true(after <= before, `${after} descriptors open, against ${before} before`);
});

test.serial("channels closed while watched, then kept, hold none of their dispatcher's descriptors", async (t) => {
  const before = descriptors();
  const kept = [];
  for (let i = 0; i < 100; i++) {
    const dispatcher = new Dispatcher();
    const [a, b] = pipe();
    dispatcher.whenReadReady(b, () => {
      b.close();
      return true;
    });
    a.write('x');
    await dispatcher.watch(); // the closed channel's handler is dropped, and nothing is left
    dispatcher.close();
    a.close();
    kept.push(a, b); // as a member's record keeps its channel: until collected
  }
  const after = descriptors();
  t.true(after <= before, `${after} descriptors open, against ${before} before`);
  t.is(kept.length, 200);
});

test.serial('a dispatcher closed by its own handler settles its watch and releases everything', async (t) => {
  const before = descriptors();
  const [a, b] = pipe();
  const dispatcher = new Dispatcher();
  let calls = 0;
  dispatcher.whenReadReady(b, () => {
    calls++;
    dispatcher.close();
    t.throws(() => dispatcher.alarm(1, () => undefined), closed, 'refused as soon as it is asked to close');
    return true;
  });
  dispatcher.whenReadReady(b, () => t.fail('a handler ran after close'));
  dispatcher.alarm(3600, () => undefined);
  a.write('x');
  await t.notThrowsAsync(dispatcher.watch());
  t.is(calls, 1);
  assertClosed(t, dispatcher);
  // The channel is let go of: another dispatcher may watch it.
  const other = new Dispatcher();
  const got: Buffer[] = [];
  other.whenReadReady(b, (channel) => {
    const buffer = Buffer.alloc(8);
    const length = channel.read(buffer);
    if (length) got.push(buffer.subarray(0, length));
    return false;
  });
  await other.watch();
  t.is(Buffer.concat(got).toString(), 'x');
  other.close();
  a.close();
  b.close();
  t.is(descriptors(), before);
});

test.serial('a dispatcher closed while watching, from outside the loop, settles its watch', async (t) => {
  const before = descriptors();
  const [a, b] = pipe();
  const dispatcher = new Dispatcher();
  dispatcher.whenReadReady(b, () => t.fail('nothing was written'));
  dispatcher.alarm(3600, () => t.fail('an hour has not passed'));
  const watching = dispatcher.watch();
  t.true(dispatcher.watching);
  setImmediate(() => dispatcher.close());
  await t.notThrowsAsync(watching);
  assertClosed(t, dispatcher);
  await t.throwsAsync(dispatcher.watch(), closed);
  a.close();
  b.close();
  t.is(descriptors(), before);
});

test.serial('a dispatcher closed twice, or closed and then collected, releases once', (t) => {
  const before = descriptors();
  const dispatcher = new Dispatcher();
  dispatcher.close();
  t.is(descriptors(), before);
  dispatcher.close();
  assertClosed(t, dispatcher);
  t.is(descriptors(), before);
});

test.serial('a closed dispatcher keeps no handler, and its handles keep no process alive', async (t) => {
  // In a process of its own, to force collections: the dispatcher object lives on (it is
  // referenced to the end), yet the handler and what it holds are collected.
  const { code, stdout, stderr } = await runNode([
    '--expose-gc',
    '--input-type=module',
    '-e',
    `
    import { Dispatcher, pipe } from './dist/index.js';
    const dispatcher = new Dispatcher();
    const [a, b] = pipe();
    globalThis.channels = [a, b];
    let collected = false;
    const registry = new FinalizationRegistry(() => { collected = true; });
    (() => {
      const held = { payload: new Array(1000).fill('x') };
      registry.register(held, 'held');
      dispatcher.whenReadReady(b, () => held.payload.length > 0);
      dispatcher.alarm(3600, () => held);
    })();
    const watching = dispatcher.watch();
    setTimeout(async () => {
      dispatcher.close();
      await watching;
      for (let i = 0; i < 20 && !collected; i++) {
        globalThis.gc();
        await new Promise((resolve) => setImmediate(resolve));
      }
      console.log(JSON.stringify({ collected, handlers: dispatcher.handlerCount }));
      // Nothing is left to keep the process: a libuv handle still open would hold it for an hour.
    }, 10);
  `,
  ]);
  t.is(code, 0, stderr);
  t.deepEqual(JSON.parse(stdout), { collected: true, handlers: 0 });
});

test.serial("a worker thread's dispatchers are released when the thread ends", async (t) => {
  const { Worker } = await import('node:worker_threads');
  const source = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}).then(({ Dispatcher, pipe }) => {
      const [a, b] = pipe();
      for (let i = 0; i < 10; i++) new Dispatcher().alarm(3600, () => undefined);
      const dispatcher = new Dispatcher();
      dispatcher.whenReadReady(b, () => true);
      dispatcher.watch();
      parentPort.postMessage('watching');
      globalThis.keep = [a, b];
    });
  `;
  const run = async () => {
    const worker = new Worker(source, { eval: true });
    await new Promise((resolve) => worker.once('message', resolve));
    await worker.terminate();
  };
  await run(); // whatever a first worker leaves in the process
  const before = descriptors();
  await run();
  t.is(descriptors(), before);
});

test.serial(
  'a loop closed under its children: a handler that closed it and threw is reported, and they close quietly',
  async (t) => {
    const before = descriptors();
    const errors: unknown[] = [];
    const root = new Dispatcher();
    const child = root.child({ onError: (error) => errors.push(error) });
    const [a, b] = pipe();
    child.alarm(3600, () => undefined);
    child.whenReadReady(b, () => {
      root.close();
      throw new Error('thrown after closing');
    });
    a.write('x');
    // The child drops its throwing handler itself: on a closed loop that is already done, no error.
    await t.notThrowsAsync(root.watch());
    t.deepEqual(
      errors.map((error) => (error as Error).message),
      ['thrown after closing'],
    );
    t.notThrows(() => child.close(), "the loop's close dropped the child's registrations already");
    t.throws(() => child.alarm(1, () => undefined), closed);
    assertClosed(t, root);
    a.close();
    b.close();
    t.is(descriptors(), before);
  },
);
