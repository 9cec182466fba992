// The ES-module entry: the library itself is CommonJS, so that import and require() give one
// instance of it (a second copy would fail its own instanceof checks).
export * from './index.js';
