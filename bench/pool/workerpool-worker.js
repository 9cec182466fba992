// workerpool's worker (run as a child process, workerType 'process'): the shared task bodies.
import workerpool from 'workerpool';
import { sleep, spin, trivial } from './tasks.js';

workerpool.worker({ trivial, spin, sleep });
