import test from 'ava';
import { Crew, Dispatcher, HybridMarshaler, Pool, pipe, TaskStatus } from '../dist/index.js';
import { REPORTS, TASKS } from '../dist/nexus/crew/protocol.js';
import { Later, Square, Unsendable, Whoami } from './fixtures/tasks.js';
import { receive } from './helpers.js';

// The member side of the crew protocol (Crew.work): malformed frames, class numbering, reports that
// cannot travel, and a team that goes away.

test('a member sent a task of a class it was never told of says so', async (t) => {
  const [team, member] = pipe();
  const working = Crew.work(member, 1);
  new HybridMarshaler().send([TASKS, [], [1, 5, { n: 3 }]], team);
  await t.throwsAsync(working, { message: /task 1 of class 5, which it never named \(crew protocol\)/ });
  team.close();
});

test('a member sent a task list cut short says so', async (t) => {
  const [team, member] = pipe();
  const working = Crew.work(member, 1);
  new HybridMarshaler().send([TASKS, [[Square.module, 'Square']], [1, 0]], team);
  await t.throwsAsync(working, {
    message: /malformed task list \(crew protocol\): 2 fields, not a multiple of 3 \(the fields of one task\)/,
  });
  team.close();
});

test('a member sent a malformed list of task classes says so, not that its tasks were cut short', async (t) => {
  const [team, member] = pipe();
  const working = Crew.work(member, 1);
  new HybridMarshaler().send([TASKS, 'Square', [1, 0, { n: 3 }]], team);
  await t.throwsAsync(working, { message: /malformed list of task classes \(crew protocol\): string/ });
  team.close();
});

test('a member sent undefined says the team broke the protocol, rather than take it for nothing', async (t) => {
  const [team, member] = pipe();
  const working = Crew.work(member, 1);
  new HybridMarshaler().send(undefined, team);
  await t.throwsAsync(working, { message: /the team sent a message that is not a list \(crew protocol\): undefined/ });
  team.close();
});

test('a member is sent each task class once, and later frames name it by number', async (t) => {
  // One task at a time, classes alternating, then a frame that mixes known classes with a new one.
  const the = new Pool({ size: 1 });
  const one = [await the.submit(new Square(2)), await the.submit(new Later('a')), await the.submit(new Square(3))];
  t.deepEqual(one, [4, 'A', 9]);
  const mixed = (await the.assemble([new Later('b'), new Whoami(), new Square(4), new Whoami()])).outcomes;
  t.deepEqual(
    mixed.map((o) => o.status),
    [TaskStatus.completed, TaskStatus.completed, TaskStatus.completed, TaskStatus.completed],
  );
  const [later, pid, square, samePid] = mixed.map((o) => o.result);
  t.deepEqual([later, square], ['B', 16]);
  t.true(typeof pid === 'number' && pid === samePid, `${pid} and ${samePid}: the same member's pid`);
  await the.close();
});

test('reports that cannot go out together go one by one, the one that cannot travel as an abort', async (t) => {
  const [team, member] = pipe();
  const working = Crew.work(member, 1);
  const hybrid = new HybridMarshaler();
  const dispatcher = new Dispatcher();
  const frames: unknown[][] = [];
  const reportsUntil = async (id: number) => {
    while (!frames.some((reports) => reports.includes(id))) {
      const [kind, body] = (await receive(dispatcher, team, hybrid)) as [number, unknown[]];
      if (kind === REPORTS) frames.push(body);
    }
  };
  // Both classes imported first, so that the next three tasks run back to back and report together.
  const classes = [
    [Square.module, 'Square'],
    [Unsendable.module, 'Unsendable'],
  ];
  hybrid.send([TASKS, classes, [1, 0, { n: 1 }, 2, 1, {}]], team);
  await reportsUntil(2);
  frames.length = 0;
  hybrid.send([TASKS, [], [3, 0, { n: 3 }, 4, 1, {}, 5, 0, { n: 5 }]], team);
  await reportsUntil(5);
  t.deepEqual(
    frames.map((reports) => [reports.length, reports[0], reports[2]]),
    [
      [5, 3, TaskStatus.completed],
      [5, 4, TaskStatus.aborted],
      [5, 5, TaskStatus.completed],
    ],
  );
  t.deepEqual([frames[0]?.[3], frames[2]?.[3]], [9, 25]);
  t.regex((frames[1]?.[3] as { message?: string } | undefined)?.message ?? '', /cannot be sent back to the team/);
  team.close();
  await working;
  dispatcher.close();
});

test('a member whose team goes away without reading what it sent stops quietly', async (t) => {
  // The member then reads a connection reset, and its report cannot be sent: the team is gone,
  // which is how a member's life ends, not an error to crash on.
  const [team, member] = pipe();
  const working = Crew.work(member, 1);
  new HybridMarshaler().send([TASKS, [[Square.module, 'Square']], [1, 0, { n: 3 }]], team);
  team.abort(); // the member's READY, and its report to come, are never read
  await t.notThrowsAsync(working);
});

test('a member whose team goes away while it imports a task module stops quietly', async (t) => {
  // The member tells the team when a task starts after its module was imported; by then the
  // team may be gone, which must end the member quietly too, not as an unhandled rejection.
  let importing = () => {};
  let open = () => {};
  const gate = {
    importing: () => importing(),
    open: new Promise<void>((resolve) => {
      open = resolve;
    }),
  };
  const started = new Promise<void>((resolve) => {
    importing = resolve;
  });
  (globalThis as { nexusGate?: typeof gate }).nexusGate = gate;
  const [team, member] = pipe();
  const working = Crew.work(member, 1);
  const module = new URL('./fixtures/gated-tasks.js', import.meta.url).href;
  new HybridMarshaler().send([TASKS, [[module, 'Gated']], [1, 0, {}]], team);
  await started;
  team.abort(); // the member's READY is never read: its next send meets a reset
  open();
  await t.notThrowsAsync(working);
});
