/**
 * Named log channels, as pyre's journal has them: every component owns an `info`, `debug`,
 * `warning` and `error` channel named after it. All are silent until an application switches
 * them on, and an inactive channel costs one property check: pass a function to build an
 * expensive message only when it will be shown.
 */

/** The four kinds of log channel. */
export type Severity = 'info' | 'debug' | 'warning' | 'error';

/** One logged message, as a device receives it. */
export interface LogEntry {
  /** The channel's name, such as `node` or `echo`. */
  readonly channel: string;
  readonly severity: Severity;
  readonly message: string;
  /** Milliseconds since the epoch. */
  readonly time: number;
}

/** Where entries go: by default one line each on stderr. */
export type LogDevice = (entry: LogEntry) => void;

const SEVERITIES: readonly Severity[] = ['info', 'debug', 'warning', 'error'];

/** A named log channel; {@link journal} hands out one per name and severity. */
export class LogChannel {
  /** Whether messages are shown; off by default. */
  active = false;

  /** @internal Made by {@link journal.channel}, so that one name has one switch. */
  constructor(
    readonly name: string,
    readonly severity: Severity,
  ) {}

  /** Sends `message` to the journal's device if the channel is active. */
  log(message: string | (() => string)): void {
    if (!this.active) return;
    const text = typeof message === 'function' ? message() : message;
    journal.device({ channel: this.name, severity: this.severity, message: text, time: Date.now() });
  }
}

const channels = new Map<string, LogChannel>();
const switches: { pattern: RegExp; severities: readonly Severity[]; on: boolean }[] = [];

/** The registry of log channels and the switches that turn them on and off. */
export const journal = {
  /** Where active channels send their entries; replace it to collect or redirect them. */
  device: ((entry) => {
    process.stderr.write(`${entry.channel}(${entry.severity}): ${entry.message}\n`);
  }) as LogDevice,

  /** The channel `name` of `severity`: the same object for the same pair. */
  channel(name: string, severity: Severity): LogChannel {
    const key = `${severity}:${name}`;
    let channel = channels.get(key);
    if (channel === undefined) {
      channel = new LogChannel(name, severity);
      for (const s of switches) {
        if (s.severities.includes(severity) && s.pattern.test(name)) channel.active = s.on;
      }
      channels.set(key, channel);
    }
    return channel;
  },

  /**
   * Turns on the channels whose name matches `pattern` (`*` matches anything: `node`, `echo*`,
   * `*`), for the given severities (default: all four), including channels made later.
   */
  activate(pattern: string, severities: readonly Severity[] = SEVERITIES): void {
    toggle(pattern, severities, true);
  },

  /** Turns off what {@link journal.activate} turned on. */
  deactivate(pattern: string, severities: readonly Severity[] = SEVERITIES): void {
    toggle(pattern, severities, false);
  },
};

function toggle(pattern: string, severities: readonly Severity[], on: boolean): void {
  if (typeof pattern !== 'string' || pattern === '') {
    throw new TypeError(`journal: a channel pattern must be a non-empty string, got ${String(pattern)}`);
  }
  for (const severity of severities) {
    if (!SEVERITIES.includes(severity)) {
      throw new RangeError(`journal: unknown severity ${String(severity)}; use one of ${SEVERITIES.join(', ')}`);
    }
  }
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  const rule = { pattern: new RegExp(`^${escaped.join('.*')}$`), severities, on };
  switches.push(rule);
  for (const channel of channels.values()) {
    if (severities.includes(channel.severity) && rule.pattern.test(channel.name)) channel.active = on;
  }
}

// NEXUS_LOG=node,echo:debug turns channels on from the environment, without touching code.
for (const item of (process.env.NEXUS_LOG ?? '').split(',')) {
  const [pattern, severity] = item.trim().split(':');
  if (!pattern) continue;
  if (severity !== undefined && !SEVERITIES.includes(severity as Severity)) {
    process.stderr.write(`NEXUS_LOG: unknown severity "${severity}" in "${item}", ignored\n`);
    continue;
  }
  journal.activate(pattern, severity === undefined ? SEVERITIES : [severity as Severity]);
}
