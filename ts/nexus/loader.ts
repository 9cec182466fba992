/**
 * Imports user modules (task files, service modules, configurations) so that TypeScript ones
 * work without a build step: when the process has no TypeScript loader of its own, tsx is
 * registered the first time a `.ts` module is met (not before: it costs about 0.3 s).
 *
 * Where Node can require() an ES module (20.19 and later), a JavaScript file is required rather
 * than imported: the first import() starts Node's ES-module loader, 8-10 ms a crew member would
 * spend before its first task. Both share one module cache, so a class is the same either way.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { isModuleNamespaceObject } from 'node:util/types';

const require = createRequire(import.meta.url);

const typescriptModule = /\.[cm]?tsx?$/;
const typescriptLoader = /(^|[/@])(tsx|ts-node|swc-node|esbuild-register|esbuild-kit)\b/;
const loaderFlags = new Set(['--import', '--loader', '--experimental-loader', '--require', '-r']);

let registration: Promise<unknown> | null = null;

/**
 * Imports `url` (or a package, by name); a TypeScript module first gets a loader, if this thread
 * has none yet.
 */
export async function importModule(url: string): Promise<Record<string, unknown>> {
  if (!URL.canParse(url)) return import(url); // a package's name: import() finds it
  const { protocol, pathname, search, hash } = new URL(url);
  if (typescriptModule.test(pathname)) {
    if (!hasTypeScriptLoader(process.execArgv)) {
      registration ??= import('tsx/esm/api').then((tsx) => tsx.register());
      await registration;
    }
  } else if (protocol === 'file:' && search === '' && hash === '' && requireLoadsAsImportDoes()) {
    // (A query is how a reload asks for a module's new version: require() would ignore it.)
    const namespace = required(fileURLToPath(url));
    if (namespace !== null) return namespace;
  }
  return import(url);
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
