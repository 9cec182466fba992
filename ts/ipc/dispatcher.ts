import { DispatcherClosedError, translate } from '../errors.js';
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
   * Called when a handler throws (or returns a promise that rejects); the handler is dropped and
   * the loop goes on. Without it, the exception rejects the `watch()` promise and the loop stops
   * (other registrations stay).
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

/** Options of a {@link Dispatcher.child}. */
export interface ChildOptions {
  /**
   * Called when a handler registered through the child throws, or returns a promise that
   * rejects; the handler is dropped and the loop goes on. Default: the parent's `onError`, and
   * without one the exception rejects the loop's `watch()` promise.
   */
  onError?: DispatcherOptions['onError'];
}

const CHILD_OPTIONS: Rules<ChildOptions> = { onError: func };

/** Makes the constructor share a parent's loop instead of opening one (kept out of the public options). */
const PARENT = Symbol('parent');

/** What a child keeps: its registrations, with their channels, and its own children. */
interface Family {
  readonly parent: Dispatcher;
  readonly registrations: Map<HandlerId, Channel | null>;
  readonly children: Set<Dispatcher>;
  closed: boolean;
  /** The number of registrations at which those of closed channels are forgotten next. */
  sweepAt: number;
}

/**
 * Handlers on a channel that closes are dropped by the loop without being called, so a child
 * forgets them in a sweep once its registrations double: a long-lived service's table stays
 * the size of its open channels.
 */
const SWEEP = 64;

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
  /** Set for a child: what it registered, so that closing it drops exactly that. */
  readonly #family: Family | null;
  /** Microseconds this dispatcher polls before it sleeps (see {@link DispatcherOptions.spin}). */
  readonly spin: number;

  constructor(options: DispatcherOptions = {}) {
    const parent = (options as { [PARENT]?: Dispatcher })[PARENT];
    if (parent !== undefined) {
      this.#native = parent.#native;
      this.#onError = options.onError ?? parent.#onError;
      this.#family = { parent, registrations: new Map(), children: new Set(), closed: false, sweepAt: SWEEP };
      this.spin = parent.spin;
      return;
    }
    checkOptions('Dispatcher', options, DISPATCHER_OPTIONS);
    const { spin = 0 } = options;
    this.#native = new native.Dispatcher(spin);
    this.#onError = options.onError;
    this.#family = null;
    this.spin = spin;
  }

  /**
   * A dispatcher of its own on this one's loop, for one part of an application (a node gives
   * one to each service). It is a `Dispatcher` like any other, but it keeps the ids of what is
   * registered through it: {@link cancel} drops only those, and {@link close} drops all of them
   * (and its own children's) and leaves the loop running; a closed child takes no more
   * registrations (`ERR_NEXUS_DISPATCHER_CLOSED`). The loop's own state is shared:
   * `watch`, `stop`, `watching`, `handlerCount` and `spin` are the parent's.
   *
   * With `onError`, a handler of the child that throws is reported there instead of ending the
   * loop, which is how one part's failure is kept from the others.
   */
  child(options: ChildOptions = {}): Dispatcher {
    checkOptions('Dispatcher.child', options, CHILD_OPTIONS);
    this.#checkOpen();
    const child = new Dispatcher({ ...options, [PARENT]: this } as DispatcherOptions);
    this.#family?.children.add(child);
    return child;
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
    this.#checkOpen();
    const onError = this.#onError;
    const registrations = this.#family?.registrations;
    if (registrations === undefined && onError === undefined) {
      return this.#call(() => this.#native.alarm(seconds, handler));
    }
    let id: HandlerId = 0;
    const call = (timestamp: number) => {
      let again: unknown;
      try {
        again = handler(timestamp);
      } catch (error) {
        registrations?.delete(id);
        if (onError === undefined) throw error;
        // Dropped before anyone hears of it: promise jobs run before the loop would drop it.
        this.#forget(id);
        onError(error, null);
        return undefined;
      }
      if (!(typeof again === 'number' && again >= 0 && again < MAX_ALARM)) {
        registrations?.delete(id);
        if (onError !== undefined && isPromise(again)) again.then(undefined, (error: unknown) => onError(error, null));
      }
      return again;
    };
    id = this.#call(() => this.#native.alarm(seconds, call));
    this.#own(id, null);
    return id;
  }

  /**
   * Drops a handler or alarm by the id its registration returned; returns whether it was there.
   * A {@link child} drops only what was registered through it.
   */
  cancel(id: HandlerId): boolean {
    const family = this.#family;
    if (family !== null && !family.registrations.delete(id)) return false;
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
   * closing again does nothing. A {@link child} drops what was registered through it and its
   * children, and leaves the loop alone.
   */
  close(): void {
    const family = this.#family;
    if (family === null) {
      this.#native.close();
      return;
    }
    if (family.closed) return;
    family.closed = true;
    family.parent.#family?.children.delete(this);
    for (const child of [...family.children]) child.close();
    for (const id of family.registrations.keys()) this.#forget(id);
    family.registrations.clear();
  }

  /** Whether {@link watch} is running. */
  get watching(): boolean {
    return this.#native.watching;
  }

  /** How many handlers and alarms are registered on the loop (a {@link child}'s included). */
  get handlerCount(): number {
    return this.#native.handlerCount;
  }

  #when(channel: Channel, kind: number, handler: Handler, method: string): HandlerId {
    if (!(channel instanceof Channel)) {
      throw new TypeError(`${method}: expected a Channel, got ${describe(channel)}`);
    }
    checkHandler(method, handler);
    this.#checkOpen();
    const onError = this.#onError;
    const registrations = this.#family?.registrations;
    if (registrations === undefined && onError === undefined) {
      return this.#call(() => this.#native.when(channel.handle, kind, () => handler(channel)));
    }
    let id: HandlerId = 0;
    const call = () => {
      let keep: unknown;
      try {
        keep = handler(channel);
      } catch (error) {
        registrations?.delete(id);
        if (onError === undefined) throw error;
        this.#forget(id);
        onError(error, channel);
        return false;
      }
      // The common answer of a server's handler, first: this wrapper runs for every request.
      if (keep === true) return true;
      if (!keep) {
        registrations?.delete(id);
      } else if (onError !== undefined && isPromise(keep)) {
        keep.then(undefined, (error: unknown) => {
          registrations?.delete(id);
          this.#forget(id);
          onError(error, channel);
        });
      }
      return keep;
    };
    id = this.#call(() => this.#native.when(channel.handle, kind, call));
    this.#own(id, channel);
    return id;
  }

  /** Records a child's registration, forgetting those of closed channels now and then. */
  #own(id: HandlerId, channel: Channel | null): void {
    const family = this.#family;
    if (family === null) return;
    const registrations = family.registrations;
    registrations.set(id, channel);
    if (registrations.size < family.sweepAt) return;
    for (const [key, owner] of registrations) {
      if (owner?.closed) registrations.delete(key);
    }
    family.sweepAt = Math.max(SWEEP, 2 * registrations.size);
  }

  #checkOpen(): void {
    if (this.#family?.closed)
      throw new DispatcherClosedError('this dispatcher is closed', 'ERR_NEXUS_DISPATCHER_CLOSED');
  }

  /** Drops a registration for the dispatcher's own reasons; a closed loop has dropped it already. */
  #forget(id: HandlerId): void {
    if (!this.#native.closed) this.#native.cancel(id);
  }

  #call<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw translate(e);
    }
  }
}

/** Whether a handler returned a promise (an async handler), whose rejection is a throw. */
function isPromise(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
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
