// TCP clients for the service specs, written with Node's own `net`, as a user's peers would be.
import { once } from 'node:events';
import net from 'node:net';
import { portOf } from './helpers.js';

/** A connection that collects what the server sends and hands it out by length or by line. */
export class Client {
  readonly socket: net.Socket;
  /** Settles when the server has ended or reset the connection. */
  readonly closed: Promise<void>;
  #received = '';
  #wake: (() => void) | null = null;
  #ended = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      this.#received += text;
      this.#notify();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.#ended = true;
        this.#notify();
        resolve();
      });
    });
    socket.on('error', () => {}); // a reset is an outcome the specs look at through `closed`
  }

  /** Connects to an `ip4:host:port` address. */
  static async connect(address: string): Promise<Client> {
    const socket = net.connect({ port: portOf(address), host: '127.0.0.1', noDelay: true });
    await once(socket, 'connect');
    return new Client(socket);
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next `length` characters received; rejects if the connection ends first. */
  async take(length: number): Promise<string> {
    await this.#until(() => this.#received.length >= length);
    const text = this.#received.slice(0, length);
    this.#received = this.#received.slice(length);
    return text;
  }

  /** The next line received, without its newline; rejects if the connection ends first. */
  async line(): Promise<string> {
    await this.#until(() => this.#received.includes('\n'));
    const end = this.#received.indexOf('\n');
    const text = this.#received.slice(0, end);
    this.#received = this.#received.slice(end + 1);
    return text;
  }

  /** Sends a line and resolves to the reply line. */
  async ask(line: string): Promise<string> {
    this.send(`${line}\n`);
    return this.line();
  }

  async #until(done: () => boolean): Promise<void> {
    while (!done()) {
      if (this.#ended) throw new Error(`the server closed the connection; unread: ${JSON.stringify(this.#received)}`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Closes this side. */
  end(): void {
    this.socket.end();
  }
}

/** Whether a connection to `address` is refused (nothing listens there any more). */
export async function refused(address: string): Promise<boolean> {
  const socket = net.connect({ port: portOf(address), host: '127.0.0.1' });
  try {
    await once(socket, 'connect');
    socket.destroy();
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}
