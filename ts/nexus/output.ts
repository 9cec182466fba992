/**
 * Members' output: how what a member writes to its standard output and error reaches the user
 * (PoolOptions.output), and the end of its standard error that the team keeps, so that a member
 * that dies can say why in the error its death causes.
 */
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Rule } from '../options.js';

/** A member's standard output or error. */
export type OutputStream = 'stdout' | 'stderr';

/** Where a line of output came from: the member (its pid, or thread id) and the stream. */
export interface OutputSource {
  readonly member: number;
  readonly stream: OutputStream;
}

/** Receives each line a member writes, without its newline. */
export type OutputListener = (line: string, source: OutputSource) => void;

/**
 * How members' standard output and error reach the user: `'inherit'` (they write to the team's
 * own), `'tagged'` (each line goes to the team's stdout or stderr after `[member <id>] `), or a
 * function that receives each line.
 */
export type MemberOutput = 'inherit' | 'tagged' | OutputListener;

/** How much of a member's standard error the team keeps for the error its death causes (characters). */
export const LAST_WORDS = 4096;

/** Longer lines go out in pieces this long: a member that never ends its line must not fill the team's memory. */
const LONGEST_LINE = 64 * 1024;

/** Throws unless `output` is a {@link MemberOutput}; `where` names the option. */
/** The rule of the `output` option (see ts/options.ts). */
export const memberOutput: Rule = {
  expected: "'inherit', 'tagged' or a function (line, source) => void",
  accepts: (output) => output === 'inherit' || output === 'tagged' || typeof output === 'function',
};

/**
 * What a member writes, on its way to the user (see {@link MemberOutput}); the end of its standard
 * error is kept in {@link lastWords}. Recruiters hand it what they read, in order, per stream.
 */
export class OutputRelay {
  readonly #output: MemberOutput;
  readonly #sources: Record<OutputStream, OutputSource>;
  readonly #decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  /** The start of a line not ended yet, per stream. */
  readonly #partial = { stdout: '', stderr: '' };
  #lastWords = '';
  #cut = false;

  constructor(member: number, output: MemberOutput) {
    this.#output = output;
    this.#sources = {
      stdout: Object.freeze({ member, stream: 'stdout' }),
      stderr: Object.freeze({ member, stream: 'stderr' }),
    };
  }

  /** The end of what the member wrote to its standard error, from a line's start; '' for nothing. */
  get lastWords(): string {
    const words = this.#cut ? this.#lastWords.slice(this.#lastWords.indexOf('\n') + 1) : this.#lastWords;
    return words.trimEnd();
  }

  /** Passes on `chunk`, the next bytes the member wrote to `stream`. */
  take(stream: OutputStream, chunk: Buffer): void {
    const text = this.#decoders[stream].write(chunk);
    if (stream === 'stderr') this.#keep(text);
    if (this.#output === 'inherit') {
      // As they came: whole lines are for the other modes, which must tell members apart.
      (stream === 'stdout' ? process.stdout : process.stderr).write(chunk);
      return;
    }
    const lines = (this.#partial[stream] + text).split('\n');
    let rest = lines.pop() as string;
    while (rest.length > LONGEST_LINE) {
      lines.push(rest.slice(0, LONGEST_LINE));
      rest = rest.slice(LONGEST_LINE);
    }
    this.#partial[stream] = rest;
    this.#pass(stream, lines);
  }

  /** Passes on what `readable` (a worker thread's stdout or stderr, say) brings, to its end. */
  listen(readable: Readable, stream: OutputStream): void {
    readable.on('data', (chunk: Buffer) => this.take(stream, chunk));
    readable.on('end', () => this.end(stream));
  }

  /** `stream` has ended: a last line without its newline goes out too. */
  end(stream: OutputStream): void {
    const rest = this.#partial[stream] + this.#decoders[stream].end();
    this.#partial[stream] = '';
    if (stream === 'stderr') this.#keep(rest);
    if (this.#output !== 'inherit' && rest !== '') this.#pass(stream, [rest]);
  }

  #keep(text: string): void {
    if (text === '') return;
    this.#lastWords += text;
    if (this.#lastWords.length > LAST_WORDS) {
      this.#lastWords = this.#lastWords.slice(-LAST_WORDS);
      this.#cut = true;
    }
  }

  #pass(stream: OutputStream, lines: string[]): void {
    if (lines.length === 0) return;
    const output = this.#output;
    if (output === 'tagged') {
      const tag = `[member ${this.#sources[stream].member}] `;
      (stream === 'stdout' ? process.stdout : process.stderr).write(`${tag}${lines.join(`\n${tag}`)}\n`);
      return;
    }
    if (output === 'inherit') return;
    const source = this.#sources[stream];
    for (const line of lines) {
      try {
        output(line, source);
      } catch (error) {
        // As an event listener's: thrown on its own, and the lines after it still go out.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

/** `message`, followed by the end of what the member wrote to its standard error, if anything. */
export function withLastWords(message: string, lastWords: string): string {
  if (lastWords === '') return message;
  return `${message}; its standard error ended with:\n  ${lastWords.replaceAll('\n', '\n  ')}`;
}
