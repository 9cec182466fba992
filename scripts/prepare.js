// npm's `prepare`: builds the package (addon and TypeScript) when npm installs it from a checkout.
// That is how `npm install git+https://…` works: npm clones the repository, runs `npm install`
// there (which runs this) and packs the result, with the addon built here (package.json `files`
// lists pyre-nexus.*.node; the registry's main package has none, the publish job sees to that).
// A checkout has no prebuilt addon, so it needs Rust.
//
// `npm ci`, `npm pack` and `npm publish` run `prepare` too, and there it does nothing: in this
// project each is followed or preceded by a build of its own (`npm ci && npm test` in .ci/run and
// the README, `napi build` in the workflow's build jobs, a downloaded addon in its test jobs, an
// explicit build before publishing), so building here would build twice or where no Rust is.
import { spawnSync } from 'node:child_process';

const command = process.env.npm_command;
if (command === 'ci' || command === 'pack' || command === 'publish') process.exit(0);

if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).error) {
  console.error(
    'pyre-nexus: installing it from a git checkout builds its native addon from source, which needs Rust ' +
      '(cargo on the PATH: https://rustup.rs). Install Rust and try again, or install the released package ' +
      'from the npm registry (npm install pyre-nexus), which comes with prebuilt addons.',
  );
  process.exit(1);
}

// npm_execpath is the npm running this script; `npm` on the PATH might be another one.
const npm = process.env.npm_execpath;
const build = npm
  ? spawnSync(process.execPath, [npm, 'run', 'build'], { stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build'], { stdio: 'inherit', shell: process.platform === 'win32' });
process.exit(build.status ?? 1);
