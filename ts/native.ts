/** Loads the native addon (internal: the generated loader is not part of the public API). */
import { UnsupportedPlatformError } from './errors.js';
import { currentPlatform, noNativeBuildMessage, packageVersion, unsupportedOsMessage } from './platform.js';

/** A native channel: an opaque handle that the binding's `channel*` functions take first. */
export type ChannelHandle = { readonly __nexusChannel: unique symbol };

/** The native dispatcher. */
export interface NativeDispatcher {
  readonly handlerCount: number;
  readonly watching: boolean;
  when(channel: ChannelHandle, kind: number, handler: () => unknown): number;
  alarm(seconds: number, handler: (timestamp: number) => unknown): number;
  cancel(id: number): boolean;
  watch(): Promise<void>;
  stop(): void;
  close(): void;
}

interface Binding {
  platformSupported(): boolean;
  /** The largest frame a channel accepts unless told otherwise. */
  DEFAULT_MAX_FRAME: number;
  /** Payloads at least this long arrive in memory of their own, kept for later ones. */
  LARGE_PAYLOAD: number;
  Dispatcher: new (spinMicroseconds?: number) => NativeDispatcher;
  pipe(): ChannelHandle[];
  port(address: string): ChannelHandle;
  connect(address: string): ChannelHandle;
  adopt(fd: number): ChannelHandle;
  parseAddress(address: string): string;
  /** The host name `address` must have resolved first (family 0: either), or null if none. */
  addressHostName(address: string): { family: 0 | 4 | 6; host: string; port: number } | null;
  channelFd(channel: ChannelHandle): number | null;
  channelKind(channel: ChannelHandle): string;
  channelClosed(channel: ChannelHandle): boolean;
  channelAtEnd(channel: ChannelHandle): boolean;
  channelRecheck(channel: ChannelHandle): void;
  trimLargeFrameSpares(): boolean;
  channelLocalAddress(channel: ChannelHandle): string | null;
  channelPeerAddress(channel: ChannelHandle): string | null;
  channelPendingOutput(channel: ChannelHandle): number;
  channelSetMaxFrame(channel: ChannelHandle, max: number): void;
  channelSetOutputBound(channel: ChannelHandle, bound: number): void;
  channelRead(channel: ChannelHandle, buffer: Buffer): number | null;
  channelWrite(channel: ChannelHandle, buffer: Buffer): number;
  channelSendFrame(channel: ChannelHandle, payload: Buffer): void;
  channelRecvFrame(channel: ChannelHandle, slab: Buffer, offset: number): number | Buffer;
  channelRecvFrameInto(channel: ChannelHandle, buffer: Buffer, offset: number): number;
  channelAccept(channel: ChannelHandle): ChannelHandle | null;
  channelClose(channel: ChannelHandle): void;
  channelAbort(channel: ChannelHandle): void;
  /**
   * With `shared` (the `fd` of {@link Binding.sharedWords}) the worker finds those words on fd 4.
   * `output`: the worker's stdout and stderr are ours (`inherit`, the default), or stderr is a pipe
   * of ours until it calls {@link Binding.takeBackStderr} (`watch-start`), or both are (`capture`):
   * `stdout` and `stderr` are our ends of those pipes, for us to close.
   */
  spawn(
    program: string,
    args: string[],
    shared?: number,
    output?: 'inherit' | 'watch-start' | 'capture',
  ): { pid: number; channel: ChannelHandle; stdout: number | null; stderr: number | null };
  /** In a worker spawned with output `watch-start`, once started: its team's stderr back on fd 2. */
  takeBackStderr(): void;
  /** `count` zeroed 32-bit words shared with the worker spawned with `fd`; close `fd` after the spawn. */
  sharedWords(count: number): { words: Buffer; fd: number };
  /** In a worker: the words its team handed it on fd 4, which is closed once they are mapped. */
  inheritedWords(count: number): Buffer;
  pair(): { fd: number; channel: ChannelHandle };
  reap(pid: number): { code?: number; signal?: number } | null;
  watchParent(): void;
}

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
