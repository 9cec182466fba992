// A node serving one example service for the crossings count: `node --import tsx node.js echo|kv`.
// Prints its port, stops on SIGTERM.
import { Node } from '../../dist/index.js';
import { EchoServer } from '../../examples/services/echo.ts';
import { KeyValueServer } from '../../examples/services/kv.ts';

const Service = { echo: EchoServer, kv: KeyValueServer }[process.argv[2]];
const node = new Node({ services: { service: new Service({ address: 'ip4:127.0.0.1:0' }) } });
await node.prepare();
process.stdout.write(`${node.services.get('service').address.split(':').pop()}\n`);
node.registerSignalHandlers();
await node.watch();
await node.shutdown();
