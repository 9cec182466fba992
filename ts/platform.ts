/**
 * Which native build a machine needs, and what to tell a user when none loads. Kept apart from
 * native.ts, which loads the addon as it is imported, so that `pyre-nexus-build` can use it on a
 * machine where no addon loads yet.
 */

/** The command that builds the addon from source (the `pyre-nexus-build` bin, ts/build-native-bin.ts). */
export const BUILD_COMMAND = 'npx pyre-nexus-build';

/**
 * The platforms a prebuilt package is published for: package.json's `napi.targets` in napi-rs's
 * names (a spec checks that the two agree).
 */
export const PREBUILT: readonly string[] = [
  'linux-x64-gnu',
  'linux-x64-musl',
  'linux-arm64-gnu',
  'darwin-x64',
  'darwin-arm64',
];

/** An operating system, a processor and, on Linux, the C library a native build links with. */
export interface Platform {
  os: NodeJS.Platform;
  arch: string;
  libc?: 'gnu' | 'musl';
}

/** This process's platform. */
export function currentPlatform(): Platform {
  if (process.platform !== 'linux') return { os: process.platform, arch: process.arch };
  return { os: 'linux', arch: process.arch, libc: glibcVersion() === undefined ? 'musl' : 'gnu' };
}

/** The glibc that Node runs on, as its diagnostic report says; none on musl. */
function glibcVersion(): string | undefined {
  // Costs a few milliseconds, which only a machine with no usable build pays (see native.ts).
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  return report.header?.glibcVersionRuntime;
}

/**
 * napi-rs's name for a platform, which names its package (`pyre-nexus-linux-x64-gnu`) and its
 * `.node` file (`pyre-nexus.linux-x64-gnu.node`): linux-x64-gnu, linux-x64-musl, darwin-arm64.
 */
export function platformName({ os, arch, libc }: Platform): string {
  if (os === 'linux') return `linux-${arch}-${libc ?? 'gnu'}`;
  if (os === 'win32') return `win32-${arch}-msvc`;
  return `${os}-${arch}`;
}

/** This package's version, which its platform packages share. */
export function packageVersion(): string {
  return (require('../package.json') as { version: string }).version;
}

/** Why pyre-nexus refuses `os` outright: its dispatcher needs a pollable selector. */
export function unsupportedOsMessage(os: string): string {
  return `pyre-nexus does not support ${os} yet: its dispatcher needs a pollable selector (Linux, macOS, BSD)`;
}

/**
 * The message of the UnsupportedPlatformError thrown where no native build loads: the platform,
 * the package that was looked for, and the ways out.
 */
export function noNativeBuildMessage(platform: Platform, version: string): string {
  const name = platformName(platform);
  const wanted = `pyre-nexus-${name}@${version}`;
  const build = `build it from source, with Rust (cargo) installed: ${BUILD_COMMAND}`;
  if (!PREBUILT.includes(name)) {
    return (
      `pyre-nexus has no native build for ${name}: there is no prebuilt package for it ` +
      `(it looked for ${wanted}). To use pyre-nexus here, ${build}`
    );
  }
  return [
    `pyre-nexus has no native build that loads on ${name}: the platform package ${wanted} ` +
      'is not installed or does not load (error.cause says why). Either:',
    `  - install it: npm install ${wanted} (npm can leave optional dependencies out, ` +
      'for instance with a lockfile made on another platform: https://github.com/npm/cli/issues/4828), or',
    `  - ${build}`,
  ].join('\n');
}
