#!/usr/bin/env node
// Packs pyre-nexus as it is published: the main package, whose optionalDependencies name one
// binary package per platform, and this platform's binary package (from the .node file that
// `npm run build` made). The publish flow's own steps (`napi create-npm-dirs`, `napi
// pre-publish`) run in a staging copy, so the repository is left as it is.
// `node scripts/pack.mjs <folder>` writes the tarballs there and prints their paths.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function must(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stdout}${result.stderr}`);
  }
  return result.stdout;
}

/** The napi-rs platform name of this machine's build: the part of pyre-nexus.<platform>.node. */
function thisPlatform() {
  const built = readdirSync(root).filter((name) => /^pyre-nexus\..+\.node$/.test(name));
  if (built.length !== 1)
    throw new Error(`expected one built addon in ${root}, found: ${built.join(', ') || 'none'} (run npm run build)`);
  return built[0].slice('pyre-nexus.'.length, -'.node'.length);
}

export function packPackages(out) {
  const platform = thisPlatform();
  const stage = mkdtempSync(join(tmpdir(), 'pyre-nexus-stage-'));
  // What npm would publish from the repository, copied as it is.
  const [{ files }] = JSON.parse(must('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], root));
  // Less the addons `files` takes for git installs: the registry's main package has none (the
  // publish job removes them), its binaries come as the platform packages.
  for (const { path } of files.filter(({ path }) => !path.endsWith('.node'))) {
    mkdirSync(dirname(join(stage, path)), { recursive: true });
    copyFileSync(join(root, path), join(stage, path));
  }
  const napi = join(root, 'node_modules', '.bin', 'napi');
  must(napi, ['create-npm-dirs'], stage);
  const platformDir = join(stage, 'npm', platform);
  if (!existsSync(platformDir))
    throw new Error(`napi create-npm-dirs made no npm/${platform} (is it in package.json's napi.targets?)`);
  copyFileSync(join(root, `pyre-nexus.${platform}.node`), join(platformDir, `pyre-nexus.${platform}.node`));
  // pre-publish checks that every platform package has its addon; only this machine's is built
  // here, so the others get empty stand-ins, which stay in the staging copy (never packed).
  for (const other of readdirSync(join(stage, 'npm')).filter((name) => name !== platform)) {
    writeFileSync(join(stage, 'npm', other, `pyre-nexus.${other}.node`), '');
  }
  // Fills in optionalDependencies, as publishing does; publishes nothing.
  must(napi, ['pre-publish', '-t', 'npm', '--no-gh-release', '--skip-optional-publish'], stage);
  const manifest = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'));
  const wanted = `${manifest.name}-${platform}`;
  if (manifest.optionalDependencies?.[wanted] !== manifest.version) {
    throw new Error(`pre-publish did not name ${wanted}@${manifest.version} in optionalDependencies`);
  }
  mkdirSync(out, { recursive: true });
  const pack = (dir) =>
    join(
      out,
      JSON.parse(must('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], dir))[0].filename,
    );
  return [pack(stage), pack(platformDir)];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? mkdtempSync(join(tmpdir(), 'pyre-nexus-packs-')));
  for (const tarball of packPackages(out)) process.stdout.write(`${tarball}\n`);
}
