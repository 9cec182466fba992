/**
 * Builds the native addon from the Rust sources shipped in this package, for a machine that no
 * prebuilt platform package fits (`npx pyre-nexus-build`). Nothing here loads the addon first:
 * this runs exactly where it does not load.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentPlatform, packageVersion, platformName, unsupportedOsMessage } from './platform.js';

/** Options of {@link buildNative}. */
export interface BuildNativeOptions {
  /** The package to build: the folder that holds its Cargo.toml. Default: this package. */
  root?: string;
  /** The cargo to run. Default: `$CARGO`, else `cargo` on the PATH. */
  cargo?: string;
}

/**
 * Builds the addon with `cargo build --release --locked` (in a temporary folder), puts it where
 * the loader looks first (`pyre-nexus.<platform>.node` in the package), checks that it
 * loads, and returns its path. Throws an Error saying what is missing if cargo is not found, and
 * what failed otherwise; cargo's own output goes to this process's stdout and stderr.
 */
export function buildNative(options: BuildNativeOptions = {}): string {
  const root = options.root ?? join(__dirname, '..');
  const cargo = options.cargo ?? process.env.CARGO ?? 'cargo';
  const platform = currentPlatform();
  const name = platformName(platform);
  if (platform.os === 'win32') throw new Error(unsupportedOsMessage(platform.os));
  if (!existsSync(join(root, 'Cargo.toml'))) {
    throw new Error(`${root} holds no Rust sources (Cargo.toml) to build pyre-nexus from`);
  }

  // cargo's build folder (90 MB) goes once the addon is out of it: an upgrade replaces the whole
  // package folder, so it would never serve again, and a checkout's own target/ stays untouched.
  const target = mkdtempSync(join(tmpdir(), 'pyre-nexus-build-'));
  try {
    const library = platform.os === 'darwin' ? 'libpyre_nexus_napi.dylib' : 'libpyre_nexus_napi.so';
    const built = join(target, 'release', library);
    const addon = join(root, `pyre-nexus.${name}.node`);
    cargoBuild(cargo, root, target, platform.libc === 'musl', name);
    // Copied beside and renamed over: a process that has the old addon loaded keeps its own file,
    // where copying over it in place would change the code under its feet.
    const partial = `${addon}.${process.pid}.partial`;
    copyFileSync(built, partial);
    renameSync(partial, addon);
    const binding = require(addon) as { platformSupported(): boolean };
    if (!binding.platformSupported()) throw new Error(unsupportedOsMessage(platform.os));
    return addon;
  } finally {
    rmSync(target, { recursive: true, force: true });
  }
}

/** Runs `cargo build --release --locked` for the binding in `root`, into `target`. */
function cargoBuild(cargo: string, root: string, target: string, musl: boolean, name: string): void {
  const env = { ...process.env };
  if (musl) {
    // Rust's musl targets link the C library statically by default; an addon needs the one Node
    // itself runs on (napi-rs's own build does the same).
    const flags = env.RUSTFLAGS ?? '';
    if (!flags.includes('crt-static')) env.RUSTFLAGS = `${flags} -C target-feature=-crt-static`.trim();
  }
  const args = ['build', '--release', '--locked', '-p', 'pyre-nexus-napi', '--target-dir', target];
  // Run in `root`, where cargo finds the workspace's Cargo.toml and Cargo.lock.
  const run = spawnSync(cargo, args, { cwd: root, env, stdio: 'inherit' });
  if (run.error) {
    const why = (run.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'was not found' : 'could not be run';
    throw new Error(
      `building pyre-nexus for ${name} needs Rust, and cargo (${cargo}) ${why}: install Rust ` +
        `(https://rustup.rs) and run this again, or install the prebuilt package ` +
        `pyre-nexus-${name}@${packageVersion()} where one is published`,
    );
  }
  if (run.status !== 0) {
    throw new Error(`cargo ${args.join(' ')} failed (exit ${run.status ?? run.signal}); its output is above`);
  }
}
