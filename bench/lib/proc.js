// Child processes for the benchmarks. Every process is started in its own process group so that a
// timeout, a failure or a Ctrl-C of the harness can take down whatever it spawned in turn: nothing
// of a run may outlive it.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

const live = new Set();

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const child of live) killGroup(child);
    process.exit(130);
  });
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {} // already gone
}

const tail = (text) => text.trim().split('\n').slice(-3).join(' | ');

/**
 * The program a command's first word names: 'node' is the Node running the harness, so that every
 * Node process measured is the same Node; any other word is a path relative to the repo root.
 */
export function commandFile(root, word) {
  return word === 'node' ? process.execPath : resolve(root, word);
}

function start(root, command, env) {
  const [cmd, ...args] = command;
  const file = commandFile(root, cmd);
  const child = spawn(file, args, { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderrText = '';
  child.stderr.on('data', (d) => {
    child.stderrText += d;
  });
  return child;
}

/**
 * Runs a command to its end and resolves with { stdout } when it exits 0, or { error } (exit
 * status or signal and the last lines of stderr, or the timeout) otherwise.
 */
export function runToEnd(root, command, { env = process.env, timeoutMs }) {
  return new Promise((done) => {
    const child = start(root, command, env);
    let stdout = '';
    let timedOut = false;
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      live.delete(child);
      done({ error: `cannot start: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      killGroup(child);
      live.delete(child);
      const why = tail(child.stderrText);
      if (timedOut) return done({ error: `timed out after ${timeoutMs} ms` });
      if (code !== 0) return done({ error: `exited with ${signal ?? code}${why ? `: ${why}` : ''}` });
      done({ stdout });
    });
  });
}

/**
 * Starts a long-running child and waits for the first line it prints on stdout. Resolves with
 * { child, first, output, terminate } once that line is read, or { error } if the child exits or
 * says nothing within `timeoutMs` (its process group is then killed). `output()` is everything
 * it printed so far; terminate() sends SIGTERM (to the child itself, not its group: its own
 * shutdown is part of the contract), kills the group after `stopMs`, and resolves with
 * { exited, hung, early } once the child is gone.
 */
function launch(root, command, { env, timeoutMs, stopMs }) {
  return new Promise((done) => {
    const child = start(root, command, env);
    let exited = null; // { code, signal } once the process is gone
    const exit = new Promise((settle) =>
      child.on('exit', (code, signal) => {
        exited = { code, signal };
        killGroup(child);
        live.delete(child);
        settle();
      }),
    );
    let stdout = '';
    let ready = false;
    const fail = (error) => {
      clearTimeout(timer);
      killGroup(child);
      done({ error });
    };
    const timer = setTimeout(() => fail(`printed nothing within ${timeoutMs} ms`), timeoutMs);
    child.on('error', (err) => fail(`cannot start: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (ready) return;
      const why = tail(child.stderrText);
      fail(`exited with ${signal ?? code} before its first line${why ? `: ${why}` : ''}`);
    });
    child.stdout.on('data', (d) => {
      stdout += d; // read off the pipe even after the first line, so the child never blocks
      if (ready) return;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      ready = true;
      clearTimeout(timer);
      done({ child, first: stdout.slice(0, nl), output: () => stdout, terminate });
    });

    async function terminate() {
      const early = exited !== null;
      let hung = false;
      if (!early) {
        try {
          child.kill('SIGTERM');
        } catch {}
        const killer = setTimeout(() => {
          hung = true;
          killGroup(child);
        }, stopMs);
        await exit;
        clearTimeout(killer);
      }
      return { exited, hung, early };
    }
  });
}

/**
 * Starts a server that prints its TCP port as the first line on stdout. Resolves with
 * { port, pid, stop } once that line is read, or { error } if the server exits, prints something else
 * or says nothing within `timeoutMs` (the process group is killed in every such case).
 * stop() sends SIGTERM and resolves once the server is gone, with { error } if it did not exit
 * cleanly (status 0 or by the SIGTERM itself) within `stopMs`; it is then killed.
 */
export async function startServer(root, command, { env = process.env, timeoutMs, stopMs = 10_000 }) {
  const launched = await launch(root, command, { env, timeoutMs, stopMs });
  if (launched.error) return { error: launched.error.replace('its first line', 'printing its port') };
  const { child, first, terminate } = launched;
  const stderr = () => tail(child.stderrText);
  const port = Number(first.trim());
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    await terminate();
    return { error: `first line on stdout is not a port: ${JSON.stringify(first)}`, stderr };
  }
  const stop = async () => {
    const { exited, hung, early } = await terminate();
    const { code, signal } = exited;
    const why = stderr();
    const says = why ? `: ${why}` : '';
    if (hung) return { error: `server did not exit within ${stopMs} ms of SIGTERM and was killed${says}` };
    if (early) return { error: `server had already exited with ${signal ?? code}${says}` };
    if (code === 0 || signal === 'SIGTERM') return {};
    return { error: `server ended with ${signal ?? code} after SIGTERM${says}` };
  };
  return { port, pid: child.pid, stderr, stop };
}

/**
 * Starts a helper that prints one JSON line on stdout once it is ready and then runs until
 * SIGTERM (bench/native/idle-conns.c). Resolves with { ready, pid, stop } once that line is read
 * (`ready` is the parsed line), or { error } if it exits, prints something else or says nothing
 * within `timeoutMs` (its process group is then killed). stop() sends SIGTERM and resolves with
 * { last } (the last JSON line it printed, parsed) once it has exited 0 within `stopMs`, or
 * { error } otherwise.
 */
export async function startHelper(root, command, { env = process.env, timeoutMs, stopMs = 10_000 }) {
  const launched = await launch(root, command, { env, timeoutMs, stopMs });
  if (launched.error) return { error: launched.error.replace('its first line', 'it was ready') };
  const { child, first, output, terminate } = launched;
  let ready;
  try {
    ready = JSON.parse(first);
  } catch {
    await terminate();
    return { error: `first line on stdout is not JSON: ${JSON.stringify(first)}` };
  }
  const stop = async () => {
    const { exited, hung } = await terminate();
    const why = tail(child.stderrText);
    if (hung) return { error: `did not exit within ${stopMs} ms of SIGTERM and was killed` };
    if (exited.code !== 0) return { error: `exited with ${exited.signal ?? exited.code}${why ? `: ${why}` : ''}` };
    const lines = output().trim().split('\n');
    try {
      return { last: JSON.parse(lines.at(-1)) };
    } catch {
      return { error: `last line on stdout is not JSON: ${JSON.stringify(lines.at(-1))}` };
    }
  };
  return { ready, pid: child.pid, stop };
}
