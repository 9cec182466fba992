import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { type Channel, pipe } from '../dist/index.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** A Node process running a fixture, which finds its channel on fd 3. */
export interface Peer {
  channel: Channel;
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnPeer(fixture: string, ...args: string[]): Peer {
  const [parent, child] = pipe();
  const proc = spawn(process.execPath, ['--import', 'tsx', fixtures + fixture, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', child.fd as number],
  });
  child.close();
  const exit = once(proc, 'exit').then(([code, signal]) => ({ code, signal }));
  return { channel: parent, child: proc, exit };
}

/** Runs a node script given as text and resolves with its exit code, stdout and stderr. */
export async function runScript(source: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', source], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const [code] = await once(proc, 'exit');
  return { code, stdout, stderr };
}
