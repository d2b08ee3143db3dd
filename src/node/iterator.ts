// Async iteration over a WebSocket's messages (`for await (const m of ws)`): text as string, binary
// as Buffer, in order. Reading pauses while the consumer is ITER_HIGH_WATER messages behind.

/** Messages buffered for `for await` before reading is paused; it resumes below half of it. */
const ITER_HIGH_WATER = 64;

/** The messages waiting for a `for await` consumer (created on the first iteration). */
export class MessageIterator {
  private readonly queue: ({ data: string | Buffer } | null)[] = [];
  private waiter: ((v: IteratorResult<string | Buffer>) => void) | null = null;
  private paused = false;
  /** `pause(on)` asks the transport to stop (or go on) reading; `detach()` runs when the consumer stops. */
  constructor(private readonly pause: (on: boolean) => void, private readonly detach: () => void) {}

  /** A message arrived. */
  push(data: string | Buffer): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: data, done: false });
      return;
    }
    this.queue.push({ data });
    if (this.queue.length >= ITER_HIGH_WATER && !this.paused) {
      this.paused = true;
      this.pause(true);
    }
  }

  /** The connection closed: iteration ends after the messages already queued. */
  end(): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: undefined, done: true });
    }
    this.queue.push(null);
  }

  iterator(): AsyncIterableIterator<string | Buffer> {
    const q = this.queue;
    const next = (): Promise<IteratorResult<string | Buffer>> => {
      if (q.length > 0) {
        const item = q.shift()!;
        if (item === null) {
          q.unshift(null);
          return Promise.resolve({ value: undefined, done: true });
        }
        if (this.paused && q.length < ITER_HIGH_WATER / 2) {
          this.paused = false;
          this.pause(false);
        }
        return Promise.resolve({ value: item.data, done: false });
      }
      return new Promise((resolve) => {
        this.waiter = resolve;
      });
    };
    const it: AsyncIterableIterator<string | Buffer> = {
      next,
      return: async () => {
        this.detach();
        if (this.paused) {
          this.paused = false;
          this.pause(false);
        }
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }
}
