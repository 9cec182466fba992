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

const classes: Record<string, new (message: string, code: string) => NexusError> = {
  ERR_NEXUS_PEER_RESET: ConnectionResetError,
  ERR_NEXUS_BAD_ADDRESS: BadAddressError,
  ERR_NEXUS_NEEDS_RESOLVING: NeedsResolvingError,
  ERR_NEXUS_ADDRESS_IN_USE: AddressInUseError,
  ERR_NEXUS_FRAME_TOO_LARGE: FrameTooLargeError,
  ERR_NEXUS_TRUNCATED: TruncatedFrameError,
  ERR_NEXUS_BUFFER_TOO_SMALL: BufferTooSmallError,
  ERR_NEXUS_BAD_PAYLOAD: BadPayloadError,
  ERR_NEXUS_CHANNEL_CLOSED: ChannelClosedError,
  ERR_NEXUS_CHANNEL_FULL: ChannelFullError,
  ERR_NEXUS_UNSUPPORTED_PLATFORM: UnsupportedPlatformError,
};

/** Turns an error thrown by the native core into its pyre-nexus class; others pass unchanged. */
export function translate(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof NexusError) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('ERR_NEXUS')) return error;
  const Class = classes[code] ?? NexusError;
  return new Class(error.message, code);
}
