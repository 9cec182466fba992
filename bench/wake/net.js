// The node-net receiver of the wake-up benchmark (bench/lib/wake.js): Node's `net` on the socket
// it finds on descriptor 3, writing back whatever arrives, until the other end closes.
import net from 'node:net';

const socket = new net.Socket({ fd: 3, readable: true, writable: true });
socket.on('data', (chunk) => socket.write(chunk));
socket.on('end', () => socket.end());
