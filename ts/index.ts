/**
 * pyre-nexus: pyre.nexus for Node. The ipc layer: a dispatcher running inside Node's event loop,
 * non-blocking channels owned by a Rust core, and marshalers speaking pyre's framing.
 */

export {
  AddressInUseError,
  BadAddressError,
  BadPayloadError,
  ChannelClosedError,
  ChannelFullError,
  ConnectionResetError,
  FrameTooLargeError,
  NexusError,
  RecoverableError,
  TruncatedFrameError,
  UnsupportedPlatformError,
} from './errors.js';
export { adopt, Channel, parseAddress, pipe, port, tcp } from './ipc/channel.js';
export {
  type AlarmHandler,
  Dispatcher,
  type DispatcherOptions,
  type Handler,
  type HandlerId,
} from './ipc/dispatcher.js';
export { JsonMarshaler, type Marshaler, V8Marshaler } from './ipc/marshaler.js';
