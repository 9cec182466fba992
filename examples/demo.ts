// The main job: count the primes below 5,000,000 with two worker processes, talking over pyre
// pipes through one dispatcher. Each worker finds its channel on fd 3; the parent hands out
// ranges to whichever worker is free and checks the total against the known answer.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { adopt, type Channel, Dispatcher, pipe, V8Marshaler } from '../dist/index.js';

interface Range {
  from: number;
  to: number;
}
interface Answer extends Range {
  primes: number;
}

const marshaler = new V8Marshaler();
const LIMIT = 5_000_000;
const CHUNK = 250_000;
const KNOWN = 348_513; // π(5,000,000)

function countPrimes({ from, to }: Range): number {
  let count = 0;
  for (let n = Math.max(from, 2); n < to; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return count;
}

async function worker(): Promise<void> {
  const channel = adopt(3);
  const dispatcher = new Dispatcher();
  dispatcher.whenReadReady(channel, (ch) => {
    for (
      let job = marshaler.recv(ch) as Range | undefined;
      job !== undefined;
      job = marshaler.recv(ch) as Range | undefined
    ) {
      marshaler.send({ ...job, primes: countPrimes(job) } satisfies Answer, ch);
    }
    if (ch.atEnd) ch.close();
    return !ch.atEnd;
  });
  await dispatcher.watch();
}

async function main(): Promise<void> {
  const started = performance.now();
  const ranges: Range[] = [];
  for (let from = 0; from < LIMIT; from += CHUNK) ranges.push({ from, to: Math.min(from + CHUNK, LIMIT) });
  const total = ranges.length;
  const dispatcher = new Dispatcher();
  const exits: Promise<unknown>[] = [];
  let primes = 0;
  let answered = 0;
  let ticker = 0;

  const hire = (name: string) => {
    const [mine, theirs] = pipe();
    // The worker runs this same file, with the same loader (tsx) the parent runs under.
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), 'worker'], {
      stdio: ['ignore', 'inherit', 'inherit', theirs.fd as number],
    });
    theirs.close();
    exits.push(once(child, 'exit'));
    const assign = (ch: Channel) => {
      const job = ranges.shift();
      if (job === undefined) ch.close();
      else marshaler.send(job, ch);
    };
    dispatcher.whenReadReady(mine, (ch) => {
      while (!ch.closed) {
        const a = marshaler.recv(ch) as Answer | undefined;
        if (a === undefined) break;
        primes += a.primes;
        answered += 1;
        console.log(`${name}: [${a.from}, ${a.to}) has ${a.primes} primes   (${answered}/${total})`);
        if (answered === total) dispatcher.cancel(ticker);
        assign(ch); // the next range, or close when none is left
      }
      return !ch.closed;
    });
    assign(mine);
  };
  hire('worker 1');
  hire('worker 2');
  ticker = dispatcher.alarm(1, () => {
    console.log(`… ${answered}/${total} ranges done after ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return 1;
  });
  await dispatcher.watch();
  await Promise.all(exits);
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  console.log(`\n${primes} primes below ${LIMIT} (expected ${KNOWN}) in ${seconds} s with 2 worker processes`);
  if (primes !== KNOWN) process.exitCode = 1;
}

await (process.argv[2] === 'worker' ? worker() : main());
