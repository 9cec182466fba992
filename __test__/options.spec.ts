// Every public constructor and function that takes options checks them the same way.
import test from 'ava';
import { Crew, Dispatcher, Fork, Node, Peer, Pool, pipe, port, Server, Threads } from '../dist/index.js';
import { Square } from './fixtures/tasks.js';

interface Case {
  /** What a message begins with. */
  owner: string;
  /** Calls the constructor or function with `options`; a promise when it is async. */
  call: (options: object) => unknown;
  /** A slip of one of its option names, and the name it should suggest. */
  slip: [string, string];
  /** An option given as a string where it takes something else, and what it must be. */
  string: [string, string, string];
}

const cases: Case[] = [
  {
    owner: 'Node',
    call: (o) => new Node(o),
    slip: ['servises', 'services'],
    string: ['grace', '5', 'a non-negative number of seconds'],
  },
  { owner: 'Peer', call: (o) => new Peer(o), slip: ['nmae', 'name'], string: ['dispatcher', 'x', 'a Dispatcher'] },
  { owner: 'Pool', call: (o) => new Pool(o), slip: ['sise', 'size'], string: ['size', '2', 'a positive integer'] },
  {
    owner: 'Server',
    call: (o) => new Server(o),
    slip: ['maxConnection', 'maxConnections'],
    string: ['maxConnections', '10', 'a positive integer'],
  },
  {
    owner: 'Dispatcher',
    call: (o) => new Dispatcher(o),
    slip: ['spinn', 'spin'],
    string: ['spin', '300', 'a whole number of microseconds from 0 to 1000000'],
  },
  {
    owner: 'Fork',
    call: (o) => new Fork(o),
    slip: ['execArgs', 'execArgv'],
    string: ['execArgv', '--inspect', 'an array of strings'],
  },
  {
    owner: 'Threads',
    call: (o) => new Threads(o),
    slip: ['Grace', 'grace'],
    string: ['grace', '1', 'a non-negative number of seconds'],
  },
  {
    owner: 'submit',
    call: (o) => withPool((pool) => pool.submit(new Square(2), o)),
    slip: ['timout', 'timeout'],
    string: ['timeout', '1', 'a non-negative number of seconds'],
  },
  {
    owner: 'assemble',
    call: (o) => withPool((pool) => pool.assemble([new Square(2)], o)),
    slip: ['kep', 'keep'],
    string: ['keep', 'false', 'a boolean'],
  },
  {
    owner: 'close',
    call: (o) => new Pool({ size: 1 }).close(o),
    slip: ['forse', 'force'],
    string: ['force', 'true', 'a boolean'],
  },
  {
    owner: 'port',
    call: (o) => port('ip4:127.0.0.1:0', o).close(),
    slip: ['anyPortIfTake', 'anyPortIfTaken'],
    string: ['anyPortIfTaken', 'true', 'a boolean'],
  },
  {
    owner: 'Crew.work',
    call: (o) => {
      const [team, member] = pipe();
      return Crew.work(member, 1, o).finally(() => {
        team.close();
        member.close();
      });
    },
    slip: ['begn', 'begun'],
    string: ['spin', '0', 'a whole number of microseconds from 0 to 1000000'],
  },
];

/** Calls `use` with a fresh pool, closes the pool, and settles as `use`'s promise did. */
async function withPool(use: (pool: Pool) => PromiseLike<unknown>): Promise<unknown> {
  const pool = new Pool({ size: 1 });
  try {
    return await use(pool);
  } finally {
    await pool.close();
  }
}

/** The error `call(options)` throws, or rejects with. */
async function refusal(call: (options: object) => unknown, options: object): Promise<Error & { code?: string }> {
  try {
    await call(options);
  } catch (error) {
    return error as Error;
  }
  throw new Error(`${JSON.stringify(options)} was accepted`);
}

for (const { owner, call, slip, string } of cases) {
  test(`${owner}: an unknown option is refused by name, with the option it may be a slip for`, async (t) => {
    const [typo, meant] = slip;
    const error = await refusal(call, { [typo]: 1 });
    t.true(error instanceof TypeError);
    t.is(error.code, 'ERR_NEXUS_UNKNOWN_OPTION');
    t.true(
      error.message.startsWith(`${owner}: unknown option "${typo}" (did you mean "${meant}"?); it takes `),
      error.message,
    );
  });

  test(`${owner}: a string where it takes something else names the option, what it takes and the string`, async (t) => {
    const [key, value, expected] = string;
    const error = await refusal(call, { [key]: value });
    t.true(error instanceof TypeError);
    t.is(error.code, 'ERR_INVALID_ARG_TYPE');
    t.is(error.message, `${owner}: option "${key}" must be ${expected}, got string "${value}"`);
  });
}

test('a name far from every option gets no suggestion', (t) => {
  t.throws(() => new Pool({ colour: 'red' } as object), {
    message:
      'Pool: unknown option "colour"; it takes size, recruiter, retries, timeout, pipeline, pending, linger, ' +
      'startTimeout, dispatcher, output',
  });
});

test('a number out of range is a RangeError; the value is shown with its type', (t) => {
  const zero = t.throws(() => new Pool({ size: 0 }), { instanceOf: RangeError });
  t.is(zero?.message, 'Pool: option "size" must be a positive integer, got number 0');
  t.is((zero as { code?: string }).code, 'ERR_OUT_OF_RANGE');
  t.throws(() => new Pool({ startTimeout: Number.NaN }), {
    instanceOf: RangeError,
    message: 'Pool: option "startTimeout" must be a non-negative number of seconds, got number NaN',
  });
  t.throws(() => new Server({ highWater: 1.5 }), {
    instanceOf: RangeError,
    message: 'Server: option "highWater" must be an integer from 1 to 524288 bytes, got number 1.5',
  });
});

test('values of other types are shown by kind', (t) => {
  const got = (options: object) => (t.throws(() => new Peer(options))?.message ?? '').replace(/.*, got /, '');
  t.is(got({ dispatcher: new Map() }), 'an instance of Map');
  t.is(got({ dispatcher: {} }), 'an object');
  t.is(got({ dispatcher: [] }), 'an array');
  t.is(got({ dispatcher: null }), 'null');
  t.is(got({ dispatcher: true }), 'boolean true');
  t.is(got({ marshaler: function custom() {} }), 'function custom');
  t.is(got({ name: 7n }), 'bigint 7n');
  t.is(got({ dispatcher: 'x'.repeat(50) }), `string "${'x'.repeat(40)}…"`, 'a long string is cut short');
  t.throws(() => new Pool('4' as never), {
    instanceOf: TypeError,
    message: 'Pool: options must be an object, got string "4"',
  });
  t.throws(() => new Node([] as object), {
    instanceOf: TypeError,
    message: 'Node: options must be an object, got an array',
  });
});

test('an option given as undefined counts as absent', async (t) => {
  const pool = new Pool({ size: undefined } as object);
  t.true(pool.size >= 1);
  await pool.close();
});

test('a subclass is named in the messages, and a node names a service that is not one', (t) => {
  class Kennel extends Node {}
  t.throws(() => new Kennel({ grace: -1 }), {
    instanceOf: RangeError,
    message: 'Kennel: option "grace" must be a non-negative number of seconds, got number -1',
  });
  t.throws(() => new Node({ services: { x: {} as never } }), {
    instanceOf: TypeError,
    message: /^Node: option "services" names "x", which is not a service: it needs activate, /,
  });
});
