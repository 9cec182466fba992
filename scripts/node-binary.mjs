#!/usr/bin/env node
// The path of a Node binary of a given major version: this process's own, or one installed from
// the npm registry's node-<platform>-<arch> package into ${TMPDIR:-/tmp}/pyre-nexus-node<major>
// (kept there for the next run). `node scripts/node-binary.mjs 24` prints it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function nodeBinary(major) {
  if (process.versions.node.split('.')[0] === String(major)) return process.execPath;
  const dir = join(process.env.TMPDIR || tmpdir(), `pyre-nexus-node${major}`);
  const pkg = `node-${process.platform}-${process.arch}`;
  const binary = join(dir, 'node_modules', pkg, 'bin', 'node');
  if (!existsSync(binary)) {
    mkdirSync(dir, { recursive: true });
    const npm = spawnSync(
      'npm',
      ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', `${pkg}@${major}`],
      { cwd: dir, encoding: 'utf8' },
    );
    if (npm.status !== 0 || !existsSync(binary)) {
      throw new Error(`could not install Node ${major} from the npm registry (${pkg}@${major}):\n${npm.stderr}`);
    }
  }
  return binary;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${nodeBinary(process.argv[2] ?? '24')}\n`);
}
