/**
 * Reading a map's partition file in place while checking it against the length and CRC-32C the
 * mapper reported (mr run: the reducer is on the mapper's machine). The check is the one a copy
 * or an HTTP transfer would have made, done on the bytes as the merge reads them, so the file is
 * read once and never copied. Like HDFS's client-side checksum verification on read, a mismatch
 * fails the read rather than returning data: the attempt's output is never committed from bytes
 * that did not pass.
 */
import { crc32c } from "../util/crc32c.ts";
import type { ByteSource } from "./record_format.ts";
import { type Checksum, crcHex, IntegrityError } from "./transfer.ts";

/** One input of a reduce was not the bytes its mapper reported: `input` is its index. */
export class CorruptInputError extends Error {
  constructor(readonly input: number, message: string) {
    super(message);
    this.name = "CorruptInputError";
  }
}

/**
 * A ByteSource over a file that counts its length and CRC-32C as bytes are read: a read that
 * goes past `expect.length`, a file that ends before it, or a CRC that differs once all of it
 * was read throws IntegrityError. `verified` is true once exactly the expected bytes were read.
 */
export class ChecksummedSource implements ByteSource {
  readonly #file: ByteSource;
  readonly #expect: Checksum;
  readonly #name: string;
  #length = 0;
  #crc = 0;
  #verified = false;
  /** Like read(), with a blocking read: present only when `file` has readSync (a local file). */
  readonly readSync?: (buffer: Uint8Array) => number | null;

  /** Reads `file` (named `name` in errors), expecting exactly `expect`'s bytes. */
  constructor(file: ByteSource, expect: Checksum, name: string) {
    this.#file = file;
    this.#expect = expect;
    this.#name = name;
    const readSync = file.readSync?.bind(file);
    if (readSync) this.readSync = (buffer) => this.#count(buffer, readSync(buffer));
    // An empty file is checked before the first read (a reader may never ask for more).
    if (expect.length === 0) this.#check();
  }

  /** True once all the expected bytes were read and their CRC matched. */
  get verified(): boolean {
    return this.#verified;
  }

  /** Reads into `buffer`, checking the bytes read so far (see the class). */
  async read(buffer: Uint8Array): Promise<number | null> {
    return this.#count(buffer, await this.#file.read(buffer));
  }

  /** Counts and checks the `n` bytes a read put at the start of `buffer`. */
  #count(buffer: Uint8Array, n: number | null): number | null {
    if (n === null) {
      // The end, short of the expected bytes (or after a check that failed): say which.
      if (!this.#verified) this.#check();
      return null;
    }
    this.#crc = crc32c(buffer, this.#crc, 0, n);
    this.#length += n;
    if (this.#length >= this.#expect.length) this.#check();
    return n;
  }

  /**
   * Reads what the consumer left unread and checks the whole file; throws IntegrityError when it
   * is not the expected bytes. A reader that failed on damage calls this to tell corruption (the
   * file's fault) from a bad app or format bug.
   */
  async finish(): Promise<void> {
    const scratch = new Uint8Array(64 * 1024);
    while (!this.#verified) {
      if (await this.read(scratch) === null) break;
    }
    if (!this.#verified) this.#check();
  }

  #check(): void {
    if (this.#length > this.#expect.length) {
      throw new IntegrityError(`${this.#name} is longer than its ${this.#expect.length} bytes`);
    }
    if (this.#length < this.#expect.length) {
      throw new IntegrityError(
        `${this.#name} is truncated: ${this.#length} of ${this.#expect.length} bytes`,
      );
    }
    if (this.#crc !== this.#expect.crc) {
      throw new IntegrityError(
        `${this.#name} is corrupt: CRC-32C ${crcHex(this.#crc)} where ${
          crcHex(this.#expect.crc)
        } was reported`,
      );
    }
    this.#verified = true;
  }
}
