import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTriple } from '@napi-rs/cli';
import test from 'ava';
import { buildNative } from '../ts/build-native.ts';
import {
  currentPlatform,
  noNativeBuildMessage,
  PREBUILT,
  packageVersion,
  platformName,
  unsupportedOsMessage,
} from '../ts/platform.ts';
import { runNode } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

test('the platforms with a prebuilt package are the napi targets of package.json', (t) => {
  const targets = (packageJson.napi.targets as string[]).map((target) => parseTriple(target).platformArchABI);
  t.deepEqual([...PREBUILT].sort(), targets.sort());
});

test('where no build loads, the message names the platform, its package and both ways out', (t) => {
  const musl = noNativeBuildMessage({ os: 'linux', arch: 'x64', libc: 'musl' }, '1.2.3');
  t.regex(musl, /no native build that loads on linux-x64-musl/);
  t.regex(musl, /the platform package pyre-nexus-linux-x64-musl@1\.2\.3 is not installed or does not load/);
  t.regex(musl, /npm install pyre-nexus-linux-x64-musl@1\.2\.3 \(npm can leave optional dependencies out/);
  t.regex(musl, /build it from source, with Rust \(cargo\) installed: npx pyre-nexus-build/);

  const mac = noNativeBuildMessage({ os: 'darwin', arch: 'arm64' }, '1.2.3');
  t.regex(mac, /loads on darwin-arm64: the platform package pyre-nexus-darwin-arm64@1\.2\.3/);
  t.regex(mac, /npm install pyre-nexus-darwin-arm64@1\.2\.3/);
  t.regex(mac, /npx pyre-nexus-build/);
});

test('a platform with no prebuilt package is told to build from source only', (t) => {
  const message = noNativeBuildMessage({ os: 'linux', arch: 'arm64', libc: 'musl' }, '1.2.3');
  t.regex(message, /no native build for linux-arm64-musl: there is no prebuilt package for it/);
  t.regex(message, /it looked for pyre-nexus-linux-arm64-musl@1\.2\.3/);
  t.regex(message, /build it from source, with Rust \(cargo\) installed: npx pyre-nexus-build$/);
  t.notRegex(message, /npm install/);
});

test('Windows is still refused outright', (t) => {
  t.is(platformName({ os: 'win32', arch: 'x64' }), 'win32-x64-msvc');
  t.is(
    unsupportedOsMessage('win32'),
    'pyre-nexus does not support win32 yet: its dispatcher needs a pollable selector (Linux, macOS, BSD)',
  );
});

test('a copy of the package with no native build throws UnsupportedPlatformError on import', async (t) => {
  // The built package without its addon, its generated loader or any platform package.
  const copy = mkdtempSync(join(tmpdir(), 'pyre-nexus-no-build-'));
  t.teardown(() => rmSync(copy, { recursive: true, force: true }));
  cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
  writeFileSync(join(copy, 'package.json'), JSON.stringify({ name: 'pyre-nexus', version: '9.8.7', type: 'module' }));
  const script = `import(${JSON.stringify(join(copy, 'dist', 'index.js'))}).then(
    () => console.log('loaded'),
    (e) => console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, cause: e.cause?.code })),
  );`;
  const { stdout, stderr } = await runNode(['-e', script]);
  const error = JSON.parse(stdout);
  t.is(error.name, 'UnsupportedPlatformError', stderr);
  t.is(error.code, 'ERR_NEXUS_UNSUPPORTED_PLATFORM');
  t.is(error.cause, 'MODULE_NOT_FOUND');
  const name = platformName(currentPlatform());
  t.true(error.message.includes(`pyre-nexus-${name}@9.8.7`), error.message);
  t.true(error.message.includes('npx pyre-nexus-build'), error.message);
});

test('building from source without cargo says that Rust is needed', (t) => {
  const error = t.throws(() => buildNative({ root, cargo: join(root, 'no-such-cargo') }));
  const name = platformName(currentPlatform());
  t.regex(
    error.message,
    new RegExp(`building pyre-nexus for ${name} needs Rust, and cargo \\(.*no-such-cargo\\) was not found`),
  );
  t.true(error.message.includes('https://rustup.rs'));
  t.true(error.message.includes(`pyre-nexus-${name}@${packageVersion()}`));
});
