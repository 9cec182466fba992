#!/usr/bin/env node
/**
 * The `pyre-nexus-build` command: builds the native addon from source where no prebuilt platform
 * package fits (see build-native.ts). A command of its own rather than a `nexus` subcommand,
 * because `nexus` loads the addon before it reads its arguments.
 */
import { buildNative } from './build-native.js';

try {
  console.log(`pyre-nexus: built and loaded ${buildNative()}`);
} catch (error) {
  console.error(`pyre-nexus-build: ${(error as Error).message}`);
  process.exitCode = 1;
}
