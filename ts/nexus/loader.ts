/**
 * Imports user modules (task files, service modules, configurations) so that TypeScript ones
 * work without a build step: when the process has no TypeScript loader of its own, tsx is
 * registered the first time a `.ts` module is met (not before: it costs about 0.3 s).
 */

const typescriptModule = /\.[cm]?tsx?$/;
const typescriptLoader = /(^|[/@])(tsx|ts-node|swc-node|esbuild-register|esbuild-kit)\b/;
const loaderFlags = new Set(['--import', '--loader', '--experimental-loader', '--require', '-r']);

let registration: Promise<unknown> | null = null;

/** Imports `url`; a TypeScript module first gets a loader, if this thread has none yet. */
export async function importModule(url: string): Promise<Record<string, unknown>> {
  if (typescriptModule.test(new URL(url).pathname) && !hasTypeScriptLoader(process.execArgv)) {
    registration ??= import('tsx/esm/api').then((tsx) => tsx.register());
    await registration;
  }
  return import(url);
}

/** Whether Node options already give TypeScript support (a loader, or Node's own). */
export function hasTypeScriptLoader(execArgv: readonly string[]): boolean {
  if ((process.features as { typescript?: unknown }).typescript) return true;
  return execArgv.some((arg, i) => {
    const [flag, inline] = arg.split('=', 2) as [string, string | undefined];
    const value = inline ?? execArgv[i + 1];
    return loaderFlags.has(flag) && value !== undefined && typescriptLoader.test(value);
  });
}
