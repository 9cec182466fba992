import { type DispatcherClosedError, translate } from '../errors.js';
import { type NativeDispatcher, native } from '../native.js';
import { checkOptions, func, integer, type Rules } from '../options.js';
import { Channel } from './channel.js';

/** A channel handler: called with the ready channel; a truthy return keeps it registered. */
export type Handler = (channel: Channel) => unknown;

/**
 * An alarm handler: called with the time (seconds since the epoch). Returning a number re-arms it
 * that many seconds later; anything else (including no return) drops it.
 */
export type AlarmHandler = (timestamp: number) => unknown;

/** Names a registration, for {@link Dispatcher.cancel}. */
export type HandlerId = number;

/** Options of a {@link Dispatcher}. */
export interface DispatcherOptions {
  /**
   * Called when a handler throws; the handler is dropped and the loop goes on. Without it, the
   * exception rejects the `watch()` promise and the loop stops (other registrations stay).
   */
  onError?: (error: unknown, channel: Channel | null) => void;
  /**
   * Microseconds to poll, yielding the CPU, before sleeping when a turn woken by I/O leaves
   * nothing to do (default 0: sleep at once). For a process whose peer answers within microseconds, such as a
   * crew member between tasks: waking a sleeping process costs the peer about 20 µs. A poll that
   * finds nothing stops the polling until a pause, measured asleep, is that short again, so a
   * dispatcher fed slowly sleeps as usual. The rest of the thread's loop goes first: a poll does
   * not start while a timer or an immediate is due, and it ends at the next timer (Node's or an
   * alarm) and, on Linux, as soon as one of Node's own sockets has news.
   */
  spin?: number;
}

const DISPATCHER_OPTIONS: Rules<DispatcherOptions> = {
  onError: func,
  spin: integer(0, 1_000_000, 'a whole number of microseconds from 0 to 1000000'),
};

const READ = 0;
const WRITE = 1;
const EXCEPTION = 2;
/** Alarms are set less than this many seconds ahead (the addon's limit). */
const MAX_ALARM = 1e9;

/**
 * pyre's event dispatcher, running inside Node's own event loop: timers, promises, sockets and
 * child processes keep working while it watches, and promise jobs run after every handler.
 *
 * Readiness is level-triggered, as in pyre: a handler that leaves data unread is called again.
 */
export class Dispatcher {
  readonly #native: NativeDispatcher;
  readonly #onError: DispatcherOptions['onError'];
  /** Microseconds this dispatcher polls before it sleeps (see {@link DispatcherOptions.spin}). */
  readonly spin: number;

  constructor(options: DispatcherOptions = {}) {
    checkOptions('Dispatcher', options, DISPATCHER_OPTIONS);
    const { spin = 0 } = options;
    this.#native = new native.Dispatcher(spin);
    this.#onError = options.onError;
    this.spin = spin;
  }

  /** Calls `handler(channel)` whenever `channel` has data, an end of file or a connection to accept. */
  whenReadReady(channel: Channel, handler: Handler): HandlerId {
    return this.#when(channel, READ, handler, 'whenReadReady');
  }

  /** Calls `handler(channel)` whenever `channel` can take more output (and once it is connected). */
  whenWriteReady(channel: Channel, handler: Handler): HandlerId {
    return this.#when(channel, WRITE, handler, 'whenWriteReady');
  }

  /** Calls `handler(channel)` when an error condition arises on `channel`. */
  whenException(channel: Channel, handler: Handler): HandlerId {
    return this.#when(channel, EXCEPTION, handler, 'whenException');
  }

  /**
   * Calls `handler(timestamp)` after `seconds` (from 0 to less than 1e9, about 31 years); if it
   * returns such a number, again that much later.
   */
  alarm(seconds: number, handler: AlarmHandler): HandlerId {
    if (typeof seconds !== 'number' || !(seconds >= 0 && seconds < MAX_ALARM)) {
      throw new RangeError(
        `alarm: the interval must be a non-negative number of seconds under 1e9, got ${String(seconds)}`,
      );
    }
    checkHandler('alarm', handler);
    const onError = this.#onError;
    const call =
      onError === undefined
        ? handler
        : (timestamp: number) => {
            try {
              return handler(timestamp);
            } catch (error) {
              onError(error, null);
              return undefined;
            }
          };
    return this.#call(() => this.#native.alarm(seconds, call));
  }

  /** Drops a handler or alarm by the id its registration returned; returns whether it was there. */
  cancel(id: HandlerId): boolean {
    return this.#call(() => this.#native.cancel(id));
  }

  /**
   * Runs the loop; the promise settles when {@link stop} is called or nothing is left to wait for
   * (no handlers, no alarms, no output still flushing). It rejects with the exception of a handler
   * that threw, unless `onError` was given.
   */
  watch(): Promise<void> {
    try {
      return this.#native.watch();
    } catch (e) {
      return Promise.reject(translate(e));
    }
  }

  /** Stops the loop after the current handler; registrations stay for the next {@link watch}. */
  stop(): void {
    this.#call(() => this.#native.stop());
  }

  /**
   * Stops (settling {@link watch}), drops every registration and releases the native resources
   * at once: descriptors, handles in Node's loop, and every handler. Called by a handler, that
   * handler finishes first. Every later call but `close` throws a {@link DispatcherClosedError};
   * closing again does nothing.
   */
  close(): void {
    this.#native.close();
  }

  /** Whether {@link watch} is running. */
  get watching(): boolean {
    return this.#native.watching;
  }

  /** How many handlers and alarms are registered. */
  get handlerCount(): number {
    return this.#native.handlerCount;
  }

  #when(channel: Channel, kind: number, handler: Handler, method: string): HandlerId {
    if (!(channel instanceof Channel)) {
      throw new TypeError(`${method}: expected a Channel, got ${describe(channel)}`);
    }
    checkHandler(method, handler);
    const onError = this.#onError;
    const call =
      onError === undefined
        ? () => handler(channel)
        : () => {
            try {
              return handler(channel);
            } catch (error) {
              onError(error, channel);
              return false;
            }
          };
    return this.#call(() => this.#native.when(channel.handle, kind, call));
  }

  #call<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw translate(e);
    }
  }
}

function checkHandler(method: string, handler: unknown): void {
  if (typeof handler !== 'function') {
    throw new TypeError(`${method}: the handler must be a function, got ${describe(handler)}`);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return value.constructor?.name ?? 'an object';
  return typeof value;
}
