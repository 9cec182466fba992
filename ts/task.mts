// The ES-module entry of `pyre-nexus/task` (see index.mts).
export * from './task.js';
