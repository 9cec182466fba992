import { NexusError } from '../errors.js';
import type { Dispatcher, HandlerId } from '../ipc/dispatcher.js';
import { checkOptions, describe, integer, nonEmptyString, type Rules, seconds } from '../options.js';
import {
  build,
  type FailureAction,
  type FailurePolicy,
  failurePolicy,
  readConfig,
  type ServiceEntry,
} from './config.js';
import { type Asynchronous, PEER_OPTIONS, Peer, type PeerOptions } from './peer.js';
import { protocol } from './protocol.js';
import { Service } from './service.js';

/** pyre's `nexus` protocol: an asynchronous component that interacts over the network. */
export interface Nexus extends Asynchronous {
  /** Gets ready to serve, on behalf of `application`. */
  prepare(application?: unknown): unknown;
}

/** The `nexus` protocol; its default implementation is {@link Node}. */
export const Nexus = protocol<Nexus>('nexus', ['run', 'prepare', 'watch', 'stop', 'shutdown'], () => Node);

/** A function that makes a service, which a node calls again to restart it. */
export type ServiceMaker = () => Service | Promise<Service>;

/** Options of a {@link Node}. */
export interface NodeOptions extends PeerOptions {
  /**
   * Services by name, made by the application: a service, or a function that makes one, which
   * {@link Node.prepare} calls (and calls again to restart it: a service given as an object can
   * be stopped, not made afresh).
   */
  services?: Record<string, Service | ServiceMaker>;
  /**
   * A configuration naming more services: a JSON file or a module (see `readConfig`). It is read
   * again by {@link Node.reload}.
   */
  config?: string;
  /** Seconds that conversations in progress get to finish once the node is asked to stop (default 5). */
  grace?: number;
  /**
   * What happens to a service whose handler or alarm throws, unless its configuration entry says
   * otherwise (default `'stop'`): it is shut down, the failure is logged on the node's `error`
   * channel with the error's stack, and then see {@link FailurePolicy}.
   */
  onFailure?: FailurePolicy;
  /** Restarts of one service within {@link restartWindow} after which its next failure stops it (default 5). */
  restartLimit?: number;
  /** Seconds over which {@link restartLimit} counts restarts (default 60). */
  restartWindow?: number;
}

const NODE_OPTIONS: Rules<NodeOptions> = {
  ...PEER_OPTIONS,
  services: {
    expected: 'an object mapping names to services',
    accepts: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  },
  config: { expected: 'the path of a configuration file', accepts: nonEmptyString.accepts },
  grace: seconds,
  onFailure: failurePolicy,
  restartLimit: integer(0),
  restartWindow: seconds,
};

/** Why a service is not running: what it threw, and what the node did about it. */
export interface ServiceFailure {
  /** What the service threw (or what its restart threw). */
  readonly error: unknown;
  /** When, in milliseconds since the epoch. */
  readonly time: number;
  /** `'restarting'` while a restart waits its turn; `'stopped'` once the node has given up on it. */
  readonly state: 'restarting' | 'stopped';
  /** How many times it was restarted within the restart window before this failure. */
  readonly restarts: number;
}

/** The pause before a service's first restart, in seconds; each later one within the window doubles it. */
const RESTART_DELAY = 0.1;
/** The longest pause before a restart, in seconds. */
const MAX_RESTART_DELAY = 30;

/** What a {@link Node.reload} did, by service name. */
export interface ReloadReport {
  /** Services that were not running and now are: new in the configuration, or started again after they failed. */
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  /** Services that could not be (re)started; a changed service that failed keeps its old version. */
  failed: { name: string; error: unknown }[];
}

/** Seconds between the wake-ups of the alarm that keeps a watching node's loop from ending. */
const HOLD = 3600;

/** A signal handler of a node; see {@link Node.newSignalIndex}. */
export type SignalHandler = (signal: NodeJS.Signals) => unknown;

/**
 * A peer with a table of named services (pyre's `node`). `prepare` activates them all on the
 * node's dispatcher, `shutdown` shuts them down. With {@link registerSignalHandlers}, SIGHUP
 * reloads the configuration and SIGTERM stops the node gracefully; SIGINT is the application's.
 *
 * Each service is activated with a {@link Dispatcher.child} of the node's dispatcher, so that a
 * handler of one service that throws stops that service alone (all it registered is dropped)
 * and the node applies its {@link FailurePolicy}; the other services carry on.
 */
export class Node extends Peer implements Nexus {
  /**
   * The services that run, by name (before {@link prepare}: those given in the options). A
   * service that failed leaves the table until it runs again; {@link failures} says why.
   */
  readonly services = new Map<string, Service>();
  /** The application given to {@link prepare}. */
  application: unknown = null;
  /** Where the configuration comes from, if anywhere. */
  readonly config: string | null;
  readonly grace: number;
  /** What happens to a service that fails, unless its configuration entry says. */
  readonly onFailure: FailurePolicy;
  readonly restartLimit: number;
  readonly restartWindow: number;

  /** The configured services' entries, to tell what a reload changes. */
  readonly #entries = new Map<string, ServiceEntry>();
  /** The functions given in the options that make services, to make them again. */
  readonly #makers = new Map<string, ServiceMaker>();
  /** The names of the services given in the options as objects, which cannot be made again. */
  readonly #objects = new Set<string>();
  /** The dispatcher each running service was activated with. */
  readonly #loops = new Map<string, Dispatcher>();
  readonly #failures = new Map<string, ServiceFailure>();
  /** When each service was restarted within the restart window (performance.now()). */
  readonly #restarts = new Map<string, number[]>();
  /** The alarms of restarts that wait out their pause. */
  readonly #pending = new Map<string, HandlerId>();
  #index: Map<NodeJS.Signals, SignalHandler> | null = null;
  #listeners: Map<NodeJS.Signals, () => void> | null = null;
  #stopping = false;
  /** Set when a failure's policy is to exit: watch() rejects with it. */
  #fatal: Error | null = null;
  /** Reloads, failures and restarts change the table of services one at a time. */
  #changes: Promise<unknown> = Promise.resolve();

  constructor(options: NodeOptions = {}) {
    checkOptions(new.target.name, options, NODE_OPTIONS);
    const {
      services = {},
      config,
      grace = 5,
      onFailure = 'stop',
      restartLimit = 5,
      restartWindow = 60,
      ...peerOptions
    } = options;
    for (const [name, service] of Object.entries(services)) {
      if (!Service.isImplementedBy(service) && typeof service !== 'function') {
        throw new TypeError(
          `${new.target.name}: option "services" names "${name}", which is not a service: ` +
            `it needs ${Service.methods.join(', ')} (or a function that makes one)`,
        );
      }
    }
    super(peerOptions);
    for (const [name, service] of Object.entries(services)) {
      if (Service.isImplementedBy(service)) {
        this.services.set(name, service);
        this.#objects.add(name);
      } else {
        this.#makers.set(name, service as ServiceMaker);
      }
    }
    this.config = config ?? null;
    this.grace = grace;
    this.onFailure = onFailure;
    this.restartLimit = restartLimit;
    this.restartWindow = restartWindow;
  }

  /** The services that are not running because they failed, and why. */
  get failures(): ReadonlyMap<string, ServiceFailure> {
    return this.#failures;
  }

  /** Reads the configuration, if any, and activates every service with `application`. */
  override async prepare(application: unknown = this): Promise<void> {
    this.application = application;
    this.#stopping = false;
    this.#fatal = null;
    for (const [name, make] of this.#makers) this.services.set(name, await made(name, make));
    if (this.config !== null) {
      for (const entry of (await readConfig(this.config)).values()) {
        if (this.services.has(entry.name)) {
          throw new NexusError(`service "${entry.name}" is named twice: in the options and in ${this.config}`);
        }
        this.services.set(entry.name, await build(entry));
        this.#entries.set(entry.name, entry);
      }
    }
    const active: [string, Service][] = [];
    for (const [name, service] of this.services) {
      try {
        await this.#activate(name, service);
      } catch (cause) {
        for (const [done, started] of active.reverse()) await this.#retire(done, started);
        throw new NexusError(`service "${name}" failed to start: ${(cause as Error).message}`, 'ERR_NEXUS_SERVICE', {
          cause,
        });
      }
      active.push([name, service]);
      this.info.log(() => `service "${name}" started${describeAddress(service)}`);
    }
  }

  /**
   * Runs the loop until the node is stopped, even while it has no service: a reload may shut
   * the last one down before it starts its replacement. A node already asked to stop returns.
   * Rejects when a failed service's policy is to exit, with an error naming the service (its
   * exception is the `cause`).
   */
  override async watch(): Promise<unknown> {
    let result: unknown;
    if (!this.#stopping) {
      const hold = this.dispatcher.alarm(HOLD, () => HOLD);
      try {
        result = await super.watch();
      } finally {
        this.dispatcher.cancel(hold);
      }
    }
    if (this.#fatal !== null) throw this.#fatal;
    return result;
  }

  /**
   * Stops gracefully: listeners close first, idle conversations end, and the ones in progress
   * get {@link grace} seconds to finish. Asking again stops at once.
   */
  override stop(): void {
    if (this.#stopping) {
      this.dispatcher.stop();
      return;
    }
    this.#stopping = true;
    this.info.log('stopping');
    this.#cancelRestarts();
    const drains: Promise<void>[] = [];
    for (const [name, service] of this.services) {
      if (typeof service.drain !== 'function') continue;
      try {
        drains.push(service.drain());
      } catch (error) {
        this.error.log(() => `service "${name}" failed to drain: ${stackOf(error)}`);
      }
    }
    if (drains.length === 0 || !this.dispatcher.watching) {
      this.dispatcher.stop();
      return;
    }
    const deadline = this.dispatcher.alarm(this.grace, () => {
      this.warning.log(() => `conversations still open after ${this.grace} s; stopping anyway`);
      this.dispatcher.stop();
    });
    void Promise.all(drains).then(
      () => {
        this.dispatcher.cancel(deadline);
        this.dispatcher.stop();
      },
      (error: unknown) => {
        this.error.log(() => `a service failed to drain: ${String(error)}`);
        this.dispatcher.stop();
      },
    );
  }

  /** Shuts every service down (the last started first) and lets go of the signals. */
  override async shutdown(): Promise<void> {
    this.#releaseSignals();
    this.#stopping = true;
    this.#cancelRestarts();
    for (const [name, service] of [...this.services].reverse()) await this.#retire(name, service);
    this.info.log('shut down');
  }

  /**
   * Reads the configuration again: starts added services (and those that failed), shuts removed
   * ones down and restarts changed ones; the others, and their conversations, are left alone.
   * Rejects, changing nothing, if the configuration cannot be read. Reloads run one at a time.
   */
  reload(): Promise<ReloadReport> {
    return this.#change(() => this.#reload());
  }

  /** Dispatches `signal` to its handler in the signal index. */
  signal(signal: NodeJS.Signals): unknown {
    this.#index ??= this.newSignalIndex();
    const handler = this.#index.get(signal);
    if (handler === undefined) {
      throw new NexusError(`${this.name} has no handler for ${signal}`, 'ERR_NEXUS_SIGNAL');
    }
    return handler(signal);
  }

  /** The signal table: SIGHUP reloads, SIGTERM stops. Override to change it. */
  newSignalIndex(): Map<NodeJS.Signals, SignalHandler> {
    return new Map<NodeJS.Signals, SignalHandler>([
      [
        'SIGHUP',
        () =>
          this.reload().then(
            (report) => this.info.log(() => `reloaded: ${JSON.stringify({ ...report, failed: report.failed.length })}`),
            (error: unknown) => this.error.log(() => `reload failed, nothing changed: ${(error as Error).message}`),
          ),
      ],
      ['SIGTERM', () => this.stop()],
    ]);
  }

  /**
   * Installs the signal index with `process.on`: libuv owns signal dispositions in Node, and a
   * listener is how an addon shares them. Released by {@link shutdown}.
   */
  registerSignalHandlers(): void {
    if (this.#listeners !== null) return;
    this.#index = this.newSignalIndex();
    this.#listeners = new Map();
    for (const signal of this.#index.keys()) {
      const listener = () => {
        try {
          this.signal(signal);
        } catch (error) {
          this.error.log(() => `handling ${signal} failed: ${String(error)}`);
        }
      };
      process.on(signal, listener);
      this.#listeners.set(signal, listener);
    }
  }

  #releaseSignals(): void {
    // Removing the last listener restores the default action (SIGTERM ends the process); that
    // is right once the node has stopped, never while it runs.
    for (const [signal, listener] of this.#listeners ?? []) process.removeListener(signal, listener);
    this.#listeners = null;
  }

  async #reload(): Promise<ReloadReport> {
    const report: ReloadReport = { added: [], removed: [], changed: [], unchanged: [], failed: [] };
    if (this.config === null) {
      report.unchanged.push(...this.services.keys());
      return report;
    }
    const entries = await readConfig(this.config);
    for (const name of this.#entries.keys()) {
      if (entries.has(name)) continue;
      const service = this.services.get(name);
      this.#entries.delete(name);
      this.#forgetFailure(name);
      if (service !== undefined) await this.#retire(name, service);
      report.removed.push(name);
    }
    for (const entry of entries.values()) {
      const { name } = entry;
      const old = this.#entries.get(name);
      const running = this.services.has(name);
      if (old?.key === entry.key && running) {
        report.unchanged.push(name);
        continue;
      }
      try {
        if (old === undefined && (this.#objects.has(name) || this.#makers.has(name))) {
          throw new NexusError(`service "${name}" is named twice: in the options and in ${this.config}`);
        }
        // A failed service starts afresh: the operator has had a look.
        this.#forgetFailure(name);
        await this.#replace(entry);
        (running ? report.changed : report.added).push(name);
      } catch (error) {
        this.error.log(() => `service "${name}" could not be ${running ? 'restarted' : 'started'}: ${String(error)}`);
        if (!running && old !== undefined) this.#failures.set(name, this.#failure(name, error, 'stopped'));
        report.failed.push({ name, error });
      }
    }
    return report;
  }

  /** Starts the service of `entry` in place of the one of the same name, if any. */
  async #replace(entry: ServiceEntry): Promise<void> {
    const { name } = entry;
    const service = await build(entry);
    const old = this.services.get(name);
    if (old !== undefined) await this.#retire(name, old);
    try {
      await this.#activate(name, service);
    } catch (cause) {
      // Bring the old version back rather than leave the name without a service.
      if (old !== undefined) await this.#quietly('restart', name, () => this.#activate(name, old));
      throw cause;
    }
    this.#entries.set(name, entry);
    this.info.log(() => `service "${name}" started${describeAddress(service)}`);
  }

  /**
   * Activates `service` as `name` with a dispatcher of its own on the node's loop, whose handlers'
   * exceptions come to {@link #fail} instead of ending the loop, and lists it as running.
   */
  async #activate(name: string, service: Service): Promise<void> {
    const loop: Dispatcher = this.dispatcher.child({ onError: (error) => this.#fail(name, loop, error) });
    try {
      await service.activate(this.application, loop);
    } catch (error) {
      loop.close();
      throw error;
    }
    this.services.set(name, service);
    this.#loops.set(name, loop);
  }

  /** Shuts a service down and drops whatever it left registered; a throw is logged, not passed on. */
  async #retire(name: string, service: Service): Promise<void> {
    if (this.services.get(name) === service) this.services.delete(name);
    const loop = this.#loops.get(name);
    this.#loops.delete(name);
    await this.#quietly('shut down', name, () => service.shutdown());
    loop?.close();
  }

  /**
   * A handler of service `name`, registered through `loop`, threw. Nothing more of the service
   * runs from here on: its registrations are dropped and it is shut down at once (its port
   * closes); what its policy says waits its turn among the node's changes.
   */
  #fail(name: string, loop: Dispatcher, error: unknown): void {
    // A late report (a promise that rejects) from a service that is already gone.
    if (this.#loops.get(name) !== loop) return;
    loop.close();
    this.#loops.delete(name);
    const service = this.services.get(name);
    this.services.delete(name);
    this.error.log(() => `service "${name}" failed: ${stackOf(error)}`);
    const down = service === undefined ? undefined : this.#quietly('shut down', name, () => service.shutdown());
    this.#background('recover', name, async () => {
      await down;
      await this.#recover(name, error);
    });
  }

  /** Applies the failure policy of service `name`, which is down after `error`. */
  async #recover(name: string, error: unknown): Promise<void> {
    // A reload that ran meanwhile may have started it again, or removed it.
    const known = this.#entries.has(name) || this.#makers.has(name) || this.#objects.has(name);
    if (this.services.has(name) || !known) return;
    let action = await this.#decide(name, error);
    const restarts = this.#recentRestarts(name);
    if (action === 'restart' && this.#stopping) action = 'stop';
    if (action === 'restart' && this.#objects.has(name)) {
      this.warning.log(
        () => `service "${name}" cannot be restarted: it was given as an object, not a function that makes it`,
      );
      action = 'stop';
    }
    if (action === 'restart' && restarts.length >= this.restartLimit) {
      this.error.log(
        () => `service "${name}" failed after ${restarts.length} restarts within ${this.restartWindow} s; giving up`,
      );
      action = 'stop';
    }
    this.#failures.set(name, this.#failure(name, error, action === 'restart' ? 'restarting' : 'stopped'));
    if (action === 'stop') {
      this.error.log(() => `service "${name}" stopped; the others carry on`);
    } else if (action === 'exit') {
      this.error.log(() => `service "${name}" failed and its policy is to exit: stopping the node`);
      const message = `service "${name}" failed: ${error instanceof Error ? error.message : String(error)}`;
      this.#fatal ??= new NexusError(message, 'ERR_NEXUS_SERVICE', { cause: error });
      this.stop();
    } else {
      const delay = Math.min(RESTART_DELAY * 2 ** restarts.length, MAX_RESTART_DELAY);
      this.warning.log(() => `restarting service "${name}" in ${delay} s`);
      this.#pending.set(
        name,
        this.dispatcher.alarm(delay, () => {
          this.#pending.delete(name);
          this.#background('restart', name, () => this.#restart(name));
        }),
      );
    }
  }

  /** What to do with failed service `name`: its policy's answer. */
  async #decide(name: string, error: unknown): Promise<FailureAction> {
    const policy = this.#entries.get(name)?.spec.onFailure ?? this.onFailure;
    if (typeof policy !== 'function') return policy;
    let answer: unknown;
    try {
      answer = await policy(name, error);
    } catch (thrown) {
      this.error.log(() => `the failure policy threw for service "${name}", which stays stopped: ${stackOf(thrown)}`);
      return 'stop';
    }
    if (answer === undefined || answer === 'stop' || answer === 'restart' || answer === 'exit') return answer ?? 'stop';
    this.error.log(
      () =>
        `the failure policy answered ${describe(answer)} for service "${name}", not "stop", "restart" or "exit"; it stays stopped`,
    );
    return 'stop';
  }

  /** Makes failed service `name` afresh and starts it; failing that is one more failure. */
  async #restart(name: string): Promise<void> {
    if (this.#stopping || this.services.has(name) || this.#failures.get(name)?.state !== 'restarting') return;
    this.#recentRestarts(name).push(performance.now());
    try {
      const entry = this.#entries.get(name);
      const make = this.#makers.get(name);
      const service = entry !== undefined ? await build(entry) : await made(name, make as ServiceMaker);
      if (this.#stopping) return;
      await this.#activate(name, service);
      if (this.#stopping) {
        await this.#retire(name, service);
        return;
      }
      this.#failures.delete(name);
      this.info.log(() => `service "${name}" restarted${describeAddress(service)}`);
    } catch (error) {
      this.error.log(() => `service "${name}" could not be restarted: ${stackOf(error)}`);
      await this.#recover(name, error);
    }
  }

  /** The times service `name` was restarted within the restart window, oldest first. */
  #recentRestarts(name: string): number[] {
    const since = performance.now() - this.restartWindow * 1000;
    const times = (this.#restarts.get(name) ?? []).filter((time) => time > since);
    this.#restarts.set(name, times);
    return times;
  }

  #failure(name: string, error: unknown, state: ServiceFailure['state']): ServiceFailure {
    return { error, time: Date.now(), state, restarts: this.#recentRestarts(name).length };
  }

  /** Forgets that service `name` failed: a reload starts it afresh, or removes it. */
  #forgetFailure(name: string): void {
    const pending = this.#pending.get(name);
    if (pending !== undefined) this.dispatcher.cancel(pending);
    this.#pending.delete(name);
    this.#failures.delete(name);
    this.#restarts.delete(name);
  }

  /** A stopping node restarts nothing. */
  #cancelRestarts(): void {
    for (const pending of this.#pending.values()) this.dispatcher.cancel(pending);
    this.#pending.clear();
    for (const [name, failure] of this.#failures) {
      if (failure.state === 'restarting') this.#failures.set(name, { ...failure, state: 'stopped' });
    }
  }

  /** Runs `step` after the changes before it, whether they succeeded or not. */
  #change<T>(step: () => Promise<T>): Promise<T> {
    const next = this.#changes.then(step);
    this.#changes = next.catch(() => undefined);
    return next;
  }

  /** Runs `step` as a change that nobody awaits: what it throws is logged. */
  #background(what: string, name: string, step: () => Promise<void>): void {
    this.#change(step).catch((error: unknown) => {
      this.error.log(() => `could not ${what} service "${name}": ${stackOf(error)}`);
    });
  }

  async #quietly(what: string, name: string, step: () => unknown): Promise<void> {
    try {
      await step();
    } catch (error) {
      this.error.log(() => `could not ${what} service "${name}": ${stackOf(error)}`);
    }
  }
}

/** Calls the function that makes service `name`, and checks that it did. */
async function made(name: string, make: ServiceMaker): Promise<Service> {
  const service = await make();
  if (!Service.isImplementedBy(service)) {
    throw new NexusError(
      `service "${name}": the function that makes it returned ${describe(service)}, not a service ` +
        `(with ${Service.methods.join(', ')})`,
      'ERR_NEXUS_SERVICE',
    );
  }
  return service;
}

function describeAddress(service: Service): string {
  const address = (service as { address?: unknown }).address;
  return typeof address === 'string' ? ` at ${address}` : '';
}

/** An error as a log shows it: its stack, which begins with its message. */
function stackOf(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
