#!/usr/bin/env node
// Tries the packages as users get them: packs pyre-nexus and this platform's binary package into
// tarballs exactly as they would be published (scripts/pack.mjs), installs them into an empty
// project outside the repository with `npm install <tarballs>`, and runs there, on Node 20, 22
// and 24: the README's examples as .ts, .mjs and .cjs, its Pool with a TypeScript task file, a
// Node serving a Server, `nexus run` and `nexus serve` (of a TypeScript service in a CommonJS
// project too). Run after `npm run build`; exits 1 naming every check that failed.
//   NEXUS_TRY_NODES="20 24" limits the Node versions (the default is 20 22 24).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import { nodeBinary } from './node-binary.mjs';
import { packPackages } from './pack.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const majors = (process.env.NEXUS_TRY_NODES ?? '20 22 24').split(/\s+/).filter(Boolean);
const failures = [];

function say(text) {
  process.stdout.write(`${text}\n`);
}

/** Runs `command` to its end; throws with its output when it fails. */
function must(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status}:\n${result.stdout}${result.stderr}`);
  }
  return result.stdout;
}

/**
 * How to run `args` under `node`: node's arguments, or `npx …`, or an executable's path (a bin
 * shim); with node's folder first on PATH, which npx and the shims' `env node` go by.
 */
function invocation(node, args) {
  const env = { ...process.env, PATH: `${dirname(node)}:${process.env.PATH}` };
  delete env.NODE_OPTIONS;
  // (npm's npx and npm, run by the node first on PATH: Node's registry packages bring no npx)
  if (args[0] === 'npx' || args[0] === 'npm') return { command: args[0], rest: args.slice(1), env };
  if (args[0].startsWith('/')) return { command: args[0], rest: args.slice(1), env };
  return { command: node, rest: args, env };
}

/** Runs `args` (see invocation) in `cwd` to its end. */
function run(node, args, cwd, { timeout = 60_000 } = {}) {
  const { command, rest, env } = invocation(node, args);
  return spawnSync(command, rest, { cwd, env, encoding: 'utf8', timeout });
}

/** Starts `args` (see invocation) in `cwd`, for a server: its process and everything it printed so far. */
function start(node, args, cwd) {
  const { command, rest, env } = invocation(node, args);
  const child = spawn(command, rest, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { text: '' };
  child.stdout.on('data', (d) => (output.text += d));
  child.stderr.on('data', (d) => (output.text += d));
  return { child, output, closed: once(child, 'close') };
}

/** Sends `text` to 127.0.0.1:`port` and resolves with the first `length` bytes of the answer. */
function ask(port, text, length) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(text));
    socket.on('data', (d) => {
      answer += d;
      if (answer.length >= length) {
        socket.end();
        resolve(answer.slice(0, length));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed after ${JSON.stringify(answer)}`)));
  });
}

/** Asks until the server listens: it says nothing when it does (bounded: 15 s). */
async function askWhenListening(port, text, length, server) {
  for (let attempt = 0; ; attempt++) {
    if (server.child.exitCode !== null) throw new Error(`the server exited with ${server.child.exitCode}`);
    try {
      return await ask(port, text, length);
    } catch (error) {
      if (attempt === 150 || error.code !== 'ECONNREFUSED') throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function check(name, body) {
  try {
    await body();
    say(`  ok   ${name}`);
  } catch (error) {
    say(`  FAIL ${name}\n${String(error.stack ?? error).replace(/^/gm, '       ')}`);
    failures.push(name);
  }
}

function expect(result, pattern, what) {
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.error) throw new Error(`${what}: ${result.error.message}\n${output}`);
  if (result.status !== 0) throw new Error(`${what} exited with ${result.status}:\n${output}`);
  if (!pattern.test(output)) throw new Error(`${what} did not print ${pattern}:\n${output}`);
}

/** The README's TypeScript blocks that start with `// <file>.ts`, by file name. */
function readmeExamples() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const examples = new Map();
  for (const [, code] of readme.matchAll(/```ts\n([\s\S]*?)```/g)) {
    const name = /^\/\/ ([\w-]+\.ts)\b/.exec(code)?.[1];
    if (name !== undefined) examples.set(name, code);
  }
  for (const name of ['first-look.ts', 'shout.ts', 'squares.ts', 'main.ts']) {
    if (!examples.has(name)) throw new Error(`README.md has no \`// ${name}\` example`);
  }
  return examples;
}

/** `code` as an ES module and as a CommonJS script (its top level in an async function). */
function javascript(code) {
  const esm = transformSync(code, { loader: 'ts', format: 'esm' }).code;
  const imports = [];
  const body = esm.replace(/^import \{([^}]*)\} from ("[^"]+");\n/gm, (_line, names, from) => {
    imports.push(`const {${names.replace(/ as /g, ': ')}} = require(${from});`);
    return '';
  });
  const cjs = `${imports.join('\n')}\n(async () => {\n${body}})().catch((error) => {\n  console.error(error);\n  process.exitCode = 1;\n});\n`;
  return { esm, cjs };
}

/** An empty ES-module project with the tarballs installed, the README's examples, and a CommonJS sub-project. */
function project(tarballs) {
  const dir = mkdtempSync(join(tmpdir(), 'pyre-nexus-user-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  say(`installing ${tarballs.map((t) => t.split('/').at(-1)).join(', ')} into ${dir}`);
  must('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], { cwd: dir });
  for (const [name, code] of readmeExamples()) {
    writeFileSync(join(dir, name), code);
    if (name === 'first-look.ts' || name === 'shout.ts') {
      const { esm, cjs } = javascript(code);
      writeFileSync(join(dir, name.replace(/\.ts$/, '.mjs')), esm);
      writeFileSync(join(dir, name.replace(/\.ts$/, '.cjs')), cjs);
    }
  }
  // A task file in erasable TypeScript only (no parameter properties), for Node's own type stripping.
  writeFileSync(
    join(dir, 'erasable-squares.ts'),
    `import { Task } from 'pyre-nexus/task';
export class Square extends Task<number> {
  static module: string = import.meta.url;
  n: number;
  constructor(n: number) { super(); this.n = n; }
  execute(): number { return this.n * this.n; }
}
`,
  );
  writeFileSync(
    join(dir, 'erasable-main.ts'),
    `import { Pool } from 'pyre-nexus';
import { Square } from './erasable-squares.ts';
const pool = new Pool({ size: 2 });
console.log(await pool.submit(new Square(7)));
await pool.close();
`,
  );
  // A CommonJS project (no "type") serving a TypeScript service with the nexus command, and
  // running a Pool with a TypeScript task file (no top-level await there).
  const cjs = join(dir, 'commonjs');
  mkdirSync(cjs);
  writeFileSync(join(cjs, 'package.json'), JSON.stringify({ name: 'commonjs-user', private: true }));
  writeFileSync(join(cjs, 'echo.ts'), readFileSync(join(root, 'examples/services/echo.ts')));
  writeFileSync(join(cjs, 'squares.ts'), readmeExamples().get('squares.ts'));
  writeFileSync(join(cjs, 'primes.ts'), readFileSync(join(root, 'examples/tasks/primes.ts')));
  writeFileSync(
    join(cjs, 'main.ts'),
    `import { Pool } from 'pyre-nexus';
import { Square } from './squares';
async function main() {
  const pool = new Pool({ size: 2 });
  console.log(await pool.submit(new Square(7)));
  await pool.close();
}
void main();
`,
  );
  writeFileSync(
    join(cjs, 'node.json'),
    JSON.stringify({
      services: { echo: { module: './echo.ts', export: 'EchoServer', address: 'ip4:127.0.0.1:7071' } },
    }),
  );
  return dir;
}

/** Serves with `args`, asks `port` once, stops the server with SIGTERM: it must answer and exit 0. */
async function serves(node, args, cwd, port, text, answer) {
  const server = start(node, args, cwd);
  try {
    const got = await askWhenListening(port, text, answer.length, server);
    if (got !== answer) throw new Error(`answered ${JSON.stringify(got)}, not ${JSON.stringify(answer)}`);
  } finally {
    server.child.kill('SIGTERM');
  }
  const [code, signal] = await server.closed;
  if (code !== 0) throw new Error(`exited with ${code ?? signal} after SIGTERM:\n${server.output.text}`);
}

async function tryOn(node, dir) {
  const major = Number(must(node, ['-p', 'process.versions.node.split(".")[0]']).trim());
  say(`\nNode ${must(node, ['--version']).trim()} (${node})`);
  const firstLook = /child got \{ hello: 'world' \}[\s\S]*half a second later/;
  for (const file of ['first-look.mjs', 'first-look.cjs']) {
    await check(`README first look as ${file}`, () => expect(run(node, [file], dir), firstLook, file));
  }
  await check('README first look as .ts (--import tsx)', () =>
    expect(run(node, ['--import', 'tsx', 'first-look.ts'], dir), firstLook, 'first-look.ts'),
  );
  if (major >= 22) {
    await check("README first look as .ts (Node's own type stripping)", () =>
      expect(run(node, ['first-look.ts'], dir), firstLook, 'first-look.ts'),
    );
  }
  const squares = /^49$[\s\S]*\[ 1, 4, 9, 16 \]/m;
  await check('README Pool with a TypeScript task file (node --import tsx main.ts)', () =>
    expect(run(node, ['--import', 'tsx', 'main.ts'], dir), squares, 'main.ts'),
  );
  await check('README Pool with a TypeScript task file (npx tsx main.ts)', () =>
    expect(run(node, ['npx', 'tsx', 'main.ts'], dir), squares, 'npx tsx main.ts'),
  );
  if (major >= 22) {
    await check('README Pool with a TypeScript task file (node --experimental-transform-types main.ts)', () =>
      expect(run(node, ['--experimental-transform-types', 'main.ts'], dir), squares, 'main.ts'),
    );
  }
  if (major >= 22) {
    await check("Pool with an erasable TypeScript task file under Node's own type stripping (node main.ts)", () =>
      expect(run(node, ['erasable-main.ts'], dir), /^49$/m, 'erasable-main.ts'),
    );
  }
  await check('Pool with a TypeScript task file in a CommonJS project (node --import tsx main.ts)', () =>
    expect(run(node, ['--import', 'tsx', 'main.ts'], join(dir, 'commonjs')), /^49$/m, 'commonjs/main.ts'),
  );
  for (const [file, nodeArgs] of [
    ['shout.mjs', []],
    ['shout.cjs', []],
    ['shout.ts', ['--import', 'tsx']],
  ]) {
    await check(`README Node serving a Server (${file})`, () =>
      serves(node, [...nodeArgs, file], dir, 7000, 'hello\n', 'HELLO\n'),
    );
  }
  await check('nexus run --results of the packaged primes example', () => {
    const primes = 'node_modules/pyre-nexus/examples/tasks/primes.ts';
    const result = run(node, ['npx', 'nexus', 'run', primes, '100000', '--team.size=2', '--results'], dir);
    expect(result, /10 tasks: 10 done/, 'nexus run');
    // One JSON line per chunk of 10,000 numbers; there are 9,592 primes below 100,000.
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const count = lines.reduce((sum, line) => sum + line.value, 0);
    if (lines.length !== 10 || count !== 9592)
      throw new Error(`results counted ${count} primes in ${lines.length} lines`);
  });
  const cjs = join(dir, 'commonjs');
  await check('nexus run of a TypeScript workplan in a CommonJS project', () =>
    expect(
      run(node, [join(dir, 'node_modules/.bin/nexus'), 'run', 'primes.ts', '100000'], cjs),
      /10 tasks: 10 done/,
      'nexus run',
    ),
  );
  await check('nexus serve of a TypeScript service in a CommonJS project (the nexus bin)', () =>
    serves(node, [join(dir, 'node_modules/.bin/nexus'), 'serve', 'node.json'], cjs, 7071, 'ping', 'ping'),
  );
  await check('nexus serve of a TypeScript service in a CommonJS project (node --import tsx)', () =>
    serves(node, ['--import', 'tsx', '../node_modules/.bin/nexus', 'serve', 'node.json'], cjs, 7071, 'ping', 'ping'),
  );
}

/**
 * The main package without its platform package (npm left the optional dependency out): importing
 * it says what is missing and what to do, and the build command it names makes it work.
 */
async function withoutBinary(node, main, platformPackage) {
  const dir = mkdtempSync(join(tmpdir(), 'pyre-nexus-no-binary-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'no-binary', private: true, type: 'module' }));
  must('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--omit=optional', main], { cwd: dir });
  const probe = `import { pipe } from 'pyre-nexus'; const [a, b] = pipe(); a.write('x'); console.log('works');`;
  await check('without its platform package, importing pyre-nexus names the package and both remedies', () => {
    const result = run(node, ['--input-type=module', '-e', probe], dir);
    const output = `${result.stdout}${result.stderr}`;
    for (const words of ['UnsupportedPlatformError', `${platformPackage}@`, 'npm install', 'npx pyre-nexus-build']) {
      if (!output.includes(words)) throw new Error(`the error does not say ${JSON.stringify(words)}:\n${output}`);
    }
    if (result.status === 0) throw new Error(`the import worked without a binary:\n${output}`);
  });
  await check('npx pyre-nexus-build builds the addon from the sources in the package, and then it loads', () => {
    expect(run(node, ['npx', 'pyre-nexus-build'], dir, { timeout: 600_000 }), /built and loaded/, 'pyre-nexus-build');
    expect(run(node, ['--input-type=module', '-e', probe], dir), /works/, 'the import after the build');
  });
}

/** `npm install git+file://<this repository>`: npm builds the addon from source (prepare), and it loads. */
async function fromGit(node) {
  await check('npm install from a git URL builds the addon from source, and it loads', () => {
    if (!existsSync(join(root, '.git'))) throw new Error(`${root} is not a git checkout: nothing to install from`);
    const dir = mkdtempSync(join(tmpdir(), 'pyre-nexus-from-git-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'from-git', private: true, type: 'module' }));
    const install = run(node, ['npm', 'install', '--no-audit', '--no-fund', `git+file://${root}`], dir, {
      timeout: 900_000,
    });
    expect(install, /added/, 'npm install git+file://');
    const probe = `import { pipe } from 'pyre-nexus'; const [a] = pipe(); a.write('x'); console.log('works');`;
    expect(run(node, ['--input-type=module', '-e', probe], dir), /works/, 'the import after a git install');
  });
}

const tarballs = packPackages(mkdtempSync(join(tmpdir(), 'pyre-nexus-packs-')));
const dir = project(tarballs);
for (const major of majors) {
  await tryOn(nodeBinary(major), dir);
}
// Once: a build from source takes a minute.
say('\nwithout a platform package');
// (pyre-nexus-linux-x64-gnu-0.1.0.tgz is pyre-nexus-linux-x64-gnu's)
const platformPackage = basename(tarballs[1]).replace(/-\d+\.\d+\.\d+.*$/, '');
await withoutBinary(nodeBinary(majors[0]), tarballs[0], platformPackage);
say('\nfrom a git URL');
await fromGit(nodeBinary(majors[0]));
say(failures.length === 0 ? '\nevery check passed' : `\n${failures.length} checks failed:\n  ${failures.join('\n  ')}`);
process.exitCode = failures.length === 0 ? 0 : 1;
