// Echo server on Node's own `net` module: the baseline a Node user would write without this library.
//
//   node bench/echo/net.js
//
// Listens on 127.0.0.1 (an ephemeral port), prints the port as one line on stdout and echoes every
// byte on every connection. SIGTERM keeps Node's default action (exit at once): an echo server has
// nothing to flush, and the harness only needs the process gone.
import net from 'node:net';
import { fail } from '../peers/common.js';

// noDelay: echoes are small writes that must leave at once, as in every other server measured.
const server = net.createServer({ noDelay: true }, (socket) => {
  // pipe() rather than on('data', write): it is what the docs suggest for an echo and it also
  // pauses reading while the socket's output is backed up.
  socket.pipe(socket);
  socket.on('error', () => socket.destroy()); // a client gone mid-echo is not the server's failure
});
server.on('error', (err) => fail('echo/net.js', err.message));
server.listen({ host: '127.0.0.1', port: 0 }, () => {
  process.stdout.write(`${server.address().port}\n`);
});
