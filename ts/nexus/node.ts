import { NexusError } from '../errors.js';
import { checkOptions, nonEmptyString, type Rules, seconds } from '../options.js';
import { build, readConfig, type ServiceEntry } from './config.js';
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

/** Options of a {@link Node}. */
export interface NodeOptions extends PeerOptions {
  /** Services by name, made by the application. */
  services?: Record<string, Service>;
  /**
   * A configuration naming more services: a JSON file or a module (see `readConfig`). It is read
   * again by {@link Node.reload}.
   */
  config?: string;
  /** Seconds that conversations in progress get to finish once the node is asked to stop (default 5). */
  grace?: number;
}

const NODE_OPTIONS: Rules<NodeOptions> = {
  ...PEER_OPTIONS,
  services: {
    expected: 'an object mapping names to services',
    accepts: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  },
  config: { expected: 'the path of a configuration file', accepts: nonEmptyString.accepts },
  grace: seconds,
};

/** What a {@link Node.reload} did, by service name. */
export interface ReloadReport {
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
 */
export class Node extends Peer implements Nexus {
  /** The services, by name. */
  readonly services = new Map<string, Service>();
  /** The application given to {@link prepare}. */
  application: unknown = null;
  /** Where the configuration comes from, if anywhere. */
  readonly config: string | null;
  readonly grace: number;

  /** The configured services' entries, to tell what a reload changes. */
  readonly #entries = new Map<string, ServiceEntry>();
  #index: Map<NodeJS.Signals, SignalHandler> | null = null;
  #listeners: Map<NodeJS.Signals, () => void> | null = null;
  #stopping = false;
  #reloads: Promise<unknown> = Promise.resolve();

  constructor(options: NodeOptions = {}) {
    checkOptions(new.target.name, options, NODE_OPTIONS);
    const { services = {}, config, grace = 5, ...peerOptions } = options;
    for (const [name, service] of Object.entries(services)) {
      if (!Service.isImplementedBy(service)) {
        throw new TypeError(
          `${new.target.name}: option "services" names "${name}", which is not a service: ` +
            `it needs ${Service.methods.join(', ')}`,
        );
      }
    }
    super(peerOptions);
    for (const [name, service] of Object.entries(services)) this.services.set(name, service);
    this.config = config ?? null;
    this.grace = grace;
  }

  /** Reads the configuration, if any, and activates every service with `application`. */
  override async prepare(application: unknown = this): Promise<void> {
    this.application = application;
    this.#stopping = false;
    if (this.config !== null) {
      for (const entry of (await readConfig(this.config)).values()) {
        if (this.services.has(entry.name)) {
          throw new NexusError(`service "${entry.name}" is named twice: in the options and in ${this.config}`);
        }
        this.services.set(entry.name, await build(entry));
        this.#entries.set(entry.name, entry);
      }
    }
    const active: Service[] = [];
    for (const [name, service] of this.services) {
      try {
        await service.activate(application, this.dispatcher);
      } catch (cause) {
        for (const done of active.reverse()) await this.#quietly('shut down', name, () => done.shutdown());
        throw new NexusError(`service "${name}" failed to start: ${(cause as Error).message}`, 'ERR_NEXUS_SERVICE', {
          cause,
        });
      }
      active.push(service);
      this.info.log(() => `service "${name}" started${describeAddress(service)}`);
    }
  }

  /**
   * Runs the loop until the node is stopped, even while it has no service: a reload may shut
   * the last one down before it starts its replacement. A node already asked to stop returns.
   */
  override async watch(): Promise<unknown> {
    if (this.#stopping) return undefined;
    const hold = this.dispatcher.alarm(HOLD, () => HOLD);
    try {
      return await super.watch();
    } finally {
      this.dispatcher.cancel(hold);
    }
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
    const drains: Promise<void>[] = [];
    for (const service of this.services.values()) {
      if (typeof service.drain === 'function') drains.push(service.drain());
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
    for (const [name, service] of [...this.services].reverse()) {
      await this.#quietly('shut down', name, () => service.shutdown());
    }
    this.info.log('shut down');
  }

  /**
   * Reads the configuration again: starts added services, shuts removed ones down and restarts
   * changed ones; the others, and their conversations, are left alone. Rejects, changing
   * nothing, if the configuration cannot be read. Reloads run one at a time.
   */
  reload(): Promise<ReloadReport> {
    const next = this.#reloads.then(() => this.#reload());
    this.#reloads = next.catch(() => undefined);
    return next;
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
      this.services.delete(name);
      this.#entries.delete(name);
      if (service !== undefined) await this.#quietly('shut down', name, () => service.shutdown());
      report.removed.push(name);
    }
    for (const entry of entries.values()) {
      const { name } = entry;
      const old = this.#entries.get(name);
      if (old?.key === entry.key) {
        report.unchanged.push(name);
        continue;
      }
      try {
        if (old === undefined && this.services.has(name)) {
          throw new NexusError(`service "${name}" is named twice: in the options and in ${this.config}`);
        }
        await this.#replace(entry);
        (old === undefined ? report.added : report.changed).push(name);
      } catch (error) {
        this.error.log(() => `service "${name}" could not be ${old ? 'restarted' : 'started'}: ${String(error)}`);
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
    if (old !== undefined) await old.shutdown();
    try {
      await service.activate(this.application, this.dispatcher);
    } catch (cause) {
      // Bring the old version back rather than leave the name without a service.
      if (old !== undefined)
        await this.#quietly('restart', name, () => old.activate(this.application, this.dispatcher));
      throw cause;
    }
    this.services.set(name, service);
    this.#entries.set(name, entry);
    this.info.log(() => `service "${name}" started${describeAddress(service)}`);
  }

  async #quietly(what: string, name: string, step: () => unknown): Promise<void> {
    try {
      await step();
    } catch (error) {
      this.error.log(() => `could not ${what} service "${name}": ${String(error)}`);
    }
  }
}

function describeAddress(service: Service): string {
  const address = (service as { address?: unknown }).address;
  return typeof address === 'string' ? ` at ${address}` : '';
}
