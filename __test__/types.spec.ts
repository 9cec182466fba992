// The types a user compiles against: mistakes that should fail at compile time do.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import ts from 'typescript';

const library = new URL('../dist/index.js', import.meta.url).pathname;

/** Type-checks `source` as a strict ES module and returns its error messages. */
async function compile(source: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-types-'));
  const file = join(dir, 'user.ts');
  await writeFile(file, source.replaceAll('LIBRARY', library));
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: ['node'],
    typeRoots: [new URL('../node_modules/@types', import.meta.url).pathname],
  });
  const messages = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  await rm(dir, { recursive: true });
  return messages;
}

test('pool events are typed: a misspelt event name or a listener of the wrong shape fails to compile', async (t) => {
  const right = await compile(`
    import { Pool } from 'LIBRARY';
    const pool = new Pool({ size: 1 });
    pool.on('completed', (outcome, counts) => console.log(outcome.attempts, counts.completed));
    pool.once('recruited', (member) => console.log(member.id));
    export {};
  `);
  t.deepEqual(right, []);
  const misspelt = await compile(`
    import { Pool } from 'LIBRARY';
    new Pool().on('complted', () => {});
    export {};
  `);
  t.true(
    misspelt.some((m) => m.includes('"complted"')),
    misspelt.join('\n'),
  );
  const shape = await compile(`
    import { Pool } from 'LIBRARY';
    new Pool().on('recruited', (member: string) => console.log(member));
    export {};
  `);
  t.true(shape.length > 0, 'a listener that takes a member for a string');
});

test('a workplan is a promise of its report: then, catch and finally', async (t) => {
  const errors = await compile(`
    import { Pool, type WorkplanReport } from 'LIBRARY';
    const pool = new Pool();
    const plan = pool.assemble([]);
    const report: Promise<WorkplanReport> = plan.catch(() => { throw new Error('no'); }).finally(() => {});
    const promise: Promise<WorkplanReport> = plan;
    export { report, promise };
  `);
  t.deepEqual(errors, []);
});
