// Echo server on this library: a pyre-nexus Node hosting the example EchoServer service, so the
// benchmark measures what a user of the service side gets, not a hand-tuned loop.
//
//   node --import tsx bench/echo/nexus.js     (tsx: the service is the TypeScript example as is)
//
// Same contract as the other echo servers: listens on 127.0.0.1 (an ephemeral port), prints the
// port as one line on stdout, exits when it gets SIGTERM.
//
// $BENCH_MAX_CONNECTIONS, when set, is given to the service as its `maxConnections` (the scale
// benchmark holds more connections than the default limit of 10,000); otherwise the service's
// defaults apply. $BENCH_SPIN: microseconds the node's dispatcher polls before it sleeps
// (DispatcherOptions.spin; 0, the default, sleeps at once).
import { Dispatcher, Node } from '../../dist/index.js';
import { EchoServer } from '../../examples/services/echo.ts';
import { envInt, fail } from '../peers/common.js';

const maxConnections = envInt('BENCH_MAX_CONNECTIONS', 0);
const spin = envInt('BENCH_SPIN', 0);
const options = { address: 'ip4:127.0.0.1:0', ...(maxConnections > 0 ? { maxConnections } : {}) };
const services = { echo: new EchoServer(options) };
const node = new Node({ services, ...(spin > 0 ? { dispatcher: new Dispatcher({ spin }) } : {}) });
await node.prepare();
// After prepare() the service knows the port it was given, e.g. 'ip4:127.0.0.1:40123'.
const address = node.services.get('echo').address;
const port = Number(String(address).split(':').pop());
if (!Number.isInteger(port) || port <= 0) fail('echo/nexus.js', `cannot read a port from address ${address}`);
// SIGTERM makes watch() resolve, so the Node shuts down through its own path like in production.
node.registerSignalHandlers();
process.stdout.write(`${port}\n`);
await node.watch();
await node.shutdown();
