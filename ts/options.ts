/**
 * One way to check an options object, for every constructor and function that takes one: an
 * unknown key is refused, naming it and the known key it may be a slip for, and a wrong value
 * names the option, what it must be, and what it is (`got string "2"`, never `got 2` for the
 * string "2").
 *
 * Wrong types are TypeErrors with Node's code `ERR_INVALID_ARG_TYPE`, numbers out of range
 * RangeErrors with `ERR_OUT_OF_RANGE`, unknown keys TypeErrors with `ERR_NEXUS_UNKNOWN_OPTION`.
 */

/** What one option must be. */
export interface Rule {
  /** How a message says it: `a positive integer`. */
  readonly expected: string;
  readonly accepts: (value: unknown) => boolean;
  /** For numbers: a number it refuses is out of range (a RangeError), not of the wrong type. */
  readonly range?: true;
}

/** The rules of every option a function takes, by name: a key of `T` without a rule does not compile. */
export type Rules<T> = { readonly [K in keyof Required<T>]: Rule };

/**
 * Checks `options` against `rules`; `owner` begins every message (`Pool`, `port`). An option
 * that is undefined counts as absent.
 */
export function checkOptions<T>(owner: string, options: unknown, rules: Rules<T>): asserts options is T {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw coded(new TypeError(`${owner}: options must be an object, got ${describe(options)}`), 'ERR_INVALID_ARG_TYPE');
  }
  const known = Object.keys(rules);
  for (const key of Object.keys(options)) {
    if (!Object.hasOwn(rules, key)) {
      const near = nearest(key, known);
      const hint = near === undefined ? '' : ` (did you mean "${near}"?)`;
      const message = `${owner}: unknown option "${key}"${hint}; it takes ${known.join(', ')}`;
      throw coded(new TypeError(message), 'ERR_NEXUS_UNKNOWN_OPTION');
    }
    const value = (options as Record<string, unknown>)[key];
    const rule = (rules as Record<string, Rule>)[key] as Rule;
    if (value !== undefined && !rule.accepts(value)) throw optionError(owner, key, rule, value);
  }
}

/** The error for an option `key` whose `value` breaks `rule`. */
function optionError(owner: string, key: string, rule: Rule, value: unknown): TypeError | RangeError {
  const message = `${owner}: option "${key}" must be ${rule.expected}, got ${describe(value)}`;
  return rule.range === true && typeof value === 'number'
    ? coded(new RangeError(message), 'ERR_OUT_OF_RANGE')
    : coded(new TypeError(message), 'ERR_INVALID_ARG_TYPE');
}

/** A value as a message shows it: its type, and the value itself when it is short. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  switch (typeof value) {
    case 'string':
      return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case 'number':
    case 'boolean':
      return `${typeof value} ${String(value)}`;
    case 'bigint':
      return `bigint ${value}n`;
    case 'symbol':
      return `symbol ${value.description ?? ''}`;
    case 'function':
      return value.name === '' ? 'a function' : `function ${value.name}`;
  }
  if (Array.isArray(value)) return 'an array';
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return name === undefined || name === 'Object' ? 'an object' : `an instance of ${name}`;
}

/** An integer from `min` (to `max`); `expected` says it in a message, when the usual words do not fit. */
export function integer(min: number, max = Number.POSITIVE_INFINITY, expected = integerWords(min, max)): Rule {
  return { expected, range: true, accepts: (v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max };
}

function integerWords(min: number, max: number): string {
  if (max !== Number.POSITIVE_INFINITY) return `an integer from ${min} to ${max}`;
  if (min === 1) return 'a positive integer';
  if (min === 0) return 'a non-negative integer';
  return `an integer of at least ${min}`;
}

/** A finite number of seconds, 0 or more. */
export const seconds: Rule = {
  expected: 'a non-negative number of seconds',
  range: true,
  accepts: (v) => typeof v === 'number' && v >= 0 && Number.isFinite(v),
};

export const boolean: Rule = { expected: 'a boolean', accepts: (v) => typeof v === 'boolean' };
export const string: Rule = { expected: 'a string', accepts: (v) => typeof v === 'string' };
export const nonEmptyString: Rule = {
  expected: 'a non-empty string',
  accepts: (v) => typeof v === 'string' && v !== '',
};
export const func: Rule = { expected: 'a function', accepts: (v) => typeof v === 'function' };
export const strings: Rule = {
  expected: 'an array of strings',
  accepts: (v) => Array.isArray(v) && v.every((s) => typeof s === 'string'),
};

/** An instance of `Class`. */
export function instance(Class: abstract new (...args: never[]) => unknown, expected = `a ${Class.name}`): Rule {
  return { expected, accepts: (v) => v instanceof Class };
}

/** An object with these methods (a protocol's implementation). */
export function implementing(what: string, methods: readonly string[]): Rule {
  return {
    expected: `${what} (with ${methods.join(', ')})`,
    accepts: (v) =>
      (typeof v === 'object' || typeof v === 'function') &&
      v !== null &&
      methods.every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
  };
}

/** `rule`, or null. */
export function orNull(rule: Rule): Rule {
  return { expected: `${rule.expected} or null`, accepts: (v) => v === null || rule.accepts(v) };
}

/** The known name that `key` is most likely a slip for: another case, or a letter or two off. */
export function nearest(key: string, known: string[]): string | undefined {
  const lower = key.toLowerCase();
  // Short names are a letter apart from many others: allow one slip in them, two in longer ones.
  const limit = key.length < 6 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const name of known) {
    const distance = editDistance(lower, name.toLowerCase());
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best;
}

/** The letters to insert, delete, change or swap with the next to turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i + j));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const above = d[i - 1] as number[];
      const change = (above[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      row[j] = Math.min(change, (above[j] as number) + 1, (row[j - 1] as number) + 1);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

function coded<E extends Error>(error: E, code: string): E {
  return Object.assign(error, { code });
}
