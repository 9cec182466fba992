import { join } from 'node:path';
import test from 'ava';
import { Dispatcher, Fork, type OutputSource, Pool, Threads, WorkerLostError } from '../dist/index.js';
import { ExitsAtImport, Loud, Say, Unfinished } from './fixtures/output-tasks.js';
import { Square } from './fixtures/tasks.js';
import { runNode } from './helpers.js';
import { memberDescriptors } from './pool-helpers.js';

// Pool: members' output: the team's own stdout and stderr by default, tagged lines, or lines for
// a function; the end of a member's stderr in the error its death causes; no descriptor left open.

/** Runs fixtures/output-team.ts (see there) in a team process of its own. */
function team(...args: string[]) {
  return runNode(['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'output-team.ts'), ...args]);
}

function lines(text: string): string[] {
  return text.split('\n');
}

/** What the team process printed as JSON after `prefix`, on a line of its own. */
function printed(stdout: string, prefix: string): unknown {
  const line = lines(stdout).find((l) => l.startsWith(prefix));
  if (line === undefined) throw new Error(`no line starts with ${prefix} in:\n${stdout}`);
  return JSON.parse(line.slice(prefix.length));
}

for (const [recruiting, Recruiter] of [
  ['fork', Fork],
  ['threads', Threads],
] as const) {
  const members = Recruiter.name;

  test(`${members} members write to the team's own stdout and stderr by default`, async (t) => {
    const { code, stdout, stderr } = await team('say', recruiting);
    t.is(code, 0, stderr);
    for (const n of [1, 2, 3]) {
      t.true(lines(stdout).includes(`marker out ${n}`), stdout);
      t.true(lines(stderr).includes(`marker err ${n}`), stderr);
    }
  });

  test(`with output 'tagged', each line of a ${members} member goes to the team's stream after its member's id`, async (t) => {
    const { code, stdout, stderr } = await team('say', recruiting, 'tagged');
    t.is(code, 0, stderr);
    const ranBy = printed(stdout, 'ran by: ') as number[];
    for (const [i, member] of ranBy.entries()) {
      t.true(lines(stdout).includes(`[member ${member}] marker out ${i + 1}`), stdout);
      t.true(lines(stderr).includes(`[member ${member}] marker err ${i + 1}`), stderr);
    }
    t.false(/^marker/m.test(stdout + stderr), 'no line goes out untagged');
  });

  test(`with output a function, it gets each whole line of a ${members} member and where it came from`, async (t) => {
    const heard: [string, OutputSource][] = [];
    const the = new Pool({ size: 1, recruiter: new Recruiter(), output: (line, source) => heard.push([line, source]) });
    const member = await the.submit(new Say(1));
    t.is(await the.submit(new Unfinished()), member);
    await the.close(); // the member ends: its last line, never ended, comes now
    const out = { member, stream: 'stdout' };
    t.deepEqual(
      heard.filter(([, source]) => source.stream === 'stdout'),
      [
        ['marker out 1', out],
        ['one line, written in two pieces', out],
        ['a last line, never ended', out],
      ],
    );
    t.deepEqual(
      heard.filter(([, source]) => source.stream === 'stderr'),
      [['marker err 1', { member, stream: 'stderr' }]],
    );
  });

  test(`a ${members} member dismissed right after a task that wrote much is heard to its last line`, async (t) => {
    let heard = 0;
    const the = new Pool({ size: 1, recruiter: new Recruiter(), output: () => heard++ });
    const written = the.submit(new Loud(20_000)); // about 2 MB: most waits in the member as it ends
    await the.close();
    t.is(await written, 20_000);
    t.is(heard, 20_000);
  });

  test(`a ${members} member whose task module writes to stderr and exits: the task's error ends with what it wrote, when output is captured`, async (t) => {
    const the = new Pool({ size: 1, retries: 0, recruiter: new Recruiter(), output: () => {} });
    const error = await t.throwsAsync(the.submit(new ExitsAtImport()), { instanceOf: WorkerLostError });
    t.regex(
      error?.message ?? '',
      /^crew member \d+ ended while running task ExitsAtImport, 1 time: given up; its standard error ended with:\n {2}exits-at-import: the licence file is missing, giving up$/,
    );
    await the.close();
  });
}

test('a Fork member whose task module writes to stderr and exits: inheriting, the text reaches the team’s stderr; tagged, the error ends with it too', async (t) => {
  const said = 'exits-at-import: the licence file is missing, giving up';
  const inherited = await team('exits-at-import', 'fork');
  t.is(inherited.code, 0, inherited.stderr);
  t.true(lines(inherited.stderr).includes(said), inherited.stderr);
  // Once ready, a member writes to the team's stderr itself: the team did not hear it.
  t.regex(
    printed(inherited.stdout, 'rejected: ') as string,
    /^crew member \d+ ended while running task ExitsAtImport, 1 time: given up$/,
  );

  const tagged = await team('exits-at-import', 'fork', 'tagged');
  t.is(tagged.code, 0, tagged.stderr);
  t.regex(tagged.stderr, new RegExp(`^\\[member \\d+\\] ${said}$`, 'm'));
  t.true((printed(tagged.stdout, 'rejected: ') as string).endsWith(`; its standard error ended with:\n  ${said}`));
});

test('Fork members that die before they are ready: the error ends with what the last wrote to stderr, and each one’s text still reaches the team’s stderr', async (t) => {
  const { code, stdout, stderr } = await team('noisy-start', 'fork');
  t.is(code, 0, stderr);
  t.regex(
    printed(stdout, 'rejected: ') as string,
    /^crew members fail to get ready \(3 in a row; the last ended\); its standard error ended with:\n {2}noisy-start: cannot reach the configuration server\n[\s\S]*Error: noisy-start gives up/,
  );
  const heard = lines(stderr).filter((line) => line === 'noisy-start: cannot reach the configuration server');
  t.is(heard.length, 3, stderr);
});

// Serial: before the concurrent specs, which open descriptors of their own (their team processes' pipes).
(process.platform === 'linux' ? test.serial : test.skip)(
  'Fork members leave no descriptor of their output open once the pool is closed',
  async (t) => {
    const open = memberDescriptors;
    // A dispatcher of the spec's: one the pool makes is let go only after close() resolves.
    const dispatcher = new Dispatcher();
    for (const output of ['inherit', () => {}] as const) {
      const before = open();
      const the = new Pool({ size: 2, recruiter: new Fork(), dispatcher, output });
      // Inheriting, members would write into the spec's own output: tasks that say nothing.
      const tasks = output === 'inherit' ? [new Square(1), new Square(2)] : [new Say(1), new Say(2)];
      t.is((await the.assemble(tasks)).completed, 2);
      t.true(open().length > before.length, 'the members run, with their channels open');
      await the.close();
      t.deepEqual(open(), before, `output ${typeof output === 'string' ? output : 'a function'}`);
    }
    dispatcher.close();
  },
);
