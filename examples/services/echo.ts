// An echo service: every byte a peer sends comes back to it. Written against Server, which
// brings the connection limit, the deadlines, backpressure and graceful stop.
//
// Every byte is a whole request here, so no request deadline applies (`receiving` stays false):
// a peer sending a byte a second gets an echo a second, as a person typing would. It holds no
// memory between bytes, only one of `maxConnections`; if it stops reading its echoes it is paused
// and then aborted by the drain deadline, and if it falls silent the idle timeout closes it.
import { type Channel, Server } from 'pyre-nexus';

export class EchoServer extends Server {
  /** One read buffer for every conversation: the loop serves one peer at a time. */
  readonly #buffer = Buffer.allocUnsafe(64 * 1024);

  override process(channel: Channel): boolean {
    // Called only while the peer takes its echoes (the server pauses it otherwise), so read until
    // the socket is empty, unless the echoes pile up again.
    do {
      const length = channel.read(this.#buffer);
      if (length === null) return true;
      if (length === 0) {
        channel.close();
        return false;
      }
      this.reply(channel, this.#buffer.subarray(0, length));
      // A short read emptied the socket: asking again would only hear "nothing there".
      if (length < this.#buffer.length) return true;
    } while (channel.pendingOutput < this.highWater);
    return true;
  }
}
