import { Dispatcher } from '../ipc/dispatcher.js';
import { type Marshaler, V8Marshaler } from '../ipc/marshaler.js';
import { checkOptions, implementing, instance, nonEmptyString, type Rules } from '../options.js';
import { journal, type LogChannel } from './journal.js';
import { protocol } from './protocol.js';
import { Timer } from './timer.js';

/**
 * pyre's `asynchronous` protocol: the two ingredients of an event-driven application, a
 * marshaler and a dispatcher, and the life cycle that runs them.
 */
export interface Asynchronous {
  /** The serializer that carries objects between peers. */
  readonly marshaler: Marshaler;
  /** The manager of the event loop. */
  readonly dispatcher: Dispatcher;
  /** {@link prepare}, then {@link watch}, then {@link shutdown}; resolves to what watch gave. */
  run(): Promise<unknown>;
  /** Carries out any start-up steps. */
  prepare(): unknown;
  /** Runs the event loop until it is stopped or has nothing left to do. */
  watch(): Promise<unknown>;
  /** Asks the event loop to stop. */
  stop(): void;
  /** Cleans up after the loop has ended. */
  shutdown(): unknown;
}

/** The `asynchronous` protocol; its default implementation is {@link Peer}. */
export const Asynchronous = protocol<Asynchronous>(
  'asynchronous',
  ['run', 'prepare', 'watch', 'stop', 'shutdown'],
  () => Peer,
);

/** Options of a {@link Peer}. */
export interface PeerOptions {
  /** The name of the peer's log channels (default: its class name, in lower case). */
  name?: string;
  /** Default: a {@link V8Marshaler}. */
  marshaler?: Marshaler;
  /** Default: a new {@link Dispatcher}. */
  dispatcher?: Dispatcher;
}

/**
 * The options a Peer takes. A subclass with options of its own takes them out before passing the
 * rest to `super`, as Node does.
 */
export const PEER_OPTIONS: Rules<PeerOptions> = {
  name: nonEmptyString,
  marshaler: implementing('a Marshaler', ['send', 'recv']),
  dispatcher: instance(Dispatcher),
};

/** The base class of components that give an application its event loop (pyre's `peer`). */
export class Peer implements Asynchronous {
  readonly name: string;
  readonly marshaler: Marshaler;
  readonly dispatcher: Dispatcher;
  /** Measures the peer's time; {@link run} starts it. */
  readonly timer: Timer;
  readonly info: LogChannel;
  readonly debug: LogChannel;
  readonly warning: LogChannel;
  readonly error: LogChannel;

  constructor(options: PeerOptions = {}) {
    checkOptions(new.target.name, options, PEER_OPTIONS);
    const { name = new.target.name.toLowerCase(), marshaler = new V8Marshaler(), dispatcher } = options;
    this.name = name;
    this.marshaler = marshaler;
    this.dispatcher = dispatcher ?? new Dispatcher();
    this.timer = new Timer(name);
    this.info = journal.channel(name, 'info');
    this.debug = journal.channel(name, 'debug');
    this.warning = journal.channel(name, 'warning');
    this.error = journal.channel(name, 'error');
  }

  /** Shuts down also when {@link prepare} fails, so that what it started is released. */
  async run(): Promise<unknown> {
    this.timer.start();
    try {
      await this.prepare();
      return await this.watch();
    } finally {
      await this.shutdown();
      this.timer.stop();
    }
  }

  prepare(): unknown {
    return undefined;
  }

  watch(): Promise<unknown> {
    return this.dispatcher.watch();
  }

  stop(): void {
    this.dispatcher.stop();
  }

  shutdown(): unknown {
    return undefined;
  }
}

/** pyre's `peer()`: the base class of components that give an application its event loop. */
export function peer(): typeof Peer {
  return Peer;
}
