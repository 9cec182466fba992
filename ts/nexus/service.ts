import type { Channel } from '../ipc/channel.js';
import type { Dispatcher } from '../ipc/dispatcher.js';
import { protocol } from './protocol.js';

/**
 * pyre's `service` protocol: a component that handles the events of communication channels.
 *
 * pyre's protocol also passes the dispatcher to `acknowledge`, `connect` and `process`; its own
 * server keeps the dispatcher it was activated with instead, and so do we: the methods past
 * `activate` take the channel first, so that they can be dispatcher handlers as they are.
 */
export interface Service {
  /** Prepares to receive from the network; `dispatcher` is the loop the service lives in. */
  activate(application: unknown, dispatcher: Dispatcher): unknown;
  /** A peer has attempted to establish a connection on `channel` (the listener). */
  acknowledge(channel: Channel): unknown;
  /** Examines the peer's `address`: a falsy answer ends the conversation before it starts. */
  validate(channel: Channel, address: string): unknown;
  /** Prepares to serve requests from a new peer. */
  connect(channel: Channel, address: string): unknown;
  /** Starts or continues a conversation with a peer over `channel`. */
  process(channel: Channel): unknown;
  /** Cleans up and shuts down. */
  shutdown(): unknown;
  /**
   * Optional: stops accepting and lets conversations in progress finish; resolves when none is
   * left. A stopping node calls it before it gives up waiting.
   */
  drain?(): Promise<void>;
}

/** The `service` protocol; as in pyre, it has no default implementation. */
export const Service = protocol<Service>('service', [
  'activate',
  'acknowledge',
  'validate',
  'connect',
  'process',
  'shutdown',
]);
