/** Loads the native addon (internal: the generated loader is not part of the public API). */
import { UnsupportedPlatformError } from './errors.js';
import { currentPlatform, noNativeBuildMessage, packageVersion, unsupportedOsMessage } from './platform.js';

// The binding's types are those napi-rs generates from the Rust sources (native.d.ts, with the
// declarations in src/native-header.d.ts of what it cannot see): nothing is declared twice here.
type Binding = typeof import('../native.js');

export type { ChannelHandle } from '../native.js';

/** The native dispatcher. */
export type NativeDispatcher = InstanceType<Binding['Dispatcher']>;

/**
 * On Linux, tries the glibc build first: the generated loader must first tell glibc from musl (it
 * reads /usr/bin/ldd, or falls back on `process.report.getReport()`, 5 to 8 ms) and is 37 KB of
 * JavaScript to compile; loading the build directly saves every worker process and thread 1.5 to
 * 2.5 ms (napi-rs 3's loader, Node 20). A glibc build that does not load (on musl) leaves the
 * choice to the generated loader.
 */
function glibcBuild(): Binding | null {
  if (process.platform !== 'linux') return null;
  const triple = `linux-${process.arch}-gnu`;
  for (const candidate of [`../pyre-nexus.${triple}.node`, `pyre-nexus-${triple}`]) {
    try {
      return require(candidate) as Binding;
    } catch {
      // Not there, or not loadable here.
    }
  }
  return null;
}

function load(): Binding {
  let binding: Binding;
  try {
    binding = glibcBuild() ?? (require('../native.cjs') as Binding);
  } catch (cause) {
    // No Windows build is published: Windows gets the same answer a build of its own would give.
    const platform = currentPlatform();
    const message =
      platform.os === 'win32' ? unsupportedOsMessage(platform.os) : noNativeBuildMessage(platform, packageVersion());
    throw new UnsupportedPlatformError(message, 'ERR_NEXUS_UNSUPPORTED_PLATFORM', { cause });
  }
  if (!binding.platformSupported()) {
    throw new UnsupportedPlatformError(unsupportedOsMessage(process.platform), 'ERR_NEXUS_UNSUPPORTED_PLATFORM');
  }
  // A copy: the addon's exports object comes in V8's dictionary mode, whose property loads
  // optimized code cannot inline, and the channel calls look one up per message.
  return { ...binding };
}

export const native: Binding = load();
