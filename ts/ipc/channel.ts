// Imported: the global `Buffer` is a getter that V8 looks up anew on every use.
import { Buffer } from 'node:buffer';
import type { LookupAddress } from 'node:dns';
import { AddressInUseError, BadAddressError, translate } from '../errors.js';
import { type ChannelHandle, native } from '../native.js';
import { boolean, checkOptions, type Rules } from '../options.js';

// The slab that received frames are copied into (see Channel.recvFrame): Node's pool size, so
// that a payload kept for long pins no more memory than a pooled Buffer does.
const SLAB = 8 * 1024;
const SLAB_ROOM = 1024; // less room than this left: the next frame starts a new slab
let slab = Buffer.allocUnsafeSlow(SLAB);
let used = 0;
const EMPTY = Buffer.alloc(0);
/** Bytes before a payload in the slab: its record's head (4 bytes left alone, then its length). */
const RECORD_HEAD = 8;

// The status words this thread shares with the addon (src/status.rs), read and written here
// without calling in: what a call would only say back is answered here. Another copy of this
// module on the thread gets the same words.
const EPOCH = 0; // changes whenever a poll may have brought news for some channel of the thread
const PENDING = 1; // the output pending after the last write or send
const INPUT = 2; // what the next read or receive finds, as the last one left it (bits below)
const TAKEN = 3; // written before a read or receive: the lent frames handed out (see recvFrame)
const RECHECK = 4; // written before a read or receive: 1 to ask the kernel whatever it last said
const status: Int32Array = native.shareStatus(new Int32Array(new ArrayBuffer(4 * native.STATUS_WORDS)));
/** Word `at` of the status words (there are STATUS_WORDS of them). */
const word = (at: number): number => status[at] as number;
// The input state's bits (the core's InputState), and one of ours.
const AT_END = 1; // the peer's end of file was read
const NO_FRAME = 2; // a receive finds no frame until the epoch changes
const NO_BYTES = 4; // a read finds nothing either (nothing is buffered)
const UNKNOWN = 8; // a call threw, or the channel was closed: ask

let trimming: NodeJS.Timeout | null = null;

/**
 * The native side keeps the memory of collected large frames for the next ones; once they stop
 * coming, a timer lets it go. Unreferenced: it never keeps a process alive.
 */
function trimSparesLater(): void {
  if (trimming !== null) return;
  trimming = setTimeout(() => {
    trimming = null;
    if (native.trimLargeFrameSpares()) trimSparesLater();
  }, 1000).unref();
}

function rethrow(error: unknown): never {
  throw translate(error);
}

/**
 * A non-blocking socket end: a pipe end, a TCP or Unix-domain connection, or a listening port.
 * The socket is owned by the native core; reads and writes never block the event loop.
 */
export class Channel {
  /** @internal The native channel, which the binding's `channel*` functions take first. */
  readonly handle: ChannelHandle;

  // Kept here, not asked of the addon: only close() and abort() close a channel, and a server
  // asks after every request.
  #closed: boolean;
  // What the last read or receive said the next one will find (the input state's bits), and the
  // epoch then: while the epoch is the same, no poll has brought news, and "nothing" still holds.
  // That is what the addon itself would answer, without a system call: a watched channel whose
  // socket was found empty is not read again until the poll says so.
  #input = UNKNOWN;
  #epoch = 0;
  // The frames the last receive brought beyond the first: records in #queue from #next to #end.
  // The addon lent them: it keeps them, first in line, until the next read or receive says how
  // many were handed out (#taken), so a read that comes between loses none.
  #queue = EMPTY;
  #next = 0;
  #end = 0;
  #taken = 0;
  // Whether the next read or receive asks the kernel even if the socket was found empty.
  #recheck = 0;
  // The output pending after the last write, or -1 if unknown. Once 0, it stays 0 until the next
  // write: flushing only lowers it.
  #pending = -1;

  /** @internal Channels are made by {@link pipe}, {@link port}, {@link tcp} and {@link adopt}. */
  constructor(handle: ChannelHandle) {
    this.handle = handle;
    this.#closed = native.channelClosed(handle);
  }

  /** The file descriptor, or null once closed. */
  get fd(): number | null {
    return native.channelFd(this.handle);
  }

  /** `stream` (pipe or Unix-domain), `tcp`, `listener` or `closed`. */
  get kind(): string {
    return native.channelKind(this.handle);
  }

  /** Whether this side has closed the channel. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Whether the peer has closed its end: everything it sent has been read. Known from the last
   * read or receive, which said so, without asking the addon again.
   */
  get atEnd(): boolean {
    if (this.#input !== UNKNOWN) return (this.#input & AT_END) !== 0;
    return native.channelAtEnd(this.handle);
  }

  /**
   * @internal Makes the next read or receive ask the kernel (one system call) even though the
   * socket was last found empty and no poll has said otherwise since: for a handler that ran
   * long and expects more to have arrived meanwhile.
   */
  recheck(): void {
    if (this.#input !== UNKNOWN) this.#input &= AT_END;
    this.#recheck = 1; // said with the next read or receive, not a call of its own
  }

  /** The address really bound, in pyre's notation (`ip4:127.0.0.1:50123`), if any. */
  get address(): string | null {
    return native.channelLocalAddress(this.handle);
  }

  /** The peer's address, if known. */
  get peer(): string | null {
    return native.channelPeerAddress(this.handle);
  }

  /**
   * Bytes accepted by {@link write} or {@link sendFrame} that the kernel has not taken yet. When
   * the last write left none, that is known without asking the addon.
   */
  get pendingOutput(): number {
    if (this.#pending === 0) return 0;
    this.#pending = native.channelPendingOutput(this.handle);
    return this.#pending;
  }

  /** Sets the largest frame this channel accepts (default 64 MiB); a longer one is an error. */
  set maxFrame(bytes: number) {
    checkSize('maxFrame', bytes);
    // Frames received under the old maximum go back to the addon, which judges them anew.
    this.#next = this.#end = 0;
    if (this.#input !== UNKNOWN) this.#input &= AT_END;
    native.channelSetMaxFrame(this.handle, bytes);
  }

  /** Sets the bound on unsent output (default 1 MiB). */
  set outputBound(bytes: number) {
    checkSize('outputBound', bytes);
    native.channelSetOutputBound(this.handle, bytes);
  }

  /**
   * Reads what is there into `buffer`, without waiting: the number of bytes read, 0 at end of
   * file, or null when nothing is there (readiness can be spurious; that is not an error). A
   * channel watched by a dispatcher whose socket was found empty reads nothing more until the
   * dispatcher's poll says something has come: that "nothing" is answered without a call into
   * the addon, as is the end of file once read.
   */
  read(buffer: Buffer): number | null {
    if (!Buffer.isBuffer(buffer) || buffer.length === 0) {
      // 0 means end of file, so an empty buffer would read as one.
      throw new TypeError(`read: expected a non-empty Buffer to read into, got ${describeBuffer(buffer)}`);
    }
    if (this.#nothing(NO_BYTES)) return (this.#input & AT_END) === 0 ? null : 0;
    this.#asking();
    let got: number | null;
    try {
      got = native.channelRead(this.handle, buffer);
    } catch (e) {
      this.#input = UNKNOWN;
      rethrow(e);
    }
    this.#told();
    return got;
  }

  /**
   * Writes what the kernel takes now and keeps the rest, up to the output bound, to flush as the
   * channel becomes writable. Returns how many bytes were accepted.
   */
  write(data: Buffer | Uint8Array | string): number {
    let accepted: number;
    try {
      accepted = native.channelWrite(this.handle, toBuffer(data));
    } catch (e) {
      this.#pending = -1;
      rethrow(e);
    }
    this.#pending = word(PENDING);
    return accepted;
  }

  /** Sends `payload` as one frame: a 4-byte little-endian length, then the bytes. */
  sendFrame(payload: Buffer | Uint8Array): void {
    try {
      native.channelSendFrame(this.handle, toBuffer(payload));
    } catch (e) {
      this.#pending = -1;
      rethrow(e);
    }
    this.#pending = word(PENDING);
  }

  /**
   * The next whole frame's payload, or null if none has arrived whole yet. Small payloads are
   * views of a shared slab, as Node's pooled Buffers are: each owns its bytes, `.buffer` is the
   * slab.
   *
   * One call into the addon brings every whole frame ready (as many as fit the slab); the next
   * calls hand them out one by one. Once none is left, "none yet" and the end of file are
   * answered without a call, until a dispatcher's poll has news, as {@link read} says.
   */
  recvFrame(): Buffer | null {
    if (this.#next < this.#end) return this.#dequeue();
    if (this.#nothing(NO_FRAME)) return null;
    if (slab.length - used < SLAB_ROOM) {
      slab = Buffer.allocUnsafeSlow(SLAB);
      used = 0;
    }
    this.#asking();
    let got: number | Buffer;
    try {
      got = native.channelRecvFrames(this.handle, slab, used);
    } catch (e) {
      this.#input = UNKNOWN;
      rethrow(e);
    }
    this.#told();
    if (typeof got !== 'number') {
      if (got.length >= native.LARGE_PAYLOAD) trimSparesLater();
      return got;
    }
    if (got < 0) return null;
    this.#queue = slab;
    this.#next = used;
    this.#end = got;
    used = got;
    const first = this.#dequeue();
    this.#taken = 0; // the first was the addon's to take; those after it are lent
    return first;
  }

  /** The next frame the last receive brought, handed out. */
  #dequeue(): Buffer {
    const start = this.#next + RECORD_HEAD;
    const end = start + this.#queue.readUInt32LE(start - 4);
    this.#next = (end + 7) & ~7; // records are aligned, as Node's pool does
    this.#taken++;
    return this.#queue.subarray(start, end);
  }

  /**
   * Whether the last read or receive said the next finds nothing (every one of `bits`), and no
   * poll has had news since.
   */
  #nothing(bits: number): boolean {
    return (this.#input & bits) === bits && this.#epoch === word(EPOCH);
  }

  /**
   * Before a read or receive calls in: the lent frames not handed out go back to the addon, and
   * a recheck goes with the call.
   */
  #asking(): void {
    status[TAKEN] = this.#taken;
    status[RECHECK] = this.#recheck;
    this.#taken = this.#recheck = 0;
    this.#next = this.#end = 0;
  }

  /** After it: what the next will find. */
  #told(): void {
    this.#input = word(INPUT);
    this.#epoch = word(EPOCH);
  }

  /**
   * Copies the next whole frame's payload into `buffer` from `offset` on and returns its length,
   * or null if none has arrived whole yet. Nothing is allocated, so a receiver of large frames
   * that reuses one buffer keeps the same memory, and the CPU's cache, frame after frame; the
   * bytes are the caller's to keep or overwrite. A payload longer than the room from `offset` is
   * a {@link BufferTooSmallError} that says how long it is, and stays the next frame. Frames an
   * earlier {@link recvFrame} brought come from there, and "none yet" is answered as it says.
   */
  recvFrameInto(buffer: Buffer | Uint8Array, offset = 0): number | null {
    if (!(buffer instanceof Uint8Array)) {
      throw new TypeError(`recvFrameInto: expected a Buffer or Uint8Array to receive into, got ${typeof buffer}`);
    }
    if (!Number.isInteger(offset) || offset < 0 || offset > buffer.length) {
      throw new RangeError(`recvFrameInto: offset must be an integer from 0 to ${buffer.length}, got ${offset}`);
    }
    if (this.#next < this.#end) {
      const start = this.#next + RECORD_HEAD;
      const length = this.#queue.readUInt32LE(start - 4);
      if (length <= buffer.length - offset) {
        this.#queue.copy(buffer, offset, start, start + length);
        this.#next = (start + length + 7) & ~7;
        this.#taken++;
        return length;
      }
      // It does not fit: it goes back to the addon, which says so and keeps it next in line.
    } else if (this.#nothing(NO_FRAME | NO_BYTES)) {
      return null;
    }
    this.#asking();
    let got: number;
    try {
      got = native.channelRecvFrameInto(this.handle, toBuffer(buffer), offset);
    } catch (e) {
      this.#input = UNKNOWN;
      rethrow(e);
    }
    this.#told();
    if (got < 0) return null;
    if (got >= native.LARGE_PAYLOAD) trimSparesLater(); // its buffer may have gone to the spares
    return got;
  }

  /** Takes the next connection waiting on a listening channel, or null if none is waiting. */
  accept(): Channel | null {
    try {
      const handle = native.channelAccept(this.handle);
      return handle === null ? null : new Channel(handle);
    } catch (e) {
      rethrow(e);
    }
  }

  /**
   * Closes the channel and drops its handlers. Output already accepted is still delivered while a
   * dispatcher watches the channel. Closing twice is harmless.
   */
  close(): void {
    this.#closed = true;
    this.#forget();
    native.channelClose(this.handle);
  }

  /**
   * Closes the channel at once, dropping the output the peer has not taken: for a peer that
   * stopped reading, whose output {@link close} would otherwise keep waiting to deliver.
   */
  abort(): void {
    this.#closed = true;
    this.#forget();
    this.#pending = 0; // dropped
    native.channelAbort(this.handle);
  }

  /** Closed: what was received and not handed out goes, and every read asks (and fails). */
  #forget(): void {
    this.#input = UNKNOWN;
    this.#queue = EMPTY;
    this.#next = this.#end = this.#taken = this.#recheck = 0;
  }
}

function toBuffer(data: Buffer | Uint8Array | string): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === 'string') return Buffer.from(data);
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`expected a Buffer, Uint8Array or string, got ${typeof data}`);
}

function describeBuffer(value: unknown): string {
  if (Buffer.isBuffer(value)) return 'an empty Buffer';
  return value === null ? 'null' : typeof value;
}

function checkSize(name: string, bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 0xffffffff) {
    throw new RangeError(`${name} must be a whole number of bytes from 1 to 4294967295, got ${bytes}`);
  }
}

/** A connected pair of channels `[parent, child]`, like pyre's pipe (one socket pair). */
export function pipe(): [Channel, Channel] {
  try {
    const [a, b] = native.pipe();
    return [new Channel(a as ChannelHandle), new Channel(b as ChannelHandle)];
  } catch (e) {
    rethrow(e);
  }
}

/** Options of {@link port}. */
export interface PortOptions {
  /**
   * When the port is taken, listen on another port of the same host, as pyre's port does;
   * `channel.address` says which (false: a taken port is an {@link AddressInUseError}). For
   * Internet addresses: a Unix-domain path in use is always an error.
   */
  anyPortIfTaken?: boolean;
}

const PORT_OPTIONS: Rules<PortOptions> = { anyPortIfTaken: boolean };

/**
 * A listening port at `address` (`host:port`, `ip4:host:port`, `ip6:[::1]:port`, `unix:/path`);
 * port 0 asks for an ephemeral one, and `channel.address` says what was bound. A taken address
 * throws an {@link AddressInUseError} naming it, unless `anyPortIfTaken` is set. The host is an
 * IP address, empty (any address) or `localhost`; a name is a {@link NeedsResolvingError} (see
 * {@link resolveAddress}).
 */
export function port(address = 'ip4:127.0.0.1:0', options: PortOptions = {}): Channel {
  checkOptions('port', options, PORT_OPTIONS);
  const wanted = checkAddress(address);
  try {
    return new Channel(native.port(wanted));
  } catch (e) {
    const error = translate(e);
    if (!(error instanceof AddressInUseError && options.anyPortIfTaken === true) || wanted.startsWith('unix:')) {
      throw error;
    }
  }
  try {
    // The canonical form ends in the port, whichever family: ip4:host:port, ip6:[addr]:port.
    return new Channel(native.port(native.parseAddress(wanted).replace(/\d+$/, '0')));
  } catch (e) {
    rethrow(e);
  }
}

/**
 * A connection to `address`, begun without blocking; it becomes write-ready once connected. The
 * host is an IP address or `localhost`; a name is a {@link NeedsResolvingError} (see
 * {@link resolveAddress}).
 */
export function tcp(address: string): Channel {
  try {
    return new Channel(native.connect(checkAddress(address)));
  } catch (e) {
    rethrow(e);
  }
}

/** Takes over an inherited socket descriptor, such as fd 3 handed to a worker process. */
export function adopt(fd: number): Channel {
  if (!Number.isInteger(fd)) throw new TypeError(`fd must be an integer, got ${fd}`);
  try {
    return new Channel(native.adopt(fd));
  } catch (e) {
    rethrow(e);
  }
}

/**
 * Parses an address into its canonical form, without looking anything up: `localhost` is the
 * loopback address (`127.0.0.1`, or `::1` after `ip6:`), and any other host name is a
 * {@link NeedsResolvingError} (see {@link resolveAddress}). Throws a {@link BadAddressError}
 * naming the bad part.
 */
export function parseAddress(address: string): string {
  try {
    return native.parseAddress(checkAddress(address));
  } catch (e) {
    rethrow(e);
  }
}

// node:dns is loaded on first use: most processes (crew members, say) never resolve a name.
let dns: typeof import('node:dns/promises') | undefined;

/**
 * `address` in canonical form with its host name resolved (`db.example:5432` →
 * `ip4:192.0.2.7:5432`), without blocking the loop: the lookup (`dns.lookup`, the system's
 * resolver, /etc/hosts included) runs on libuv's thread pool. The prefix says which family to
 * look for (`ip4:`, `ip6:`; none: the first address the system gives). An address that needs no
 * lookup comes back as {@link parseAddress} gives it. Rejects with a {@link BadAddressError}
 * naming the host when the name does not resolve, or naming the bad part of a bad address.
 *
 * ```ts
 * const channel = tcp(await resolveAddress('db.example:5432'));
 * ```
 */
export async function resolveAddress(address: string): Promise<string> {
  let named: ReturnType<typeof native.addressHostName>;
  try {
    named = native.addressHostName(checkAddress(address));
  } catch (e) {
    rethrow(e);
  }
  if (named === null) return parseAddress(address);
  const { family, host, port } = named;
  dns ??= require('node:dns/promises') as typeof import('node:dns/promises');
  let found: LookupAddress;
  try {
    found = await dns.lookup(host, { family });
  } catch (cause) {
    const why = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
    const wanted = family === 0 ? '' : ` for IPv${family}`;
    throw new BadAddressError(
      `bad address ${JSON.stringify(address)}: the host ${JSON.stringify(host)} does not resolve${wanted} (${why})`,
      'ERR_NEXUS_BAD_ADDRESS',
      { cause },
    );
  }
  return parseAddress(found.family === 6 ? `ip6:[${found.address}]:${port}` : `ip4:${found.address}:${port}`);
}

/** Whether `address` names a host that {@link resolveAddress} must look up before it is used. */
export function needsResolving(address: string): boolean {
  try {
    return native.addressHostName(checkAddress(address)) !== null;
  } catch (e) {
    rethrow(e);
  }
}

function checkAddress(address: unknown): string {
  if (typeof address !== 'string') {
    throw new TypeError(`an address must be a string such as "ip4:127.0.0.1:5000", got ${typeof address}`);
  }
  return address;
}
