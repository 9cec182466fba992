import { deserialize, serialize } from 'node:v8';
import { BadPayloadError } from '../errors.js';
import type { Channel } from './channel.js';

/**
 * Turns items into frames and back (pyre's marshaler). A frame on the wire is a 4-byte
 * little-endian length, then the payload; frames are assembled in the native core, so
 * {@link Marshaler.recv} never sees part of a message and never waits for the rest of one.
 */
export interface Marshaler {
  /** Sends `item` as one frame on `channel`. */
  send(item: unknown, channel: Channel): void;
  /**
   * The next whole item from `channel`, or `undefined` if none has arrived whole yet (check
   * `channel.atEnd` to tell whether more can come).
   */
  recv(channel: Channel): unknown;
  /** The payload bytes of `item`. */
  encode(item: unknown): Buffer;
  /** The item of a payload; throws {@link BadPayloadError} if it does not decode. */
  decode(payload: Buffer): unknown;
}

abstract class FramingMarshaler implements Marshaler {
  abstract encode(item: unknown): Buffer;
  abstract decode(payload: Buffer): unknown;

  send(item: unknown, channel: Channel): void {
    if (item === undefined) {
      throw new TypeError('send: undefined cannot be sent (recv uses it to say that nothing has arrived)');
    }
    channel.sendFrame(this.encode(item));
  }

  recv(channel: Channel): unknown {
    const payload = channel.recvFrame();
    return payload === null ? undefined : this.decode(payload);
  }
}

/** The default marshaler: V8's structured clone (`v8.serialize`), which keeps Maps, Dates, Buffers… */
export class V8Marshaler extends FramingMarshaler {
  encode(item: unknown): Buffer {
    return serialize(item);
  }

  decode(payload: Buffer): unknown {
    try {
      return deserialize(payload);
    } catch (cause) {
      throw new BadPayloadError(
        `a ${payload.length}-byte frame is not a V8-serialized value: ${(cause as Error).message}`,
        'ERR_NEXUS_BAD_PAYLOAD',
        { cause },
      );
    }
  }
}

/** A JSON marshaler (UTF-8), for peers written in other languages. */
export class JsonMarshaler extends FramingMarshaler {
  encode(item: unknown): Buffer {
    return Buffer.from(JSON.stringify(item));
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
