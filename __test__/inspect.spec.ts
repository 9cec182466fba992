// What console.log shows of tasks and of what a pool hands back: names and state, not machinery.
import { inspect } from 'node:util';
import test from 'ava';
import { Pool, type Task } from '../dist/index.js';
import { Chancy, Hang, Square } from './fixtures/tasks.js';

/** On one line, as console.log shows short values. */
const shown = (value: unknown) => inspect(value, { breakLength: Number.POSITIVE_INFINITY });

test('a task shows its class and its fields, not the function object it is', (t) => {
  t.is(shown(new Square(3)), 'Square { n: 3 }');
  t.is(shown(new Hang()), 'Hang {}');
  t.is(shown({ task: new Square(3) }), '{ task: Square { n: 3 } }');
  t.is(inspect({ task: new Square(3) }, { depth: 0 }), '{ task: [Square] }', 'past the depth, the class alone');
  t.is(shown(new Chancy(7, 'ok', '')), "Chancy { id: 7, fate: 'ok', log: '' }");
});

test('an outcome shows its task, its status by name and its result or error; a workplan how far it has come', async (t) => {
  const pool = new Pool({ size: 1 });
  const plan = pool.assemble<Task<number>>([new Square(2), new Chancy(0, 'error', '')]);
  t.regex(shown(plan), /^Workplan \{ state: 'running', read: \d, completed: 0, aborted: 0 \}$/);
  const report = await plan;
  t.is(shown(plan), "Workplan { state: 'done', read: 2, completed: 1, aborted: 1 }");
  t.is(
    shown(report.outcomes[0]),
    'Outcome { index: 0, task: Square { n: 2 }, status: TaskStatus.completed, result: 4, attempts: 1 }',
  );
  // An error shows its stack, over several lines.
  t.regex(
    shown(report.outcomes[1]),
    /^Outcome \{\s+index: 1,\s+task: Chancy \{ id: 0, fate: 'error', log: '' \},\s+status: TaskStatus\.aborted,\s+error: Error \[RangeError\]: task 0 cannot work\n/,
  );
  t.false('result' in (report.outcomes[1] as object), 'an aborted outcome has no result');

  const broken = pool.assemble(
    (function* () {
      yield new Square(1);
      throw new Error('the plan broke');
    })(),
  );
  await t.throwsAsync(broken, { code: 'ERR_NEXUS_WORKPLAN' });
  t.is(shown(broken), "Workplan { state: 'failed', read: 1, completed: 1, aborted: 0 }");
  await pool.close();
});
