// Imported: the global `Buffer` is a getter that V8 looks up anew on every use.
import { Buffer } from 'node:buffer';
// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import { AddressInUseError, ChannelFullError, ConnectionResetError, NexusError } from '../errors.js';
import { type Channel, needsResolving, port, resolveAddress } from '../ipc/channel.js';
import type { Dispatcher, HandlerId } from '../ipc/dispatcher.js';
import { boolean, checkOptions, integer, nonEmptyString, type Rule, type Rules, string } from '../options.js';
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
   * Seconds without input after which a conversation is closed; 0 never (default 300). A paused
   * conversation (see {@link ServerOptions.highWater}) is not idle, only unheard:
   * {@link ServerOptions.drainTimeout} covers it instead. This and the other deadlines are
   * enforced within an eighth of the shortest (at most a second) after they expire.
   */
  idleTimeout?: number;
  /**
   * Seconds a request may take to arrive whole once part of it has; then the conversation is
   * closed, so that a peer sending a byte a second cannot hold it for ever. 0 never (default 60,
   * as nginx's `client_header_timeout` and Node's `headersTimeout`: a request here is one
   * protocol message). Only the service can tell part of a request from a whole one: the
   * deadline runs while {@link Server.receiving} says so, and restarts whenever the service
   * answers the peer with {@link Server.reply}, so that a peer streaming requests back to back is
   * never taken for a slow one.
   */
  requestTimeout?: number;
  /**
   * Seconds output may wait with none of it going out, counted from the last time some did: the
   * replies of a paused conversation (see {@link ServerOptions.highWater}), or the last replies
   * of a conversation already ended with `close()`, which would otherwise keep its socket for as
   * long as the peer does not read. Then the channel is aborted, dropping that output. 0 never
   * (default 60, as nginx's `send_timeout`).
   */
  drainTimeout?: number;
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

/** A deadline in seconds, 0 for none; below 1e9, the longest alarm a dispatcher sets. */
const timeout: Rule = {
  expected: 'a non-negative number of seconds under 1e9',
  range: true,
  accepts: (v) => typeof v === 'number' && v >= 0 && v < 1e9,
};

const SERVER_OPTIONS: Rules<ServerOptions> = {
  address: string,
  name: nonEmptyString,
  maxConnections: integer(1),
  idleTimeout: timeout,
  requestTimeout: timeout,
  drainTimeout: timeout,
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
 * The server protects itself: a connection limit; deadlines for silent peers
 * ({@link ServerOptions.idleTimeout}), for requests that arrive too slowly
 * ({@link ServerOptions.requestTimeout}) and for output that does not go out
 * ({@link ServerOptions.drainTimeout}); backpressure against peers that do not read; and a peer
 * that resets or makes `process` throw ends only its own conversation.
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
  readonly requestTimeout: number;
  readonly drainTimeout: number;
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
  /** Conversations by channel, with their clocks. */
  readonly #conversations = new Map<Channel, Conversation>();
  /** Conversations whose peer is not reading its replies: their requests wait. */
  readonly #paused = new Map<Channel, Outflow>();
  /** Ended conversations whose last output is still going out, each holding its socket. */
  readonly #closing = new Map<Channel, Outflow>();
  /** The one alarm that enforces every deadline, and when it runs next. */
  #sweeper: HandlerId | null = null;
  #sweepAt = 0;
  /** Whether a conversation's input is timed: for the idle or the request deadline. */
  readonly #clocked: boolean;
  /** The channel {@link reply} last answered: a request on it was whole. */
  #answered: Channel | null = null;
  /** Set while draining: settles once the last conversation has ended. */
  #drained: { promise: Promise<void>; resolve: () => void } | null = null;

  constructor(options: ServerOptions = {}) {
    // A typo in a configuration file would otherwise be silently ignored. Subclasses take their
    // own options out before passing the rest here.
    checkOptions(new.target.name, options, SERVER_OPTIONS);
    const {
      address = 'ip4:127.0.0.1:0',
      name = new.target.name.toLowerCase(),
      maxConnections = 10_000,
      idleTimeout = 300,
      requestTimeout = 60,
      drainTimeout = 60,
      highWater = 256 * 1024,
      anyPortIfTaken = false,
    } = options;
    this.address = address;
    this.name = name;
    this.maxConnections = maxConnections;
    this.idleTimeout = idleTimeout;
    this.requestTimeout = requestTimeout;
    this.drainTimeout = drainTimeout;
    this.#clocked = idleTimeout !== 0 || requestTimeout !== 0;
    this.highWater = highWater;
    this.anyPortIfTaken = anyPortIfTaken;
    this.info = journal.channel(name, 'info');
    this.debug = journal.channel(name, 'debug');
    this.warning = journal.channel(name, 'warning');
    this.error = journal.channel(name, 'error');
  }

  /** How many conversations are open, paused ones included. */
  get connections(): number {
    return this.#conversations.size;
  }

  /**
   * How many ended conversations still hold their socket while their last output goes out (to
   * a peer that does not read it, for {@link ServerOptions.drainTimeout} at most). With
   * {@link connections}, what the server holds: once both are 0, it holds no socket but its port.
   */
  get closing(): number {
    for (const channel of this.#closing.keys()) {
      if (channel.fd === null) this.#closing.delete(channel);
    }
    return this.#closing.size;
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
      try {
        this.connect(peer, address);
      } catch (error) {
        // This peer's conversation could not begin; the listener and the others carry on.
        this.error.log(() => `connect(${address}) threw, closing the peer: ${describe(error)}`);
        peer.abort();
        this.#forget(peer);
      }
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
    this.#conversations.set(channel, { heard: performance.now(), began: -1 });
    if (this.#clocked) this.#sweepWithin(Math.min(this.#limit(this.idleTimeout), this.#limit(this.requestTimeout)));
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
   * Whether part of a request has arrived on `channel` and the rest has not. Asked after each
   * {@link process}, it runs the request deadline ({@link ServerOptions.requestTimeout}); a
   * {@link reply} to the peer restarts it. The default says no: only a service that holds
   * incomplete requests knows, and overrides this (the key-value example: while it holds part of
   * a line). Unlike {@link busy}, it is not true while a whole request is being answered, which
   * may take as long as it takes.
   */
  receiving(_channel: Channel): boolean {
    return false;
  }

  /**
   * Sends `data` to the peer, all of it or none: throws {@link ChannelFullError} if the channel's
   * output bound cannot take it (backpressure keeps well clear of that).
   */
  reply(channel: Channel, data: Buffer | string): void {
    this.#answered = channel;
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
    if (this.#sweeper !== null) this.dispatcher?.cancel(this.#sweeper);
    this.#sweeper = null;
    for (const channel of [...this.#conversations.keys(), ...this.#closing.keys()]) channel.abort();
    this.#conversations.clear();
    this.#closing.clear();
    this.#paused.clear();
    this.#drained?.resolve();
    this.#drained = null;
  }

  #serve = (channel: Channel): boolean => {
    // The clocks are changed in place, with no map written per request: keeping the map in
    // order of last input (delete, then set) made V8 rehash the whole map every few hundred
    // requests, 3.8 µs a request at 10,000 conversations.
    const conversation = this.#conversations.get(channel);
    if (conversation === undefined) return false;
    const now = this.#clocked ? performance.now() : 0;
    conversation.heard = now;
    this.#answered = null;
    let keep: unknown;
    try {
      keep = this.process(channel);
    } catch (error) {
      this.#fail(channel, error);
      return false;
    }
    if (channel.closed) {
      this.#end(channel);
      return false;
    }
    if (this.requestTimeout !== 0) {
      // A request begins when the service first holds part of one; a reply means the one it
      // held was whole, so what it holds now began with this input.
      if (!this.receiving(channel)) conversation.began = -1;
      else if (conversation.began < 0 || this.#answered === channel) conversation.began = now;
    }
    if (this.#drained !== null && !this.busy(channel)) {
      this.#hangup(channel);
      return false;
    }
    if (!keep) return false;
    const pending = channel.pendingOutput;
    if (pending >= this.highWater) {
      this.#pause(channel, conversation, pending);
      return false;
    }
    return true;
  };

  /** Stops reading from a peer that does not read its replies, until half of them have gone. */
  #pause(channel: Channel, conversation: Conversation, pending: number): void {
    this.debug.log(() => `${channel.peer} is not reading; pausing its requests`);
    this.#paused.set(channel, { left: pending, since: performance.now() });
    this.#sweepWithin(this.#drainLook());
    this.#loop().whenWriteReady(channel, () => {
      if (channel.pendingOutput > this.highWater / 2) return true;
      this.#paused.delete(channel);
      // The time it waited was the server's, not the peer's: its request clock starts again.
      conversation.began = -1;
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
    this.#end(channel);
  }

  /**
   * Forgets a conversation whose channel has been closed; while its last output goes out, the
   * channel is among those {@link closing}, under the drain deadline.
   */
  #end(channel: Channel): void {
    this.#forget(channel);
    if (channel.fd === null) return; // nothing was left to send
    this.#closing.set(channel, { left: channel.pendingOutput, since: performance.now() });
    this.#sweepWithin(this.#drainLook());
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

  /** Makes sure the sweep runs within `ms` milliseconds. */
  #sweepWithin(ms: number): void {
    const at = performance.now() + ms;
    if (this.#sweeper !== null) {
      if (this.#sweepAt <= at) return;
      this.dispatcher?.cancel(this.#sweeper);
    }
    this.#sweepAt = at;
    this.#sweeper = this.#loop().alarm(ms / 1000, this.#sweep);
  }

  /** A deadline in milliseconds, infinite when it is off. */
  #limit(seconds: number): number {
    return seconds === 0 ? Number.POSITIVE_INFINITY : seconds * 1000;
  }

  /**
   * How often to look at output that is not going out: often enough to see when it last moved.
   * With no drain deadline, once a second still, to let go of the channels that have finished.
   */
  #drainLook(): number {
    return Math.min(this.#limit(this.drainTimeout) / 8, 1000);
  }

  /**
   * Enforces every deadline: closes the conversations idle for too long or receiving a request
   * for too long, and aborts the channels whose output has not moved for too long. Runs again
   * when the next deadline would expire, but no sooner than an eighth of the shortest (at most a
   * second) later, since each run looks at every conversation.
   */
  #sweep = (): number | undefined => {
    // While it runs, the sweep works out its own next run: channels it ends ask for none.
    this.#sweepAt = Number.NEGATIVE_INFINITY;
    const now = performance.now();
    const idle = this.#limit(this.idleTimeout);
    const request = this.#limit(this.requestTimeout);
    let next = Number.POSITIVE_INFINITY;
    if (this.#clocked) {
      for (const [channel, conversation] of this.#conversations) {
        if (channel.closed) {
          this.#end(channel); // by the service, outside process()
          continue;
        }
        if (this.#paused.has(channel)) continue; // its output is what is late
        const quiet = conversation.heard + idle - now;
        if (quiet <= 0) {
          this.debug.log(() => `${channel.peer} idle for ${this.idleTimeout} s, closing`);
          channel.abort();
          this.#forget(channel);
          continue;
        }
        const late = conversation.began < 0 ? Number.POSITIVE_INFINITY : conversation.began + request - now;
        if (late <= 0) {
          this.warning.log(
            () => `${channel.peer} sent part of a request and not the rest within ${this.requestTimeout} s, closing`,
          );
          channel.abort();
          this.#forget(channel);
          continue;
        }
        next = Math.min(next, quiet, late);
      }
      // A request may begin at any moment, due no sooner than this.
      if (this.#conversations.size > 0) next = Math.min(next, request);
    }
    for (const [channel, outflow] of this.#paused) {
      if (channel.closed) {
        this.#end(channel);
      } else if (this.#stuck(channel, outflow, now)) {
        this.warning.log(() => `${channel.peer} has read none of its replies for ${this.drainTimeout} s, aborting`);
        channel.abort();
        this.#forget(channel);
      }
    }
    for (const [channel, outflow] of this.#closing) {
      if (channel.fd === null) {
        this.#closing.delete(channel); // its last output went out
      } else if (this.#stuck(channel, outflow, now)) {
        this.warning.log(
          () => `${channel.peer} has read none of its last replies for ${this.drainTimeout} s, aborting`,
        );
        channel.abort();
        this.#closing.delete(channel);
      }
    }
    if (this.#paused.size > 0 || this.#closing.size > 0) next = Math.min(next, this.#drainLook());
    if (next === Number.POSITIVE_INFINITY) {
      this.#sweeper = null;
      return undefined;
    }
    const soonest = Math.min(idle / 8, request / 8, this.#drainLook(), 1000);
    const wait = Math.max(next, soonest);
    this.#sweepAt = now + wait;
    return wait / 1000;
  };

  /**
   * Whether the output of `channel` has not moved for the drain deadline; notes when it last
   * moved. It only goes down when the peer reads: no request adds to a paused or ended
   * conversation's output.
   */
  #stuck(channel: Channel, outflow: Outflow, now: number): boolean {
    const left = channel.pendingOutput;
    if (left < outflow.left) outflow.since = now;
    outflow.left = left;
    return now - outflow.since >= this.#limit(this.drainTimeout);
  }

  #loop(): Dispatcher {
    if (this.dispatcher === null) throw new NexusError(`${this.name} is not active: call activate() first`);
    return this.dispatcher;
  }
}

/** What the sweep knows of one conversation: changed in place, never replaced (see `#serve`). */
interface Conversation {
  /** When its peer was last heard (`performance.now()`). */
  heard: number;
  /** When the request it is receiving began, or -1 between requests. */
  began: number;
}

/** Output that waits for a peer: of a paused conversation, or of one ended and still flushing. */
interface Outflow {
  /** The bytes left at the last look. */
  left: number;
  /** When they last went down, or the wait began. */
  since: number;
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
