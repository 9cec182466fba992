// Calls from JavaScript into the addon, per task and per request: the crossings issue 21 asks to
// halve. Each scenario runs twice, with a few and with many units of work, in fresh processes
// preloaded with count.js; the difference, divided by the difference in units, is what one more
// unit costs, start-up and shutdown excluded. Every process of a scenario counts (a pool's team
// and its member; the node serving the example echo or key-value service, not its client, which
// is Node's own net).
//
//   npm run build && node bench/crossings/run.js
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const preload = pathToFileURL(join(here, 'count.js')).href;

function environment(dir) {
  const options = `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim();
  return { ...process.env, NODE_OPTIONS: options, NEXUS_CROSSINGS_DIR: dir };
}

/** Sums the counts every process of a run wrote. */
function collect(dir) {
  const total = {};
  for (const file of readdirSync(dir)) {
    const { counts } = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    for (const [name, n] of Object.entries(counts)) total[name] = (total[name] ?? 0) + n;
  }
  rmSync(dir, { recursive: true, force: true });
  return total;
}

function team(mode, tasks) {
  const dir = mkdtempSync(join(tmpdir(), 'crossings-'));
  execFileSync(process.execPath, [join(here, 'team.js'), mode, String(tasks)], {
    env: environment(dir),
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return collect(dir);
}

/** `requests` requests, one at a time on one connection, to a node serving `service`. */
async function serve(service, requests) {
  const dir = mkdtempSync(join(tmpdir(), 'crossings-'));
  const server = spawn(process.execPath, ['--import', 'tsx', join(here, 'node.js'), service], {
    env: environment(dir),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    server.stdout.once('data', (line) => resolve(Number(String(line).trim())));
    server.once('exit', (code) => reject(new Error(`the ${service} node exited (${code}) before listening`)));
  });
  await new Promise((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1');
    // 64 bytes echoed; or a GET of a key that is not there, answered NONE.
    const request = service === 'echo' ? Buffer.alloc(64, 7) : Buffer.from(`GET ${'k'.repeat(59)}\n`);
    const answer = service === 'echo' ? 64 : 'NONE\n'.length;
    let left = requests;
    let got = 0;
    socket.on('connect', () => socket.write(request));
    socket.on('data', (data) => {
      got += data.length;
      while (got >= answer) {
        got -= answer;
        if (--left === 0) return socket.end();
        socket.write(request);
      }
    });
    socket.on('close', resolve);
    socket.on('error', reject);
  });
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  await exited;
  return collect(dir);
}

/** Calls per unit between a run of `few` and one of `many` units, by function and in total. */
function perUnit(small, large, few, many) {
  const names = new Set([...Object.keys(small), ...Object.keys(large)]);
  const each = {};
  for (const name of names) {
    const extra = ((large[name] ?? 0) - (small[name] ?? 0)) / (many - few);
    if (Math.abs(extra) >= 0.005) each[name] = Math.round(extra * 100) / 100;
  }
  const total = Object.values(each).reduce((a, b) => a + b, 0);
  return { total: Math.round(total * 100) / 100, each };
}

const results = {};
const [few, many] = [200, 2200];
for (const mode of ['sequential', 'burst']) {
  results[`task (${mode})`] = perUnit(team(mode, few), team(mode, many), few, many);
}
for (const service of ['echo', 'kv']) {
  results[`${service} request`] = perUnit(await serve(service, few), await serve(service, many), few, many);
}
for (const [name, { total, each }] of Object.entries(results)) {
  const detail = Object.entries(each)
    .sort((a, b) => b[1] - a[1])
    .map(([f, n]) => `${f} ${n}`)
    .join(', ');
  console.log(`${name}: ${total} calls into the addon (${detail})`);
}
if (process.argv.includes('--json')) console.log(JSON.stringify(results));
