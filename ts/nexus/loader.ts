/**
 * Imports user modules (task files, service modules, configurations) so that TypeScript ones
 * work without a build step: when the process has no TypeScript loader of its own, tsx is
 * registered the first time a `.ts` module is met (not before: it costs about 0.3 s).
 *
 * Where Node can require() an ES module (20.19 and later), a JavaScript file is required rather
 * than imported: the first import() starts Node's ES-module loader, 8-10 ms a crew member would
 * spend before its first task. Both share one module cache, so a class is the same either way.
 *
 * A TypeScript module of a CommonJS project is required too, through tsx's require hook: that is
 * how the project's own code loads it, and Node 20 gives an import() of it no named exports.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isModuleNamespaceObject } from 'node:util/types';

const typescriptModule = /\.[cm]?tsx?$/;
const typescriptLoader = /(^|[/@])(tsx|ts-node|swc-node|esbuild-register|esbuild-kit)\b/;
const loaderFlags = new Set(['--import', '--loader', '--experimental-loader', '--require', '-r']);

let registration: Promise<unknown> | null = null;

/**
 * Imports `url` (a file URL or path, or a package by name); a TypeScript module first gets a
 * loader, if this thread has none yet.
 */
export async function importModule(url: string): Promise<Record<string, unknown>> {
  if (isAbsolute(url)) url = pathToFileURL(url).href; // a CommonJS module's __filename
  if (!URL.canParse(url)) return import(url); // a package's name: import() finds it
  const { protocol, pathname, search, hash } = new URL(url);
  if (typescriptModule.test(pathname)) {
    if (!hasTypeScriptLoader(process.execArgv)) {
      registration ??= registerTsx();
      await registration;
    }
    if (protocol === 'file:' && hash === '' && isCommonJs(fileURLToPath(url))) {
      const namespace = requiredCommonJs(fileURLToPath(url), search !== '');
      if (namespace !== null) return namespace;
    }
  } else if (protocol === 'file:' && search === '' && hash === '' && requireLoadsAsImportDoes()) {
    // (A query is how a reload asks for a module's new version: require() would ignore it.)
    const namespace = required(fileURLToPath(url));
    if (namespace !== null) return namespace;
  }
  return import(url);
}

/** tsx's hooks for import() and for require(), as `--import tsx` would register them. */
async function registerTsx(): Promise<void> {
  const esm = await import('tsx/esm/api');
  esm.register();
  (require('tsx/cjs/api') as typeof import('tsx/cjs/api')).register();
}

/** Whether the TypeScript module at `path` is CommonJS: a `.cts`, or a `.ts` outside an ES-module package. */
function isCommonJs(path: string): boolean {
  if (path.endsWith('.cts')) return true;
  if (path.endsWith('.mts')) return false;
  return packageType(dirname(path)) !== 'module';
}

const packageTypes = new Map<string, string>();

/** The `type` of the package.json nearest to `directory` ('commonjs' when none says). */
function packageType(directory: string): string {
  const known = packageTypes.get(directory);
  if (known !== undefined) return known;
  let type = 'commonjs';
  try {
    const manifest = JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as { type?: unknown };
    if (manifest.type === 'module') type = 'module';
  } catch {
    const parent = dirname(directory);
    if (parent !== directory) type = packageType(parent);
  }
  packageTypes.set(directory, type);
  return type;
}

/**
 * The exports of the CommonJS module at `path`, a fresh copy when `anew` (a reload asks for the
 * module's new version); null when this process cannot require() TypeScript and import() must try.
 */
function requiredCommonJs(path: string, anew: boolean): Record<string, unknown> | null {
  if (anew) delete require.cache[path];
  try {
    return require(path) as Record<string, unknown>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_UNKNOWN_FILE_EXTENSION') return null;
    throw error;
  }
}

/**
 * Whether require() loads an ES module as import() would: Node can require() ES modules, and no
 * module hooks are in play (a loader on the command line, or tsx registered here), which the
 * two do not go through alike.
 */
function requireLoadsAsImportDoes(): boolean {
  if (!process.features.require_module || registration !== null) return false;
  return !process.execArgv.some((arg) => loaderFlags.has(arg.split('=', 1)[0] as string));
}

/**
 * The namespace of the ES module at `path`, required; null when import() must do it: the module
 * awaits at its top level, is in a cycle being imported, or is CommonJS (whose import() namespace
 * has a `default` that require() does not give).
 */
function required(path: string): Record<string, unknown> | null {
  let exports: unknown;
  try {
    exports = require(path);
  } catch (error) {
    if (String((error as NodeJS.ErrnoException).code).startsWith('ERR_REQUIRE_')) return null;
    throw error;
  }
  return isModuleNamespaceObject(exports) ? (exports as Record<string, unknown>) : null;
}

/**
 * Whether Node options already give TypeScript support (a loader, or Node's own transform). Node's
 * own type stripping, on by default since 22.18 (`process.features.typescript` is 'strip'), does
 * not count: it refuses TypeScript that needs transforming (parameter properties, enums,
 * namespaces), which a task file the parent loaded with tsx may well have.
 */
export function hasTypeScriptLoader(execArgv: readonly string[]): boolean {
  if ((process.features as { typescript?: unknown }).typescript === 'transform') return true;
  return execArgv.some((arg, i) => {
    const [flag, inline] = arg.split('=', 2) as [string, string | undefined];
    const value = inline ?? execArgv[i + 1];
    return loaderFlags.has(flag) && value !== undefined && typescriptLoader.test(value);
  });
}
