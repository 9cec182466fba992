// The codes the native core throws (its registry, crates/core/src/error.rs) and the TypeScript
// classes they become: one for one, so a code added to the core without a class fails here.
import test from 'ava';
import { nativeErrorClasses, translate } from '../dist/errors.js';
import { NexusError } from '../dist/index.js';
import { native } from '../dist/native.js';

test('every code the native core throws becomes a class of its own', (t) => {
  const codes = native.errorCodes();
  t.true(codes.length > 0);
  const owners = new Map<unknown, string>();
  for (const code of codes) {
    if (!Object.hasOwn(nativeErrorClasses, code)) {
      t.fail(`${code} has no class in ts/errors.ts (nativeErrorClasses)`);
      continue;
    }
    const Class = nativeErrorClasses[code as keyof typeof nativeErrorClasses];
    const error = translate(Object.assign(new Error(`a native ${code}`), { code })) as Error & { code: string };
    t.true(error instanceof Class, code);
    t.is(error.code, code);
    t.is(error.message, `a native ${code}`);
    if (code.startsWith('ERR_NEXUS_')) {
      t.true(error instanceof NexusError, code);
      t.not(Class, NexusError, `${code} has no class but the base`);
      t.false(owners.has(Class), `${code} shares ${Class.name} with ${owners.get(Class)}`);
      owners.set(Class, code);
    } else {
      // A bad argument past the TypeScript checks: a TypeError with Node's code, as Node's own.
      t.is(Class, TypeError, code);
    }
  }
  t.deepEqual(Object.keys(nativeErrorClasses).sort(), [...codes].sort(), 'a class for a code the core never throws');
});

test('a native error arrives with its code and message, and translates to its class', (t) => {
  const notAChannel = t.throws(() => native.channelClosed({} as never), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: 'expected a channel handle',
  });
  t.true(translate(notAChannel) instanceof TypeError);
  const closed = new native.Dispatcher();
  closed.close();
  const error = t.throws(() => closed.cancel(1), { code: 'ERR_NEXUS_DISPATCHER_CLOSED' });
  t.true(translate(error) instanceof nativeErrorClasses.ERR_NEXUS_DISPATCHER_CLOSED);
  t.throws(() => native.adopt(-1), { code: 'ERR_NEXUS_NOT_A_SOCKET', message: 'descriptor -1 is not a socket' });
});
