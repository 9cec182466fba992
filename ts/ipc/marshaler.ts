// Imported: the global `Buffer` is a getter that V8 looks up anew on every use.
import { Buffer } from 'node:buffer';
import { BadPayloadError, NexusError } from '../errors.js';
import type { Channel } from './channel.js';

// node:v8 is loaded on first use: it costs a process about 2.6 ms to load, and a crew member,
// whose traffic is plain data (JSON), usually never needs it.
let v8: typeof import('node:v8') | undefined;
const v8Module = () => {
  v8 ??= require('node:v8') as typeof import('node:v8');
  return v8;
};

/**
 * What {@link Marshaler.recv} returns when no whole message has arrived yet. It is no value a
 * peer can send, so every value one can (`undefined` and `null` included) arrives as a message:
 *
 * ```ts
 * for (let item = marshaler.recv(channel); item !== NOTHING; item = marshaler.recv(channel)) handle(item);
 * ```
 *
 * A registered symbol (`Symbol.for('pyre-nexus.NOTHING')`): two copies of pyre-nexus in one
 * program agree on it.
 */
export const NOTHING: unique symbol = Symbol.for('pyre-nexus.NOTHING');

/**
 * Turns items into frames and back (pyre's marshaler). A frame on the wire is a 4-byte
 * little-endian length, then the payload; frames are assembled in the native core, so
 * {@link Marshaler.recv} never sees part of a message and never waits for the rest of one.
 */
export interface Marshaler {
  /** Sends `item` as one frame on `channel`. */
  send(item: unknown, channel: Channel): void;
  /**
   * The next whole item from `channel`, or {@link NOTHING} if none has arrived whole yet (check
   * `channel.atEnd` to tell whether more can come). `undefined` is an item like any other.
   */
  recv(channel: Channel): unknown;
  /** The payload bytes of `item`. */
  encode(item: unknown): Buffer;
  /** The item of a payload; throws {@link BadPayloadError} if it does not decode. */
  decode(payload: Buffer): unknown;
}

// A loop that stops at undefined, as recv once said "nothing yet", runs forever on NOTHING. It
// never yields, and no honest program asks for nothing a million times without yielding: count
// the NOTHINGs since the program last yielded (a microtask, queued once a streak is long enough
// to matter, resets the count) and stop it with an error that says what to do.
const STREAK_CHECKED = 1024;
const STREAK_REFUSED = STREAK_CHECKED + 1_000_000;
let streak = 0;
const yielded = (): void => {
  streak = 0;
};

/** NOTHING, counted; throws at the end of a streak that only a loop waiting for undefined makes. */
function nothing(): typeof NOTHING {
  if (++streak >= STREAK_CHECKED) {
    if (streak === STREAK_CHECKED) queueMicrotask(yielded);
    else if (streak > STREAK_REFUSED) {
      streak = 0;
      throw new NexusError(
        'recv returned NOTHING more than a million times in a row without the program yielding to the event loop: ' +
          'a loop that stops at undefined never ends, since undefined is a message like any other; ' +
          'stop at NOTHING (`item !== NOTHING`), and wait for more with a dispatcher',
        'ERR_NEXUS_RECV_LOOP',
      );
    }
  }
  return NOTHING;
}

abstract class FramingMarshaler implements Marshaler {
  abstract encode(item: unknown): Buffer;
  abstract decode(payload: Buffer): unknown;

  send(item: unknown, channel: Channel): void {
    if (item === NOTHING) {
      throw new TypeError(
        'send: NOTHING is what recv returns when no message has arrived, not a message ' +
          '(a loop that stops at undefined passes it on: stop at NOTHING)',
      );
    }
    channel.sendFrame(this.encode(item));
  }

  recv(channel: Channel): unknown {
    const payload = channel.recvFrame();
    return payload === null ? nothing() : this.decode(payload);
  }
}

/** The default marshaler: V8's structured clone (`v8.serialize`), which keeps Maps, Dates, Buffers… */
export class V8Marshaler extends FramingMarshaler {
  encode(item: unknown): Buffer {
    return v8Module().serialize(item);
  }

  decode(payload: Buffer): unknown {
    try {
      return v8Module().deserialize(payload);
    } catch (cause) {
      throw new BadPayloadError(
        `a ${payload.length}-byte frame is not a V8-serialized value: ${(cause as Error).message}`,
        'ERR_NEXUS_BAD_PAYLOAD',
        { cause },
      );
    }
  }
}

/**
 * A JSON marshaler (UTF-8), for peers written in other languages. JSON has no `undefined`: sending
 * it (or a function, or a symbol) throws a TypeError, and nothing is sent.
 */
export class JsonMarshaler extends FramingMarshaler {
  encode(item: unknown): Buffer {
    const text = JSON.stringify(item);
    if (text === undefined) {
      throw new TypeError(
        `JsonMarshaler: ${typeof item === 'undefined' ? 'undefined' : `a ${typeof item}`} has no JSON form; ` +
          'send null, or use a V8Marshaler or HybridMarshaler, which carry undefined',
      );
    }
    return Buffer.from(text);
  }

  decode(payload: Buffer): unknown {
    try {
      return JSON.parse(payload.toString('utf8'));
    } catch (cause) {
      throw new BadPayloadError(
        `a ${payload.length}-byte frame is not JSON: ${(cause as Error).message}`,
        'ERR_NEXUS_BAD_PAYLOAD',
        { cause },
      );
    }
  }
}

/**
 * JSON for plain data, V8's structured clone for everything else, chosen per item: plain data
 * (numbers, strings, booleans, null, arrays and plain objects of them) encodes and decodes about
 * three times faster as JSON, and anything JSON would change (undefined, -0, NaN, Dates, Maps,
 * Buffers, class instances…) goes through V8 unchanged. A V8 payload starts with its version
 * byte (0xff), which no JSON text does.
 */
export class HybridMarshaler extends FramingMarshaler {
  readonly #v8 = new V8Marshaler();

  encode(item: unknown): Buffer {
    return isPlain(item, 0) ? Buffer.from(JSON.stringify(item)) : this.#v8.encode(item);
  }

  decode(payload: Buffer): unknown {
    if (payload[0] === 0xff) return this.#v8.decode(payload);
    try {
      return JSON.parse(payload.toString('utf8'));
    } catch (cause) {
      throw new BadPayloadError(
        `a ${payload.length}-byte frame is neither JSON nor V8-serialized: ${(cause as Error).message}`,
        'ERR_NEXUS_BAD_PAYLOAD',
        { cause },
      );
    }
  }
}

/** Whether JSON gives `value` back exactly (shallow enough that the check stays cheap). */
function isPlain(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object': {
      if (value === null) return true;
      if (depth > 16) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!(i in value) || !isPlain(value[i], depth + 1)) return false;
        }
        return true;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) return false;
      for (const key in value) {
        if (key === '__proto__' || !isPlain((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}
