// A key-value store speaking a line protocol, one command per line:
//   SET <key> <value>   ->  OK
//   GET <key>           ->  VALUE <value>   or  NONE
//   DEL <key>           ->  DELETED         or  NONE
//   anything else       ->  ERROR <what is wrong>
// Keys have no spaces; a value is the rest of the line. Lines end with \n (a \r before it is
// dropped) and are at most `maxLine` bytes: a longer one is answered with an error and the
// conversation is closed, so a peer cannot make the server buffer without bound. A line must
// also arrive whole within the server's `requestTimeout` once it has begun (see `receiving`),
// so a peer cannot hold a conversation by sending a byte a second either.
import { type Channel, Server, type ServerOptions } from 'pyre-nexus';

export interface KeyValueOptions extends ServerOptions {
  /** The longest line accepted, in bytes (default 64 KiB). */
  maxLine?: number;
}

const NEWLINE = 0x0a;

export class KeyValueServer extends Server {
  readonly maxLine: number;
  /** The store, shared by every conversation. */
  readonly store = new Map<string, string>();
  /**
   * Bytes of each conversation that do not make a whole line yet (or wait behind a pause).
   * Weak, so that a conversation ended in any way takes its bytes with it.
   */
  readonly #pending = new WeakMap<Channel, Buffer>();
  readonly #buffer = Buffer.allocUnsafe(64 * 1024);

  constructor(options: KeyValueOptions = {}) {
    const { maxLine = 64 * 1024, ...rest } = options;
    super(rest);
    if (!Number.isInteger(maxLine) || maxLine < 1 || maxLine > this.highWater) {
      throw new RangeError(
        `options.maxLine must be an integer from 1 to highWater (${this.highWater}), got ${maxLine}`,
      );
    }
    this.maxLine = maxLine;
  }

  override process(channel: Channel): boolean {
    let input = this.#pending.get(channel) ?? Buffer.alloc(0);
    this.#pending.delete(channel);
    for (;;) {
      // Answer the whole lines in hand, while the peer keeps taking the answers.
      let start = 0;
      for (let end = input.indexOf(NEWLINE); end !== -1; end = input.indexOf(NEWLINE, start)) {
        if (channel.pendingOutput >= this.highWater) break;
        this.reply(channel, this.execute(input.toString('utf8', start, end).replace(/\r$/, '')));
        start = end + 1;
      }
      input = input.subarray(start);
      if (input.length > this.maxLine) {
        this.reply(channel, `ERROR line longer than ${this.maxLine} bytes\n`);
        channel.close();
        return false;
      }
      if (channel.pendingOutput >= this.highWater) break;
      const length = channel.read(this.#buffer);
      if (length === null) break;
      if (length === 0) {
        channel.close();
        return false;
      }
      input = Buffer.concat([input, this.#buffer.subarray(0, length)]);
    }
    if (input.length > 0) this.#pending.set(channel, Buffer.from(input));
    return true;
  }

  /** A conversation is busy while it holds part of a line, or whole lines waiting behind a pause. */
  override busy(channel: Channel): boolean {
    return this.#pending.has(channel);
  }

  /**
   * And receiving while it holds part of a line, which starts the request deadline. Between
   * pauses, when the server asks, part of a line is all it can hold: `process` answers every
   * whole line unless the peer's unread answers have reached `highWater`, which pauses it.
   */
  override receiving(channel: Channel): boolean {
    return this.#pending.has(channel);
  }

  /** Runs one command and gives its answer line. */
  execute(line: string): string {
    const space = line.indexOf(' ');
    const command = space === -1 ? line : line.slice(0, space);
    const rest = space === -1 ? '' : line.slice(space + 1);
    switch (command) {
      case 'SET': {
        const gap = rest.indexOf(' ');
        if (gap <= 0) return 'ERROR usage: SET <key> <value>\n';
        this.store.set(rest.slice(0, gap), rest.slice(gap + 1));
        return 'OK\n';
      }
      case 'GET': {
        if (rest === '' || rest.includes(' ')) return 'ERROR usage: GET <key>\n';
        const value = this.store.get(rest);
        return value === undefined ? 'NONE\n' : `VALUE ${value}\n`;
      }
      case 'DEL': {
        if (rest === '' || rest.includes(' ')) return 'ERROR usage: DEL <key>\n';
        return this.store.delete(rest) ? 'DELETED\n' : 'NONE\n';
      }
      default:
        return `ERROR unknown command "${command.slice(0, 32)}"; use SET, GET or DEL\n`;
    }
  }
}
