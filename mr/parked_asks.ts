/**
 * Asks for work that found nothing to do, held open until something is (a long poll). A worker
 * that parks its ask starts within a turn of the event loop of a task becoming available, and
 * hears that the job is over at once, instead of sleeping between polls; the bound on holding
 * keeps each call well inside the worker's RPC timeout and lets time-driven events (a backup
 * that falls due, a worker that missed its heartbeats) reach it within that bound.
 *
 * The same rule as Hadoop YARN's and Kafka's fetch requests with a max wait: the server answers
 * as soon as it has something, or empty-handed when the wait is up. The coordinator decides what
 * "something" is; this class only keeps the asks in arrival order, so the worker that has waited
 * longest is served first.
 */

interface Parked<T> {
  key: string;
  resolve: (answer: T) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Parked asks in arrival order, each answered once: by serve(), drop() or its time bound. */
export class ParkedAsks<T> {
  #parked: Parked<T>[] = [];

  /** How many asks are parked. */
  get size(): number {
    return this.#parked.length;
  }

  /**
   * Parks an ask of `key`; the promise settles with what serve() or drop() gives it, or with
   * `timeoutAnswer()` after `holdMs`. An earlier ask of the same key still parked is answered
   * `superseded` first: its caller gave up on it (an RPC timeout) and asked again.
   */
  park(key: string, holdMs: number, timeoutAnswer: () => T, superseded: T): Promise<T> {
    this.drop(key, superseded);
    return new Promise<T>((resolve) => {
      const entry: Parked<T> = {
        key,
        resolve,
        timer: setTimeout(() => {
          this.#remove(entry);
          resolve(timeoutAnswer());
        }, holdMs),
      };
      this.#parked.push(entry);
    });
  }

  /**
   * Offers work to every parked ask, oldest first: `answer(key)` returns what to tell that
   * asker, or undefined to keep it parked. Returns how many asks it answered.
   */
  serve(answer: (key: string) => T | undefined): number {
    let served = 0;
    for (const entry of [...this.#parked]) {
      const reply = answer(entry.key);
      if (reply === undefined) continue;
      this.#remove(entry);
      clearTimeout(entry.timer);
      entry.resolve(reply);
      served++;
    }
    return served;
  }

  /** Answers every parked ask of `key` with `reply` (its worker is gone or asked again). */
  drop(key: string, reply: T): void {
    for (const entry of this.#parked.filter((e) => e.key === key)) {
      this.#remove(entry);
      clearTimeout(entry.timer);
      entry.resolve(reply);
    }
  }

  /** Answers every parked ask with `reply(key)` and clears their timers (the coordinator stops). */
  dropAll(reply: (key: string) => T): void {
    const all = this.#parked;
    this.#parked = [];
    for (const entry of all) {
      clearTimeout(entry.timer);
      entry.resolve(reply(entry.key));
    }
  }

  #remove(entry: Parked<T>): void {
    const i = this.#parked.indexOf(entry);
    if (i >= 0) this.#parked.splice(i, 1);
  }
}
