import { inspect } from 'node:util';
import { serialize } from 'node:v8';
import test from 'ava';
import fc from 'fast-check';
import {
  BadPayloadError,
  Crew,
  Dispatcher,
  HybridMarshaler,
  JsonMarshaler,
  type Marshaler,
  Member,
  NOTHING,
  Pool,
  pipe,
  type Recruiter,
  TaskStatus,
  type Team,
  V8Marshaler,
  WorkerLostError,
} from '../dist/index.js';
import { CANCEL, READY, REPORTS, RETURNED, STARTED, TASKS } from '../dist/nexus/crew/protocol.js';
import * as fixtures from './fixtures/tasks.js';
import { Chancy, Square } from './fixtures/tasks.js';
import { dismissInThisThread, executions, inThisThread, logFile } from './pool-helpers.js';

// Decoding under fuzzing: arbitrary bytes and mutated payloads into each marshaler; arbitrary
// frames to a crew member; members that lie to their team with well-framed garbage. Every bad
// input must end in a clear error naming the problem, never in another error, a crash or a hang.
// (The Rust side, the frame reader and the address parser, is fuzzed by cargo-fuzz: fuzz/README.md.)
//
// DECODING_FUZZ_SEED chooses the inputs and DECODING_FUZZ_SCALE multiplies how many: a failure
// prints its seed and the path of its smallest counterexample.
//   DECODING_FUZZ_SEED=7 DECODING_FUZZ_SCALE=10 npx ava __test__/decoding-fuzz.spec.ts

const SEED = Number(process.env.DECODING_FUZZ_SEED ?? 20260521);
const SCALE = Number(process.env.DECODING_FUZZ_SCALE ?? 1);
const settings = (runs: number) => ({
  seed: SEED,
  numRuns: Math.max(1, Math.round(runs * SCALE)),
  includeErrorInReport: true,
});

const hybrid = new HybridMarshaler();
const marshalers: [string, Marshaler][] = [
  ['V8Marshaler', new V8Marshaler()],
  ['JsonMarshaler', new JsonMarshaler()],
  ['HybridMarshaler', hybrid],
];

/** Values of every kind the marshalers carry, a few levels deep. */
const values = fc.anything({
  maxDepth: 3,
  withBigInt: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withSparseArray: true,
  withNullPrototype: true,
  withBoxedValues: true,
});

/** What `decode` did with a payload: a value, or a refusal, which must be a clear BadPayloadError. */
type Decoded = { value: unknown } | { refused: string };

function decoded(marshaler: Marshaler, payload: Buffer): Decoded {
  try {
    return { value: marshaler.decode(payload) };
  } catch (error) {
    if (!(error instanceof BadPayloadError)) {
      throw new Error(`decode threw ${String(error)}, not a BadPayloadError`, { cause: error });
    }
    if (error.code !== 'ERR_NEXUS_BAD_PAYLOAD' || !error.message.startsWith(`a ${payload.length}-byte frame is `)) {
      throw new Error(`a BadPayloadError that does not say what it got: ${error.code}: ${error.message}`);
    }
    return { refused: error.message };
  }
}

/** `item` encoded by `marshaler`, or null when it cannot carry it (JSON and a BigInt, say). */
function encoded(marshaler: Marshaler, item: unknown): Buffer | null {
  try {
    return marshaler.encode(item);
  } catch {
    return null;
  }
}

/** An edit of a payload: bits flipped, cut short, bytes put in or taken out. */
type Edit =
  | { flip: number; bits: number }
  | { cut: number }
  | { insert: number; bytes: Uint8Array }
  | { remove: number; length: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ flip: fc.nat(), bits: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ cut: fc.nat() }),
  fc.record({ insert: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ remove: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
);

function edited(payload: Buffer, edits: Edit[]): Buffer {
  let bytes = Buffer.from(payload);
  for (const change of edits) {
    const at = (position: number) => position % (bytes.length + 1);
    if ('flip' in change) {
      const i = change.flip % Math.max(bytes.length, 1);
      if (i < bytes.length) bytes[i] = (bytes[i] ?? 0) ^ change.bits;
    } else if ('cut' in change) {
      bytes = bytes.subarray(0, at(change.cut));
    } else if ('insert' in change) {
      const i = at(change.insert);
      bytes = Buffer.concat([bytes.subarray(0, i), change.bytes, bytes.subarray(i)]);
    } else {
      const i = at(change.remove);
      bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + change.length)]);
    }
  }
  return bytes;
}

/** The V8 serializer's header (version byte and version), so that bytes after it reach its parser. */
const v8Header = serialize(null).subarray(0, 2);

test('each marshaler decodes arbitrary bytes to a value, or refuses them with a BadPayloadError', (t) => {
  const payloads = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
    fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.concat([v8Header, bytes])),
    fc.string({ unit: 'binary', maxLength: 100 }).map((text) => Buffer.from(text)),
  );
  for (const [name, marshaler] of marshalers) {
    fc.assert(
      fc.property(payloads, (payload) => {
        decoded(marshaler, payload);
      }),
      settings(3000),
    );
    t.pass(name);
  }
});

test('each marshaler decodes a mutated payload to a value, or refuses it with a BadPayloadError', (t) => {
  for (const [name, marshaler] of marshalers) {
    fc.assert(
      fc.property(values, fc.array(edit, { minLength: 1, maxLength: 4 }), (item, edits) => {
        const payload = encoded(marshaler, item);
        fc.pre(payload !== null);
        decoded(marshaler, edited(payload, edits));
      }),
      settings(2000),
    );
    t.pass(name);
  }
});

test('received over a channel, every frame decodes as decode says, and a bad one leaves the next intact', (t) => {
  const frames = fc.array(
    fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
      fc.tuple(values, fc.array(edit, { maxLength: 2 })),
    ),
    { minLength: 1, maxLength: 8 },
  );
  for (const [name, marshaler] of marshalers) {
    fc.assert(
      fc.property(frames, (drawn) => {
        const payloads: Buffer[] = [];
        for (const frame of drawn) {
          const payload = Buffer.isBuffer(frame) ? frame : encoded(marshaler, frame[0]);
          if (payload !== null) payloads.push(Buffer.isBuffer(frame) ? payload : edited(payload, frame[1] as Edit[]));
        }
        const [ours, theirs] = pipe();
        try {
          for (const payload of payloads) ours.sendFrame(payload);
          ours.sendFrame(marshaler.encode('the end'));
          for (const payload of payloads) {
            const expected = decoded(marshaler, payload);
            let got: Decoded;
            try {
              got = { value: marshaler.recv(theirs) };
            } catch (error) {
              got = { refused: (error as Error).message };
              if (!(error instanceof BadPayloadError)) throw error;
            }
            // Compared as shown: isDeepStrictEqual tells two Invalid Dates apart (NaN !== NaN).
            const [shownGot, shownExpected] = [got, expected].map((outcome) => inspect(outcome, { depth: null }));
            if (shownGot !== shownExpected) throw new Error(`recv gave ${shownGot}, decode ${shownExpected}`);
          }
          if (marshaler.recv(theirs) !== 'the end') throw new Error('the frame after the others did not come intact');
        } finally {
          ours.close();
          theirs.close();
        }
      }),
      settings(300),
    );
    t.pass(name);
  }
});

// ---- a crew member, sent garbage by its team ----

/** Task modules a garbled TASKS may name: the fixtures (whose one safe class is Square), or none. */
const taskModules = fc.constantFrom(Square.module, new URL('./fixtures/no-such-tasks.ts', import.meta.url).href);
/** Class names: Square, or names no fixture exports (a class that hangs or kills would stop the spec). */
const classNames = fc.oneof(
  fc.constant('Square'),
  fc.string({ maxLength: 8 }).filter((name) => !Object.hasOwn(fixtures, name)),
);
/** Values a field may hold instead of the right one: anything but a function. */
const junk = fc.anything({ maxDepth: 2, withBigInt: true, withDate: true, withMap: true, withNullPrototype: true });

/** Frames a team may send, garbled: raw bytes, any value, TASKS and CANCEL of any shape, any kind. */
const teamFrames = fc.oneof(
  fc.uint8Array({ maxLength: 48 }).map((bytes) => Buffer.from(bytes)),
  junk.map((item) => hybrid.encode(item)),
  fc
    .tuple(
      fc.oneof(junk, fc.array(fc.oneof(fc.tuple(taskModules, classNames), junk), { maxLength: 3 })),
      fc.oneof(
        junk,
        fc
          .array(
            fc.tuple(
              fc.oneof(fc.nat(), junk),
              fc.oneof(fc.nat({ max: 3 }), junk),
              fc.oneof(fc.record({ n: fc.integer() }), junk),
            ),
            { maxLength: 3 },
          )
          .map((tasks) => tasks.flat()),
      ),
    )
    .map(([added, tasks]) => hybrid.encode([TASKS, added, tasks])),
  junk.map((ids) => hybrid.encode([CANCEL, ids])),
  fc.tuple(junk, junk).map(([kind, body]) => hybrid.encode([kind, body])),
);

test('a member sent garbled frames by its team ends with an error that names the problem, or carries on', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(teamFrames, { minLength: 1, maxLength: 4 }), async (frames) => {
      const [team, member] = pipe();
      const working = Crew.work(member, 1);
      for (const frame of frames) team.sendFrame(frame);
      team.close(); // the member's life ends with the channel, unless a frame ends it first
      const error = await working.then(
        () => null,
        (error: unknown) => error,
      );
      member.close();
      if (error === null) return;
      if (!(error instanceof BadPayloadError || /\(crew protocol\)/.test((error as Error).message))) {
        throw new Error(`the member failed with an error that does not name the protocol: ${String(error)}`, {
          cause: error,
        });
      }
    }),
    settings(200),
  );
  t.pass();
});

// ---- a team, lied to by its members ----

/**
 * How a lying member breaks the crew protocol once it holds a task: bytes that do not decode, a
 * header announcing more than a frame may hold, or a message of the wrong shape; `report` spoils
 * one field (0-4) of an otherwise honest report of the task it holds, or cuts the list short.
 */
type Breach = { bytes: Uint8Array } | { header: number } | { message: unknown } | { report: number; bad: unknown };

const notNumber = junk.filter((value) => typeof value !== 'number');
const breaches: fc.Arbitrary<Breach> = fc.oneof(
  fc.record({ bytes: fc.uint8Array({ maxLength: 32 }) }).filter(({ bytes }) => {
    try {
      hybrid.decode(Buffer.from(bytes));
      return false;
    } catch {
      return true;
    }
  }),
  fc.record({ header: fc.integer({ min: 64 * 2 ** 20 + 1, max: 2 ** 32 - 1 }) }),
  fc.record({ message: junk.filter((item) => !Array.isArray(item)) }),
  // Any kind but those a member at work sends (a second READY is a lie too).
  fc.record({
    message: fc.tuple(
      junk.filter((kind) => kind !== REPORTS && kind !== STARTED && kind !== RETURNED),
      junk,
    ),
  }),
  fc.record({ message: fc.tuple(fc.constant(STARTED), notNumber) }),
  fc.record({
    message: fc.tuple(
      fc.constant(REPORTS),
      junk.filter((body) => !Array.isArray(body)),
    ),
  }),
  fc.record({ message: fc.tuple(fc.constant(RETURNED), fc.oneof(notNumber, fc.array(notNumber, { minLength: 1 }))) }),
  fc.record({ message: fc.constant([RETURNED, []]) }), // answering a CANCEL never sent
  fc.record({ report: fc.constant(0), bad: notNumber }),
  fc.record({ report: fc.constant(1), bad: junk.filter((crew) => crew !== 0 && crew !== 1) }),
  fc.record({ report: fc.constant(2), bad: junk.filter((status) => ![0, 1, 2, 3].includes(status as number)) }),
  fc.record({
    report: fc.constant(3),
    bad: junk.filter(
      (record) => typeof (record as Error)?.message !== 'string' || typeof (record as Error)?.name !== 'string',
    ),
  }),
  fc.record({
    report: fc.constant(4),
    bad: junk.filter((ms) => typeof ms !== 'number' || !(ms >= 0 && ms < Number.POSITIVE_INFINITY)),
  }),
  fc.record({ report: fc.integer({ min: 6, max: 9 }), bad: fc.constant(null) }), // a list cut short
);

/** The frame a liar sends for `breach`, holding task `id`. */
function frameOf(breach: Breach, id: number): Buffer {
  if ('bytes' in breach) return Buffer.from(breach.bytes);
  if ('message' in breach) return hybrid.encode(breach.message);
  if ('report' in breach) {
    // Failed, so that the value must be an error record: an honest one unless that is the field spoilt.
    const record = {
      name: 'RecoverableError',
      message: 'not this time',
      stack: undefined,
      code: undefined,
      recoverable: true,
    };
    const report: unknown[] = [id, 0, TaskStatus.failed, record, 1.5];
    if (breach.report < 5) report[breach.report] = breach.bad;
    else report.length = breach.report - 5;
    return hybrid.encode([REPORTS, report]);
  }
  return Buffer.alloc(0); // a header: written by the liar itself
}

/**
 * Members that lie: each says READY, then answers its first TASKS with its breach and leaves (a
 * lie the team let pass would show as a member that "ended"). Once the breaches run out, honest
 * members in this thread.
 */
class Liars implements Recruiter {
  readonly #breaches: Breach[];
  readonly #side = new Dispatcher();
  #deployed = 0;

  constructor(breaches: Breach[]) {
    this.#breaches = breaches;
  }

  recruit(team: Team): Member[] {
    return Array.from({ length: team.vacancies() }, () => this.deploy());
  }

  deploy(): Member {
    const id = ++this.#deployed;
    const breach = this.#breaches[id - 1];
    if (breach === undefined) return inThisThread(id);
    const [ours, theirs] = pipe();
    let exited: { code: number } | null = null;
    hybrid.send([READY, id], theirs);
    this.#side.whenReadReady(theirs, (ch) => {
      for (let message = hybrid.recv(ch); message !== NOTHING; message = hybrid.recv(ch)) {
        const [kind, , tasks] = message as [number, unknown, unknown[]];
        if (kind !== TASKS) continue;
        if ('header' in breach) ch.write(Buffer.from(new Uint32Array([breach.header]).buffer));
        else ch.sendFrame(frameOf(breach, tasks[0] as number));
        ch.close();
        exited = { code: 0 };
        return false;
      }
      if (!ch.atEnd) return true;
      ch.close();
      exited = { code: 0 };
      return false;
    });
    if (!this.#side.watching) void this.#side.watch();
    const kill = () => {
      theirs.abort();
      exited = { code: 1 };
    };
    return new Member(id, ours, { kill, exited: () => exited });
  }

  dismiss = dismissInThisThread;

  close(): void {
    this.#side.close();
  }
}

/**
 * How the team may say what a liar did: each names the problem, none is a TypeError's. (Flag
 * `s`: a JSON parser's message may quote a line break it met.)
 */
const named =
  /^broke the crew protocol \((a \d+-byte frame is (neither JSON nor V8-serialized|not JSON|not a V8-serialized value): .+|the peer announced a frame of \d+ bytes, more than the maximum of \d+|a message that is not a list: .+|an unexpected message: .+|a READY from a member already ready|a malformed (STARTED|RETURNED|list of reports): .+|a RETURNED that answers no CANCEL|a malformed report: .+)\)$/s;

test('a member that lies is lost for it, with an error that names what it did', async (t) => {
  await fc.assert(
    fc.asyncProperty(breaches, async (breach) => {
      const recruiter = new Liars([breach]);
      const pool = new Pool({ size: 1, retries: 0, recruiter });
      try {
        const error = await pool.submit(new Square(3)).then(
          (value) => new Error(`the task completed with ${String(value)}`),
          (error: unknown) => error as Error,
        );
        const what = /^crew member 1 (.+) (while running|before it reported) task Square, 1 time: given up$/s.exec(
          error.message,
        )?.[1];
        if (!(error instanceof WorkerLostError) || what === undefined || !named.test(what)) {
          throw new Error(`the liar's task ended with ${error.name}: ${error.message}`);
        }
      } finally {
        await pool.close();
        recruiter.close();
      }
    }),
    settings(150),
  );
  t.pass();
});

test('a workplan carries on past members that lie: every task has one outcome, and runs no more than its attempts', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(breaches, { minLength: 1, maxLength: 3 }),
      fc.integer({ min: 1, max: 12 }),
      async (lies, count) => {
        const log = await logFile();
        const recruiter = new Liars(lies);
        const pool = new Pool({ size: 2, retries: lies.length, recruiter });
        let completions = 0;
        pool.on('completed', () => completions++);
        try {
          const tasks = Array.from({ length: count }, (_, i) => new Chancy(i, 'ok', log));
          const { outcomes } = await pool.assemble(tasks);
          const runs = await executions(log);
          if (outcomes.length !== count || completions !== count) {
            throw new Error(`${outcomes.length} outcomes and ${completions} completions for ${count} tasks`);
          }
          for (const [i, outcome] of outcomes.entries()) {
            const ran = runs.get(i) ?? 0;
            if (outcome.status !== TaskStatus.completed || outcome.result !== i) {
              throw new Error(`task ${i}: ${outcome.status}, ${String(outcome.error ?? outcome.result)}`);
            }
            if (ran < 1 || ran > outcome.attempts || outcome.attempts > 1 + lies.length) {
              throw new Error(`task ${i} ran ${ran} times in ${outcome.attempts} attempts`);
            }
          }
        } finally {
          await pool.close();
          recruiter.close();
        }
      },
    ),
    settings(40),
  );
  t.pass();
});

// ---- what the fuzzing found, kept as plain cases ----

test('a member sent a frame that is not a list says so (it threw "message is not iterable")', async (t) => {
  const cases: [unknown, RegExp][] = [
    [0, /the team sent a message that is not a list \(crew protocol\): 0/],
    [{ toString: 1 }, /the team sent a message that is not a list \(crew protocol\): an object/],
    [[TASKS, [], [1, 'length', {}]], /the team sent task 1 of class "length", not a class number \(crew protocol\)/],
    [[TASKS, [], [1, 0, 'n']], /the team sent task 1 with the state "n", not an object \(crew protocol\)/],
    [[TASKS, [], [null, 0, {}]], /the team sent a task with the id null \(crew protocol\)/],
    [[TASKS, [['a', 1]], []], /malformed list of task classes \(crew protocol\): a list of 2/],
    [[CANCEL, ['x']], /the team sent a malformed CANCEL \(crew protocol\): a list of 1, not a list of task ids/],
  ];
  for (const [message, expected] of cases) {
    const [team, member] = pipe();
    const working = Crew.work(member, 1);
    hybrid.send(message, team);
    await t.throwsAsync(working, { message: expected });
    team.close();
    member.close();
  }
});

test('a member that lies in a well-formed frame is lost for it (these lies were let pass)', async (t) => {
  const cases: [Breach, string][] = [
    [{ message: [STARTED, new Date(0)] }, 'a malformed STARTED: an object, not a number'],
    [{ message: [RETURNED, []] }, 'a RETURNED that answers no CANCEL'],
    [{ report: 1, bad: 7 }, 'a malformed report: task 1 with the crew status 7'],
    [{ report: 2, bad: 9 }, 'a malformed report: task 1 with the status 9'],
    [
      { report: 3, bad: { message: 'no name' } },
      'a malformed report: task 1 did not complete, and carries no error record',
    ],
    [{ report: 4, bad: 'soon' }, 'a malformed report: task 1 took "soon" ms'],
    [{ report: 4, bad: -1 }, 'a malformed report: task 1 took -1 ms'],
    [{ message: [{ toString: 1 }, 0] }, 'an unexpected message: an object'],
    [{ message: [READY, 1] }, 'a READY from a member already ready'],
  ];
  for (const [breach, what] of cases) {
    const recruiter = new Liars([breach]);
    const pool = new Pool({ size: 1, retries: 0, recruiter });
    const error = await t.throwsAsync(pool.submit(new Square(3)), { instanceOf: WorkerLostError });
    t.is(error?.message, `crew member 1 broke the crew protocol (${what}) while running task Square, 1 time: given up`);
    await pool.close();
    recruiter.close();
  }
});
