/** A stopwatch, as pyre's timers are: start, stop, read the total, take laps. */
export class Timer {
  #total = 0n;
  #started: bigint | null = null;

  constructor(readonly name = 'timer') {}

  /** Starts (or keeps) running. */
  start(): this {
    this.#started ??= process.hrtime.bigint();
    return this;
  }

  /** Stops, adding the time since {@link start} to the total. */
  stop(): this {
    if (this.#started !== null) {
      this.#total += process.hrtime.bigint() - this.#started;
      this.#started = null;
    }
    return this;
  }

  /** Stops and forgets the total. */
  reset(): this {
    this.#total = 0n;
    this.#started = null;
    return this;
  }

  /** Seconds accumulated, including the running stretch. */
  read(): number {
    const running = this.#started === null ? 0n : process.hrtime.bigint() - this.#started;
    return Number(this.#total + running) / 1e9;
  }

  /** Seconds since the current stretch started (0 when stopped). */
  lap(): number {
    return this.#started === null ? 0 : Number(process.hrtime.bigint() - this.#started) / 1e9;
  }

  /** Whether the timer is running. */
  get running(): boolean {
    return this.#started !== null;
  }
}
