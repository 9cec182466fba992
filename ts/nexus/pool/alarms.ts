/**
 * The pool's two alarms on its dispatcher: the sweep, at the earliest deadline (a task's timeout,
 * a member's start-up, the end of a pause in recruiting), and the linger alarm of an idle spell.
 * Each is armed for one deadline at a time and dropped once nothing is left to time: an alarm
 * kept for a deadline that is gone would keep the dispatcher, and so a finished script, running.
 */
// Imported: the global `performance` is a getter that V8 looks up anew on every use.
import { performance } from 'node:perf_hooks';
import type { Dispatcher, HandlerId } from '../../ipc/dispatcher.js';

/**
 * Seconds ahead the pool's alarms ring at most: a dispatcher's alarm takes less than 1e9 s, and
 * one that rings early for a deadline further off is armed again.
 */
export const ALARM_HORIZON = 86_400;

export class Alarms {
  readonly #dispatcher: Dispatcher;
  #sweep: HandlerId | null = null;
  #sweepAt = Number.POSITIVE_INFINITY;
  #linger: HandlerId | null = null;

  constructor(dispatcher: Dispatcher) {
    this.#dispatcher = dispatcher;
  }

  /**
   * Arms the sweep for `next` (ms, performance.now()), unless it rings sooner already; drops it
   * when `next` is Infinity. `ring` runs when it rings.
   */
  sweepAt(next: number, ring: () => void): void {
    if (next === Number.POSITIVE_INFINITY) {
      if (this.#sweep !== null) this.#cancelSweep();
      return;
    }
    if (next >= this.#sweepAt) return;
    if (this.#sweep !== null) this.#dispatcher.cancel(this.#sweep);
    this.#sweepAt = next;
    const seconds = Math.min(Math.max(0, (next - performance.now()) / 1000), ALARM_HORIZON);
    this.#sweep = this.#dispatcher.alarm(seconds, () => {
      this.#sweep = null;
      this.#sweepAt = Number.POSITIVE_INFINITY;
      ring();
      return undefined;
    });
  }

  /** Whether the linger alarm is set. */
  get lingering(): boolean {
    return this.#linger !== null;
  }

  /**
   * Sets the linger alarm in `seconds`; `ring` returns seconds to ring again in, or undefined
   * when the spell is over.
   */
  linger(seconds: number, ring: () => number | undefined): void {
    const id = this.#dispatcher.alarm(Math.min(seconds, ALARM_HORIZON), () => {
      this.#linger = null; // over, unless it rings again: what `ring` does may need a new spell
      const again = ring();
      if (again === undefined) return undefined;
      this.#linger = id;
      return Math.min(again, ALARM_HORIZON);
    });
    this.#linger = id;
  }

  /** Drops both alarms. */
  cancel(): void {
    if (this.#sweep !== null) this.#cancelSweep();
    if (this.#linger !== null) this.#dispatcher.cancel(this.#linger);
    this.#linger = null;
  }

  #cancelSweep(): void {
    this.#dispatcher.cancel(this.#sweep as HandlerId);
    this.#sweep = null;
    this.#sweepAt = Number.POSITIVE_INFINITY;
  }
}
