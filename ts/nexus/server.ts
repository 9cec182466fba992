// Imported: the global `Buffer` is a getter that V8 looks up anew on every use.
import { Buffer } from 'node:buffer';
// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import { AddressInUseError, ChannelFullError, ConnectionResetError, NexusError } from '../errors.js';
import { type Channel, needsResolving, port, resolveAddress } from '../ipc/channel.js';
import type { Dispatcher, HandlerId } from '../ipc/dispatcher.js';
import { boolean, checkOptions, integer, nonEmptyString, type Rules, seconds, string } from '../options.js';
import { journal, type LogChannel } from './journal.js';
import type { Service } from './service.js';

/**
 * Options of a {@link Server}. Unknown keys are refused, so a subclass with options of its own
 * takes them out before passing the rest to `super`.
 */
export interface ServerOptions {
  /**
   * Where to listen, in pyre's notation (default `ip4:127.0.0.1:0`, an ephemeral port). A host
   * name is resolved, without blocking, when the server activates.
   */
  address?: string;
  /** The name of the server's log channels (default: its class name, in lower case). */
  name?: string;
  /** Conversations at once; further peers wait in the listen queue (default 10,000). */
  maxConnections?: number;
  /**
   * Seconds without input after which a conversation is closed, within an eighth of it (at most
   * a second) after it expires; 0 never (default 300).
   */
  idleTimeout?: number;
  /**
   * Unsent output, in bytes, at which the server stops reading from a peer until half of it has
   * gone out (default 256 KiB): a peer that does not read cannot make the server's buffers grow.
   */
  highWater?: number;
  /**
   * When the address's port is taken, listen on another port of the same host (pyre's way) and
   * log a warning naming both; {@link Server.address} then says where (default false: the
   * server fails to activate with an {@link AddressInUseError}).
   */
  anyPortIfTaken?: boolean;
}

const SERVER_OPTIONS: Rules<ServerOptions> = {
  address: string,
  name: nonEmptyString,
  maxConnections: integer(1),
  idleTimeout: seconds,
  // Half of a channel's 1 MiB output bound, so that one more reply always fits.
  highWater: integer(1, 512 * 1024, 'an integer from 1 to 524288 bytes'),
  anyPortIfTaken: boolean,
};

/**
 * The base class of network services (pyre's `server`). `activate` opens a port at
 * {@link address} and accepts connections; each is offered to {@link validate}, then
 * {@link connect}ed, and {@link process} is called whenever its peer has sent something.
 * Subclasses override `process` (and `validate`, `busy`).
 *
 * The server protects itself: a connection limit, an idle timeout, backpressure against peers
 * that do not read, and a peer that resets or makes `process` throw ends only its own
 * conversation.
 */
export class Server implements Service {
  /** The address asked for; after {@link activate}, the address really bound. */
  address: string;
  /** The application given to {@link activate}. */
  application: unknown = null;
  /** The dispatcher given to {@link activate}. */
  dispatcher: Dispatcher | null = null;
  readonly name: string;
  readonly maxConnections: number;
  readonly idleTimeout: number;
  readonly highWater: number;
  /** Whether a taken port makes the server listen on another (see {@link ServerOptions.anyPortIfTaken}). */
  readonly anyPortIfTaken: boolean;
  readonly info: LogChannel;
  readonly debug: LogChannel;
  readonly warning: LogChannel;
  readonly error: LogChannel;

  #port: Channel | null = null;
  /** Set while activate resolves the address's host name. */
  #resolving = false;
  #accepting: HandlerId | null = null;
  /** Conversations by channel, with the time of their last input, oldest first. */
  readonly #conversations = new Map<Channel, number>();
  #idleAlarm: HandlerId | null = null;
  /** Set while draining: settles once the last conversation has ended. */
  #drained: { promise: Promise<void>; resolve: () => void } | null = null;
  /** Channels closed while draining, which may still be flushing; shutdown ends them. */
  readonly #closing = new Set<Channel>();
  /** Conversations whose peer is not reading its replies: their requests wait. */
  readonly #paused = new Set<Channel>();

  constructor(options: ServerOptions = {}) {
    // A typo in a configuration file would otherwise be silently ignored. Subclasses take their
    // own options out before passing the rest here.
    checkOptions(new.target.name, options, SERVER_OPTIONS);
    const {
      address = 'ip4:127.0.0.1:0',
      name = new.target.name.toLowerCase(),
      maxConnections = 10_000,
      idleTimeout = 300,
      highWater = 256 * 1024,
      anyPortIfTaken = false,
    } = options;
    this.address = address;
    this.name = name;
    this.maxConnections = maxConnections;
    this.idleTimeout = idleTimeout;
    this.highWater = highWater;
    this.anyPortIfTaken = anyPortIfTaken;
    this.info = journal.channel(name, 'info');
    this.debug = journal.channel(name, 'debug');
    this.warning = journal.channel(name, 'warning');
    this.error = journal.channel(name, 'error');
  }

  /** How many conversations are open. */
  get connections(): number {
    return this.#conversations.size;
  }

  /** How many conversations are paused because their peer is not reading its replies. */
  get paused(): number {
    return this.#paused.size;
  }

  /**
   * Grabs a port at {@link address} and waits for connections on `dispatcher`. An address that
   * names a host (other than `localhost`) is resolved first, without blocking the loop: activate
   * then returns a promise, which a node awaits (see {@link resolveAddress}).
   */
  activate(application: unknown, dispatcher: Dispatcher): boolean | Promise<boolean> {
    if (this.#port !== null || this.#resolving) {
      throw new NexusError(`${this.name} is already active at ${this.address}`);
    }
    if (!needsResolving(this.address)) return this.#activate(application, dispatcher);
    this.#resolving = true;
    return resolveAddress(this.address).then(
      (address) => {
        this.#resolving = false;
        this.address = address;
        return this.#activate(application, dispatcher);
      },
      (error: unknown) => {
        this.#resolving = false;
        throw error;
      },
    );
  }

  #activate(application: unknown, dispatcher: Dispatcher): boolean {
    let listener: Channel;
    try {
      listener = port(this.address, { anyPortIfTaken: this.anyPortIfTaken });
    } catch (error) {
      if (!(error instanceof AddressInUseError) || this.address.startsWith('unix:')) throw error;
      throw new AddressInUseError(
        `${error.message}; a server with anyPortIfTaken listens on another port instead`,
        error.code,
        { cause: error },
      );
    }
    this.application = application;
    this.dispatcher = dispatcher;
    this.#port = listener;
    const requested = this.address;
    this.address = listener.address ?? requested;
    // Compare ports, not text: `localhost:7000` is bound as `ip4:127.0.0.1:7000`.
    const wanted = requested.startsWith('unix:') ? '' : requested.split(':').at(-1);
    if (wanted && wanted !== '0' && wanted !== this.address.split(':').at(-1)) {
      this.warning.log(`${requested} was taken; listening at ${this.address} instead`);
    }
    this.info.log(() => `listening at ${this.address}`);
    this.#listen();
    return true;
  }

  /** Accepts the peers waiting on `channel` (the listener), up to the connection limit. */
  acknowledge(channel: Channel): boolean {
    while (this.#conversations.size < this.maxConnections) {
      const peer = channel.accept();
      if (peer === null) return true;
      const address = peer.peer ?? 'unknown';
      let welcome: unknown = false;
      try {
        welcome = this.validate(peer, address);
      } catch (error) {
        this.error.log(() => `validate(${address}) threw, refusing the peer: ${describe(error)}`);
      }
      if (!welcome) {
        this.debug.log(() => `refused ${address}`);
        peer.close();
        continue;
      }
      this.connect(peer, address);
    }
    this.warning.log(() => `at its limit of ${this.maxConnections} connections; new peers wait`);
    return false;
  }

  /** Whether to talk to the peer at `address`: yes, unless a subclass says otherwise. */
  validate(_channel: Channel, _address: string): unknown {
    return true;
  }

  /** Starts a conversation: {@link process} runs whenever the peer has sent something. */
  connect(channel: Channel, address: string): unknown {
    this.debug.log(() => `connected to ${address}`);
    this.#conversations.set(channel, performance.now());
    this.#armIdleAlarm();
    this.#loop().whenReadReady(channel, this.#serve);
    return true;
  }

  /**
   * Continues the conversation on `channel`: read what the peer sent and answer it. A truthy
   * return keeps the conversation going. The default closes the channel, as pyre's does.
   */
  process(channel: Channel): unknown {
    channel.close();
    return false;
  }

  /**
   * Whether a request is half received or half answered on `channel`. A draining server closes
   * the conversations that are not busy at once and gives the busy ones time to finish.
   */
  busy(_channel: Channel): boolean {
    return false;
  }

  /**
   * Sends `data` to the peer, all of it or none: throws {@link ChannelFullError} if the channel's
   * output bound cannot take it (backpressure keeps well clear of that).
   */
  reply(channel: Channel, data: Buffer | string): void {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const accepted = channel.write(bytes);
    if (accepted < bytes.length) {
      channel.abort();
      throw new ChannelFullError(
        `${this.name}: a ${bytes.length}-byte reply to ${channel.peer ?? 'a peer'} does not fit its output bound`,
        'ERR_NEXUS_CHANNEL_FULL',
      );
    }
  }

  /** Stops accepting and closes idle conversations; resolves once the busy ones have finished. */
  drain(): Promise<void> {
    if (this.#drained === null) {
      let resolve = () => {};
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#drained = { promise, resolve };
      this.#closePort();
      for (const channel of this.#conversations.keys()) {
        if (!this.busy(channel)) this.#hangup(channel);
      }
      this.#settleDrain();
    }
    return this.#drained.promise;
  }

  /** Closes the port and every conversation, dropping output the peers have not taken. */
  shutdown(): void {
    this.#closePort();
    if (this.#idleAlarm !== null) this.dispatcher?.cancel(this.#idleAlarm);
    this.#idleAlarm = null;
    for (const channel of [...this.#conversations.keys(), ...this.#closing]) channel.abort();
    this.#conversations.clear();
    this.#closing.clear();
    this.#paused.clear();
    this.#drained?.resolve();
    this.#drained = null;
  }

  #serve = (channel: Channel): boolean => {
    const conversations = this.#conversations;
    if (!conversations.has(channel)) return false;
    // The time is updated in place. Keeping the map in order of last input (delete, then set)
    // made V8 rehash the whole map every few hundred requests: 3.8 µs a request at 10,000
    // conversations.
    if (this.idleTimeout !== 0) conversations.set(channel, performance.now());
    let keep: unknown;
    try {
      keep = this.process(channel);
    } catch (error) {
      this.#fail(channel, error);
      return false;
    }
    if (channel.closed) {
      this.#forget(channel);
      return false;
    }
    if (this.#drained !== null && !this.busy(channel)) {
      this.#hangup(channel);
      return false;
    }
    if (!keep) return false;
    if (channel.pendingOutput >= this.highWater) {
      this.#pause(channel);
      return false;
    }
    return true;
  };

  /** Stops reading from a peer that does not read its replies, until half of them have gone. */
  #pause(channel: Channel): void {
    this.debug.log(() => `${channel.peer} is not reading; pausing its requests`);
    this.#paused.add(channel);
    this.#loop().whenWriteReady(channel, () => {
      if (channel.pendingOutput > this.highWater / 2) return true;
      this.#paused.delete(channel);
      // What the peer sent meanwhile may already be buffered: serve it now, not at its next send.
      if (this.#serve(channel)) this.#loop().whenReadReady(channel, this.#serve);
      return false;
    });
  }

  #fail(channel: Channel, error: unknown): void {
    const who = channel.peer ?? 'a peer';
    if (error instanceof ConnectionResetError) {
      this.debug.log(() => `${who} reset the connection`);
    } else if (error instanceof NexusError) {
      this.warning.log(() => `closing ${who}: ${error.message}`);
    } else {
      this.error.log(() => `process() threw for ${who}, closing it: ${describe(error)}`);
    }
    channel.abort();
    this.#forget(channel);
  }

  /** Ends a conversation, letting its last replies go out. */
  #hangup(channel: Channel): void {
    channel.close();
    this.#closing.add(channel);
    this.#forget(channel);
  }

  #forget(channel: Channel): void {
    this.#paused.delete(channel);
    if (!this.#conversations.delete(channel)) return;
    if (this.#drained !== null) {
      this.#settleDrain();
    } else if (this.#accepting === null && this.#port !== null) {
      this.#listen();
    }
  }

  #settleDrain(): void {
    if (this.#conversations.size === 0) this.#drained?.resolve();
  }

  #listen(): void {
    const listener = this.#port;
    if (listener === null || this.#conversations.size >= this.maxConnections) return;
    this.#accepting = this.#loop().whenReadReady(listener, (channel) => {
      let keep: unknown;
      try {
        keep = this.acknowledge(channel);
      } catch (error) {
        // Out of descriptors, most likely; the listener stays readable, so retry shortly
        // rather than spin.
        this.error.log(() => `accepting failed, retrying in 0.1 s: ${describe(error)}`);
        this.#accepting = this.#loop().alarm(0.1, () => {
          this.#accepting = null;
          this.#listen();
        });
        return false;
      }
      if (!keep) this.#accepting = null;
      return keep;
    });
  }

  #closePort(): void {
    if (this.#accepting !== null) this.dispatcher?.cancel(this.#accepting);
    this.#accepting = null;
    this.#port?.close();
    this.#port = null;
  }

  #armIdleAlarm(): void {
    if (this.idleTimeout === 0 || this.#idleAlarm !== null) return;
    this.#idleAlarm = this.#loop().alarm(this.idleTimeout, this.#sweep);
  }

  /**
   * Closes the conversations idle for too long. Runs again when the next one would be, but no
   * sooner than an eighth of the timeout (at most a second) later, since each run looks at every
   * conversation.
   */
  #sweep = (): number | undefined => {
    const limit = this.idleTimeout * 1000;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [channel, last] of this.#conversations) {
      const left = last + limit - now;
      if (left > 0) {
        next = Math.min(next, left);
        continue;
      }
      this.debug.log(() => `${channel.peer} idle for ${this.idleTimeout} s, closing`);
      channel.abort();
      this.#forget(channel);
    }
    if (next === Number.POSITIVE_INFINITY) {
      this.#idleAlarm = null;
      return undefined;
    }
    return Math.max(next, Math.min(limit / 8, 1000)) / 1000;
  };

  #loop(): Dispatcher {
    if (this.dispatcher === null) throw new NexusError(`${this.name} is not active: call activate() first`);
    return this.dispatcher;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
