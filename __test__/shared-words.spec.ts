/**
 * Shared words: a team and a worker process map the same memory, so that the worker can say
 * which task it begins with one `Atomics.store`, and the team read it with one `Atomics.load`,
 * even after the worker is gone.
 */
import { closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { Channel, Dispatcher } from '../dist/index.js';
import { native } from '../dist/native.js';

const addon = fileURLToPath(new URL('../native.cjs', import.meta.url));

/** A Node worker's arguments: `script` runs with `native` (the addon) and `say(text)`, which writes on fd 3. */
function node(script: string): string[] {
  const prelude = `const native = require(${JSON.stringify(addon)});
    const say = (text) => require('node:fs').writeSync(3, text);`;
  return ['-e', `${prelude}\n${script}`];
}

/** Everything a worker says on its channel, up to its end of file. */
async function heard(handle: ReturnType<typeof native.spawn>['channel']): Promise<string> {
  const channel = new Channel(handle);
  const dispatcher = new Dispatcher();
  const chunks: Buffer[] = [];
  const buffer = Buffer.alloc(4096);
  dispatcher.whenReadReady(channel, (ch) => {
    for (;;) {
      const n = ch.read(buffer);
      if (n === null) return true;
      if (n === 0) return false;
      chunks.push(Buffer.from(buffer.subarray(0, n)));
    }
  });
  await dispatcher.watch();
  channel.close();
  return Buffer.concat(chunks).toString();
}

/** How worker `pid` ended; its channel's end of file came first, so this polls only briefly. */
async function exited(pid: number): Promise<{ code?: number; signal?: number }> {
  for (;;) {
    const status = native.reap(pid);
    if (status !== null) return status;
    await new Promise(setImmediate);
  }
}

function int32(words: Buffer, count: number): Int32Array {
  return new Int32Array(words.buffer, words.byteOffset, count);
}

test('what a worker stores in the words its team shared, the team loads after the worker is gone', async (t) => {
  const { words, fd } = native.sharedWords(2);
  t.is(words.length, 8);
  t.deepEqual([...int32(words, 2)], [0, 0], 'new words are zero');
  Atomics.store(int32(words, 2), 0, 7);
  const { pid, channel } = native.spawn(
    process.execPath,
    node(`
      const words = native.inheritedWords(2);
      const view = new Int32Array(words.buffer, words.byteOffset, 2);
      let open = true;
      try { require('node:fs').fstatSync(4) } catch { open = false }
      Atomics.store(view, 1, -123456);
      say(JSON.stringify({ team: Atomics.load(view, 0), open }));
    `),
    fd,
  );
  closeSync(fd); // the worker has its copy
  const said = await heard(channel);
  t.deepEqual(await exited(pid), { code: 0 }, said);
  t.deepEqual(JSON.parse(said), { team: 7, open: false }, 'the worker closed fd 4 once it had mapped it');
  t.is(Atomics.load(int32(words, 2), 1), -123456);
});

test('a worker gets fd 4 only when its team shares words with it', async (t) => {
  const script = 'if [ -e /dev/fd/4 ]; then echo open; else echo closed; fi >&3';
  const { words, fd } = native.sharedWords(1);
  const given = native.spawn('/bin/sh', ['-c', script], fd);
  closeSync(fd);
  const alone = native.spawn('/bin/sh', ['-c', script]);
  t.deepEqual(await Promise.all([heard(given.channel), heard(alone.channel)]), ['open\n', 'closed\n']);
  t.deepEqual(await exited(given.pid), { code: 0 });
  t.deepEqual(await exited(alone.pid), { code: 0 });
  t.is(words.length, 4);
});

test('a worker that was shared no words is told what its fd 4 is instead, and keeps it', async (t) => {
  // Node itself opens fd 4 in a worker given only fd 3 (an epoll or an eventfd).
  const { pid, channel } = native.spawn(
    process.execPath,
    node(`
      let outcome;
      try { native.inheritedWords(1); outcome = 'mapped' } catch (e) { outcome = e.code + ': ' + e.message }
      require('node:fs').fstatSync(4);
      say(outcome);
    `),
  );
  const said = await heard(channel);
  t.deepEqual(await exited(pid), { code: 0 }, said);
  t.regex(said, /^ERR_NEXUS_NOT_SHARED_MEMORY: descriptor 4 is not a shared memory region: it is /);
});

test('sharedWords refuses zero words', (t) => {
  t.throws(() => native.sharedWords(0), { code: 'ERR_NEXUS_IO', message: /a region of 0 bytes/ });
});
