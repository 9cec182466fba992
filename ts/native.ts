/** Loads the native addon (internal: the generated loader is not part of the public API). */
import { createRequire } from 'node:module';
import { UnsupportedPlatformError } from './errors.js';

/** The native channel, as the binding exports it. */
export interface NativeChannel {
  readonly fd: number | null;
  readonly kind: string;
  readonly closed: boolean;
  readonly atEnd: boolean;
  readonly localAddress: string | null;
  readonly peerAddress: string | null;
  readonly pendingOutput: number;
  setMaxFrame(max: number): void;
  setOutputBound(bound: number): void;
  read(buffer: Buffer): number | null;
  write(buffer: Buffer): number;
  sendFrame(payload: Buffer): void;
  recvFrameInto(slab: Buffer, offset: number): number | Buffer;
  accept(): NativeChannel | null;
  close(): void;
  abort(): void;
}

/** The native dispatcher. */
export interface NativeDispatcher {
  readonly handlerCount: number;
  readonly watching: boolean;
  when(channel: NativeChannel, kind: number, handler: () => unknown): number;
  alarm(seconds: number, handler: (timestamp: number) => unknown): number;
  cancel(id: number): boolean;
  watch(): Promise<void>;
  stop(): void;
  close(): void;
}

interface Binding {
  platformSupported(): boolean;
  Dispatcher: new () => NativeDispatcher;
  pipe(): NativeChannel[];
  port(address: string): NativeChannel;
  connect(address: string): NativeChannel;
  adopt(fd: number): NativeChannel;
  parseAddress(address: string): string;
  spawn(program: string, args: string[]): { pid: number; channel: NativeChannel };
  pair(): { fd: number; channel: NativeChannel };
  reap(pid: number): { code?: number; signal?: number } | null;
  watchParent(): void;
}

/**
 * On Linux, tries the glibc build first: the generated loader tells glibc from musl with
 * `process.report.getReport()`, which costs every worker process and thread 5 to 8 ms. A glibc
 * build that does not load (on musl) leaves the choice to the generated loader.
 */
function glibcBuild(require: NodeJS.Require): Binding | null {
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
  const require = createRequire(import.meta.url);
  let binding: Binding;
  try {
    binding = glibcBuild(require) ?? (require('../native.cjs') as Binding);
  } catch (cause) {
    throw new UnsupportedPlatformError(
      `pyre-nexus has no native build for ${process.platform}-${process.arch}: ${(cause as Error).message}`,
      'ERR_NEXUS_UNSUPPORTED_PLATFORM',
      { cause },
    );
  }
  if (!binding.platformSupported()) {
    throw new UnsupportedPlatformError(
      `pyre-nexus does not support ${process.platform} yet: its dispatcher needs a pollable selector (Linux, macOS, BSD)`,
      'ERR_NEXUS_UNSUPPORTED_PLATFORM',
    );
  }
  return binding;
}

export const native: Binding = load();
