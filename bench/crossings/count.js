// Preloaded (`node --import ./bench/crossings/count.js`, or through NODE_OPTIONS so that pool
// members, which inherit the environment, load it too): counts every call from JavaScript into
// the pyre-nexus addon, by function, and writes the counts to $NEXUS_CROSSINGS_DIR/<pid>.json
// when the process exits. What the addon calls back (handlers) is not counted: those are
// crossings the other way.
import { writeFileSync } from 'node:fs';
import Module from 'node:module';
import { join } from 'node:path';

const dir = process.env.NEXUS_CROSSINGS_DIR;
const counts = Object.create(null);
const count = (name) => {
  counts[name] = (counts[name] ?? 0) + 1;
};

function wrap(name, fn) {
  return function counted(...args) {
    count(name);
    return fn.apply(this, args);
  };
}

/** Wraps the addon's functions, and the methods and accessors of its classes, in counters. */
function instrument(exports) {
  for (const [name, value] of Object.entries(exports)) {
    if (typeof value !== 'function') continue;
    if (/^[A-Z]/.test(name) && value.prototype) {
      for (const key of Object.getOwnPropertyNames(value.prototype)) {
        if (key === 'constructor') continue;
        const d = Object.getOwnPropertyDescriptor(value.prototype, key);
        if (typeof d.value === 'function') d.value = wrap(`${name}.${key}`, d.value);
        if (d.get) d.get = wrap(`${name}.${key}`, d.get);
        if (d.set) d.set = wrap(`${name}.${key}=`, d.set);
        Object.defineProperty(value.prototype, key, d);
      }
      const Class = value;
      exports[name] = new Proxy(Class, {
        construct(target, args, newTarget) {
          count(`new ${name}`);
          return Reflect.construct(target, args, newTarget);
        },
      });
    } else {
      exports[name] = wrap(name, value);
    }
  }
}

const load = Module._extensions['.node'];
Module._extensions['.node'] = function loadCounted(module, filename) {
  const result = load.call(this, module, filename);
  if (/pyre-nexus/.test(filename)) instrument(module.exports);
  return result;
};

if (dir) {
  process.on('exit', () => {
    writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify({ argv: process.argv.slice(1), counts }));
  });
}
