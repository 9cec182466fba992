/**
 * A node's service configuration: a JSON file, or a module whose default export is the
 * configuration (or a function that returns it), naming each service, the module and export
 * that implement it, and the options its constructor gets:
 *
 * ```json
 * { "services": { "echo": { "module": "./echo.ts", "export": "EchoServer", "address": "ip4:0.0.0.0:7000" } } }
 * ```
 *
 * Module paths are relative to the configuration file. `onFailure` says what the node does when
 * the service's handler throws (see {@link FailurePolicy}); every other key of a service (here
 * `address`) goes to the constructor of the export as its options.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NexusError } from '../errors.js';
import { describe, type Rule } from '../options.js';
import { importModule } from './loader.js';
import { Service } from './service.js';

/**
 * What a node does with a service whose handler (or alarm) throws, once it has shut it down:
 * - `'stop'`: nothing more; the other services carry on (the default);
 * - `'restart'`: makes the service afresh and starts it again, after a pause that doubles with
 *   each restart, up to the node's `restartLimit` within `restartWindow` seconds; the next failure stops it;
 * - `'exit'`: stops the node, whose `run()` (and `watch()`) rejects with an error naming the service;
 * - a function of the service's name and the error, which answers one of these (or a promise of
 *   one; anything else, or a throw, stops the service).
 */
export type FailurePolicy =
  | FailureAction
  | ((name: string, error: unknown) => FailureAction | undefined | Promise<FailureAction | undefined>);

/** What a node may do with a failed service. */
export type FailureAction = 'stop' | 'restart' | 'exit';

/** The {@link FailurePolicy} rule, for the node's options and the configuration's services. */
export const failurePolicy: Rule = {
  expected: '"stop", "restart", "exit" or a function',
  accepts: (v) => v === 'stop' || v === 'restart' || v === 'exit' || typeof v === 'function',
};

/** One service as the configuration describes it. */
export interface ServiceSpec {
  /** The module implementing the service: a path relative to the configuration, or a package. */
  module: string;
  /** The module's export to construct (default: `default`). */
  export?: string;
  /** What the node does when the service fails (default: the node's `onFailure`). */
  onFailure?: FailurePolicy;
  /** Everything else is the constructor's options. */
  [option: string]: unknown;
}

/** A node's configuration. */
export interface NodeConfig {
  services: Record<string, ServiceSpec>;
}

/** A service as read from the configuration, with what tells whether it changed. */
export interface ServiceEntry {
  readonly name: string;
  readonly spec: ServiceSpec;
  /** The module's URL, made unique when its file changed since it was first loaded. */
  readonly url: string;
  /** Equal keys mean an unchanged service: the same spec and the same module file. */
  readonly key: string;
}

/**
 * The modification time of each module file when it was first imported. ESM caches a module by
 * URL, so that version keeps the plain URL and each later one gets a query of its own.
 */
const firstVersions = new Map<string, number>();

/** Reads the configuration at `source` and describes each service; throws a NexusError naming the problem. */
export async function readConfig(source: string): Promise<Map<string, ServiceEntry>> {
  const path = resolve(source);
  const config = await load(path);
  if (config === null || typeof config !== 'object' || typeof (config as NodeConfig).services !== 'object') {
    throw configError(source, 'must be an object with a "services" table');
  }
  const entries = new Map<string, ServiceEntry>();
  for (const [name, spec] of Object.entries((config as NodeConfig).services ?? {})) {
    if (spec === null || typeof spec !== 'object' || typeof spec.module !== 'string') {
      throw configError(source, `service "${name}" needs a "module" naming the file that implements it`);
    }
    if (spec.export !== undefined && typeof spec.export !== 'string') {
      throw configError(source, `service "${name}": "export" must be a string`);
    }
    if (spec.onFailure !== undefined && !failurePolicy.accepts(spec.onFailure)) {
      const problem = `"onFailure" must be ${failurePolicy.expected}, got ${describe(spec.onFailure)}`;
      throw configError(source, `service "${name}": ${problem}`);
    }
    const { url, version } = await locate(spec.module, dirname(path));
    entries.set(name, { name, spec, url, key: `${canonical(spec)}@${version}` });
  }
  return entries;
}

/** Imports the module of `entry` and constructs its service. */
export async function build(entry: ServiceEntry): Promise<Service> {
  const { name, spec, url } = entry;
  const { module: _module, export: exportName = 'default', onFailure: _onFailure, ...options } = spec;
  let namespace: Record<string, unknown>;
  try {
    namespace = await importModule(url);
  } catch (cause) {
    const message = `service "${name}": cannot load ${spec.module}: ${(cause as Error).message}`;
    throw new NexusError(message, 'ERR_NEXUS_CONFIG', { cause });
  }
  const Class = namespace[exportName];
  if (typeof Class !== 'function') {
    throw new NexusError(
      `service "${name}": ${spec.module} has no class exported as "${exportName}"`,
      'ERR_NEXUS_CONFIG',
    );
  }
  let service: unknown;
  try {
    service = new (Class as new (options: object) => unknown)({ name, ...options });
  } catch (cause) {
    throw new NexusError(`service "${name}": ${(cause as Error).message}`, 'ERR_NEXUS_CONFIG', { cause });
  }
  if (!Service.isImplementedBy(service)) {
    const missing = Service.methods.filter((m) => typeof (service as Record<string, unknown>)[m] !== 'function');
    throw new NexusError(
      `service "${name}": ${exportName} is not a service (it lacks ${missing.join(', ')})`,
      'ERR_NEXUS_CONFIG',
    );
  }
  return service;
}

async function load(path: string): Promise<unknown> {
  if (extname(path) === '.json') {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (cause) {
      throw configError(path, `cannot be read: ${(cause as Error).message}`, cause);
    }
    try {
      return JSON.parse(text);
    } catch (cause) {
      throw configError(path, `is not valid JSON: ${(cause as Error).message}`, cause);
    }
  }
  const { url } = await locate(path, dirname(path));
  let namespace: { default?: unknown };
  try {
    namespace = await importModule(url);
  } catch (cause) {
    throw configError(path, `cannot be loaded: ${(cause as Error).message}`, cause);
  }
  const config = namespace.default;
  return typeof config === 'function' ? await config() : config;
}

/** The URL to import `module` from, and the version of its file (its modification time). */
async function locate(module: string, base: string): Promise<{ url: string; version: number }> {
  const isPath = module.startsWith('.') || isAbsolute(module) || module.startsWith('file:');
  if (!isPath) return { url: module, version: 0 };
  const url = module.startsWith('file:') ? module : pathToFileURL(resolve(base, module)).href;
  let version = 0;
  try {
    version = (await stat(new URL(url))).mtimeMs;
  } catch {
    // A missing file is reported by the import, with the module's own words.
  }
  const first = firstVersions.get(url) ?? version;
  firstVersions.set(url, first);
  return { url: first === version ? url : `${url}?nexus-version=${version}`, version };
}

/** JSON with sorted keys, so that equal specs compare equal whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

function configError(source: string, problem: string, cause?: unknown): NexusError {
  return new NexusError(`configuration ${source} ${problem}`, 'ERR_NEXUS_CONFIG', { cause });
}
