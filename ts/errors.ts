/**
 * Errors of pyre-nexus. Every error has a stable `code`; the native core throws coded errors and
 * {@link translate} turns them into the class a user can catch with `instanceof`.
 */
import { NexusError } from './task.js';

// Defined with the Task class, so that a task module's one import brings them (see task.ts).
export { NexusError, RecoverableError } from './task.js';

/** The peer reset the connection (pyre's `ConnectionResetError`). */
export class ConnectionResetError extends NexusError {}
/** An address that does not parse; the message names the bad part. */
export class BadAddressError extends NexusError {}
/**
 * An address names a host, which the synchronous forms (`port`, `tcp`, `parseAddress`) do not look
 * up: a lookup would block the loop. Give an IP address, or resolve the name first with
 * `await resolveAddress(address)`. The message names the host.
 */
export class NeedsResolvingError extends NexusError {
  constructor(message: string, code = 'ERR_NEXUS_NEEDS_RESOLVING', options?: ErrorOptions) {
    super(message, code, options);
  }
}
/** The address is taken: another socket listens there, or a Unix-domain path exists. The message names it. */
export class AddressInUseError extends NexusError {
  constructor(message: string, code = 'ERR_NEXUS_ADDRESS_IN_USE', options?: ErrorOptions) {
    super(message, code, options);
  }
}
/** A peer announced a frame longer than the channel's maximum. */
export class FrameTooLargeError extends NexusError {}
/** A peer closed its channel in the middle of a frame. */
export class TruncatedFrameError extends NexusError {}
/** The next frame does not fit the buffer given to receive it into; it stays queued. */
export class BufferTooSmallError extends NexusError {}
/** A frame's payload does not decode with the channel's marshaler. */
export class BadPayloadError extends NexusError {}
/** The channel was closed by this side. */
export class ChannelClosedError extends NexusError {}
/** The channel's unsent output is at its bound; wait until it is write-ready. */
export class ChannelFullError extends NexusError {}
/** This platform is not supported by the native core. */
export class UnsupportedPlatformError extends NexusError {}
/** The channel is already watched by another dispatcher. */
export class AlreadyWatchedError extends NexusError {}
/** The operation does not apply to this kind of channel (reading from a listener, say). */
export class WrongKindError extends NexusError {}
/** A descriptor handed over as a channel is not a socket. */
export class NotASocketError extends NexusError {}
/** A descriptor handed over as shared memory is not a region that can be mapped; the message says what it is. */
export class NotSharedMemoryError extends NexusError {}
/** `watch()` was called on a dispatcher that is watching already. */
export class AlreadyWatchingError extends NexusError {}
/** The dispatcher was closed: nothing can be registered, cancelled, watched or stopped any more. */
export class DispatcherClosedError extends NexusError {}
/** A call to the operating system failed; the message names the operation and the reason. */
export class IoError extends NexusError {}
/** A bug in pyre-nexus's native code, caught before it could crash the process: please report it. */
export class InternalError extends NexusError {}

/**
 * The class of each code the native core throws: its registry (`Code` in
 * crates/core/src/error.rs), class for class. A bad argument that gets past the checks here is
 * a TypeError with Node's code, as Node's own are.
 *
 * @internal
 */
export const nativeErrorClasses = {
  ERR_NEXUS_BAD_ADDRESS: BadAddressError,
  ERR_NEXUS_NEEDS_RESOLVING: NeedsResolvingError,
  ERR_NEXUS_ADDRESS_IN_USE: AddressInUseError,
  ERR_NEXUS_PEER_RESET: ConnectionResetError,
  ERR_NEXUS_FRAME_TOO_LARGE: FrameTooLargeError,
  ERR_NEXUS_TRUNCATED: TruncatedFrameError,
  ERR_NEXUS_BUFFER_TOO_SMALL: BufferTooSmallError,
  ERR_NEXUS_CHANNEL_CLOSED: ChannelClosedError,
  ERR_NEXUS_CHANNEL_FULL: ChannelFullError,
  ERR_NEXUS_ALREADY_WATCHED: AlreadyWatchedError,
  ERR_NEXUS_NOT_A_SOCKET: NotASocketError,
  ERR_NEXUS_NOT_SHARED_MEMORY: NotSharedMemoryError,
  ERR_NEXUS_WRONG_KIND: WrongKindError,
  ERR_NEXUS_ALREADY_WATCHING: AlreadyWatchingError,
  ERR_NEXUS_DISPATCHER_CLOSED: DispatcherClosedError,
  ERR_NEXUS_UNSUPPORTED_PLATFORM: UnsupportedPlatformError,
  ERR_NEXUS_INTERNAL: InternalError,
  ERR_NEXUS_IO: IoError,
  ERR_INVALID_ARG_TYPE: TypeError,
  ERR_INVALID_ARG_VALUE: TypeError,
} as const;

type NativeCode = keyof typeof nativeErrorClasses;

/** Turns an error thrown by the native core into its pyre-nexus class; others pass unchanged. */
export function translate(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof NexusError) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return error;
  if (!Object.hasOwn(nativeErrorClasses, code)) {
    return code.startsWith('ERR_NEXUS') ? new NexusError(error.message, code) : error;
  }
  const Class = nativeErrorClasses[code as NativeCode];
  if (Class === TypeError) {
    return error instanceof TypeError ? error : Object.assign(new TypeError(error.message), { code });
  }
  return new Class(error.message, code);
}
