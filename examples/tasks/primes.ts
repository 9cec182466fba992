// A workplan for `nexus run`: count the primes below a bound, in chunks, across workers.
//   node dist/cli.js run examples/tasks/primes.ts 2000000 --team.size=4
import { Task } from 'pyre-nexus/task';

/** Counts the primes in [from, to). */
export class CountPrimes extends Task<number> {
  static override module = import.meta.url;
  constructor(
    readonly from: number,
    readonly to: number,
  ) {
    super();
  }
  execute(): number {
    let count = 0;
    for (let n = Math.max(2, this.from); n < this.to; n++) {
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
}

/** The workplan: chunks of 10,000 numbers up to `bound` (1,000,000 unless given). */
export function* workplan(bound = '1000000'): Generator<CountPrimes> {
  const limit = Number(bound);
  for (let from = 0; from < limit; from += 10_000) yield new CountPrimes(from, Math.min(limit, from + 10_000));
}
