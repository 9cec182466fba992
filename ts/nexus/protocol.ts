/**
 * pyre's protocols in TypeScript form. A protocol is an interface (for the type checker) and a
 * value of the same name (for the program): its name, the methods an implementation needs,
 * and its default implementation, which pyre calls `pyre_default`.
 */

/** A class whose instances implement a protocol. */
export type Implementation<T> = new (...args: never[]) => T;

/** The run-time side of a protocol. */
export interface Protocol<T> {
  /** pyre's name of the protocol (`nexus`, `service`…). */
  readonly name: string;
  /** The methods every implementation has. */
  readonly methods: readonly string[];
  /** The default implementation (pyre's `pyre_default`), or null when there is none. */
  pyreDefault(): Implementation<T> | null;
  /** Whether `candidate` has every method of the protocol. */
  isImplementedBy(candidate: unknown): candidate is T;
}

/** Declares a protocol; `implementation` is a function so that the default may be defined later. */
export function protocol<T>(
  name: string,
  methods: readonly string[],
  implementation: () => Implementation<T> | null = () => null,
): Protocol<T> {
  return Object.freeze({
    name,
    methods: Object.freeze([...methods]),
    pyreDefault: implementation,
    isImplementedBy(candidate: unknown): candidate is T {
      if (candidate === null || (typeof candidate !== 'object' && typeof candidate !== 'function')) return false;
      const record = candidate as Record<string, unknown>;
      return methods.every((method) => typeof record[method] === 'function');
    },
  });
}
