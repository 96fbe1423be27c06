/**
 * The intermediate record format of MapReduce runs, and block-buffered writers and readers for it.
 *
 * A run is `MAGIC`, then records `[varint keyLength + 1][varint valueLength][key][value]` (UTF-8,
 * lengths in bytes, unsigned LEB128), then an end marker: one 0 byte and the record count as a
 * u32 (big-endian). Length prefixes instead of escaped lines: a key or value may hold any
 * character (tabs, newlines, backslashes) without escaping, a reader finds the next record without
 * scanning for separators, keys compare as raw bytes (the merge never decodes a key it does not
 * hand to reduce), and the end marker tells a truncated file from a complete one. Everything moves
 * in blocks of about a megabyte, so the cost per record is a few typed-array stores, not a system
 * call or a promise.
 */

/** The first four bytes of every run: "MRR1". */
export const MAGIC = new Uint8Array([0x4d, 0x52, 0x52, 0x31]);

/** Default size of the blocks writers fill and readers read. */
export const BLOCK_SIZE = 1 << 20;

/** Where a writer's full blocks go; a returned promise must settle before the next write. */
export type BlockSink = (bytes: Uint8Array) => void | Promise<void>;

/**
 * Where a reader's bytes come from: `Deno.FsFile` and `Deno.Conn` satisfy it. A source that also
 * has `readSync` (a local file) is read with blocking reads, as map tasks write theirs: a read of
 * a local file takes microseconds, while an awaited one costs a round trip through the runtime's
 * blocking thread pool and an event loop turn.
 */
export interface ByteSource {
  read(buffer: Uint8Array): Promise<number | null>;
  readSync?(buffer: Uint8Array): number | null;
}

/** A run is not in the record format: damaged, truncated, or not a run at all. */
export class RecordFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RecordFormatError";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

/** Number of bytes `text` takes in UTF-8 (a lone surrogate counts as U+FFFD, as TextEncoder writes it). */
export function utf8Length(text: string): number {
  const length = text.length;
  let bytes = length;
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) {
      bytes += 1;
    } else if (code >= 0xd800 && code <= 0xdbff && i + 1 < length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2; // Two UTF-16 units, four bytes.
        i++;
      } else {
        bytes += 2;
      }
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

/** Writes `text` (whose UTF-8 length is `bytes`) into `block` at `pos`; returns the new position. */
function putString(block: Uint8Array, pos: number, text: string, bytes: number): number {
  if (bytes === text.length) {
    // ASCII: a store per character beats encodeInto's call overhead on short keys.
    for (let i = 0; i < bytes; i++) block[pos + i] = text.charCodeAt(i);
  } else {
    encoder.encodeInto(text, block.subarray(pos, pos + bytes));
  }
  return pos + bytes;
}

/**
 * Strings shorter than this many UTF-16 units take at most 3 * 41 = 123 bytes in UTF-8: their
 * length prefix (even keyLength + 1) is a single byte.
 */
const SHORT = 42;

/**
 * Writes a string of fewer than SHORT units into `block` at `pos` (which has room for 3 bytes
 * per unit); returns the position after it.
 */
function putShort(block: Uint8Array, pos: number, text: string): number {
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) {
      // Not ASCII: encode the whole string again (lone surrogates become U+FFFD, as utf8Length
      // counts them).
      return pos + encoder.encodeInto(text, block.subarray(pos, pos + 3 * length)).written;
    }
    block[pos + i] = code;
  }
  return pos + length;
}

function putVarint(block: Uint8Array, pos: number, value: number): number {
  while (value >= 0x80) {
    block[pos++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  block[pos++] = value;
  return pos;
}

/** Single-byte strings, so decoding a "1" value costs an array lookup. */
const ONE_BYTE = Array.from({ length: 128 }, (_, i) => String.fromCharCode(i));
/**
 * Two-byte ASCII strings, made on first use: most values a combiner wrote are counts of one or
 * two digits, and a looked-up string is neither built nor later collected.
 */
const TWO_BYTES: (string | undefined)[] = new Array(128 * 128).fill(undefined);

/**
 * Decodes `buffer[start, end)` as UTF-8. Small enough for V8 to inline where it is called per
 * record (a merge's values): one- and two-byte ASCII strings are looked up, the rest is
 * decodeLonger's.
 */
export function decodeUtf8(buffer: Uint8Array, start: number, end: number): string {
  const length = end - start;
  if (length === 1) {
    const byte = buffer[start];
    if (byte < 0x80) return ONE_BYTE[byte];
  } else if (length === 2) {
    const first = buffer[start];
    const second = buffer[start + 1];
    if ((first | second) < 0x80) {
      return TWO_BYTES[(first << 7) | second] ??= ONE_BYTE[first] + ONE_BYTE[second];
    }
  }
  return decodeLonger(buffer, start, end);
}

/** Strings of at most this many bytes are decoded by decodeLonger's fromCharCode path. */
const SHORT_CODES = 32;
/** Per length, an array of that many character codes, reused by every decodeLonger call. */
const CODES = Array.from({ length: SHORT_CODES + 1 }, (_, n) => new Array<number>(n).fill(0));

/** decodeUtf8 of anything but a one- or two-byte ASCII string. */
function decodeLonger(buffer: Uint8Array, start: number, end: number): string {
  const length = end - start;
  if (length === 0) return "";
  if (length <= SHORT_CODES) {
    // Short ASCII strings (most keys): one fromCharCode of their bytes beats TextDecoder's call
    // overhead, and a string built character by character (a new string per character).
    const codes = CODES[length];
    for (let i = 0; i < length; i++) {
      const byte = buffer[start + i];
      if (byte >= 0x80) return decoder.decode(buffer.subarray(start, end));
      codes[i] = byte;
    }
    return String.fromCharCode.apply(null, codes);
  }
  return decoder.decode(buffer.subarray(start, end));
}

/** Compares `a[aStart, aEnd)` with `b[bStart, bEnd)` as unsigned bytes: negative, 0 or positive. */
export function compareBytes(
  a: Uint8Array,
  aStart: number,
  aEnd: number,
  b: Uint8Array,
  bStart: number,
  bEnd: number,
): number {
  const aLength = aEnd - aStart;
  const bLength = bEnd - bStart;
  const n = aLength < bLength ? aLength : bLength;
  for (let i = 0; i < n; i++) {
    const d = a[aStart + i] - b[bStart + i];
    if (d !== 0) return d;
  }
  return aLength - bLength;
}

/**
 * Compares two strings in the order of their UTF-8 bytes (code point order), which differs from
 * JavaScript's UTF-16 order only where a surrogate pair meets a character in U+E000..U+FFFF, and
 * where a lone surrogate is (it is written as U+FFFD).
 */
export function compareUtf8(a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (astral code points) sort after the rest of the BMP in UTF-8; a lone one is
      // written as U+FFFD, and two that both are compare equal here.
      x = utf8Order(a, i, x);
      y = utf8Order(b, i, y);
      if (x === y) continue;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * Where the code unit `code` at `text[i]` (at least U+D800) falls in UTF-8 byte order, as a
 * number below 0x10000 that orders like the bytes: U+E000..U+FFFF move down below the
 * surrogates, which stand for astral code points (four bytes, F0 and up), and an unpaired
 * surrogate ranks as U+FFFD, the character TextEncoder writes for it (EF BF BD).
 */
export function utf8Order(text: string, i: number, code: number): number {
  if (code >= 0xe000) return code - 0x800;
  const paired = code < 0xdc00
    ? isLowSurrogate(text.charCodeAt(i + 1))
    : i > 0 && isHighSurrogate(text.charCodeAt(i - 1));
  return paired ? code + 0x2000 : 0xfffd - 0x800;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

const HAS_SURROGATE = /[\ud800-\udfff]/;

/**
 * Sorts strings in place in UTF-8 byte order: the engine's native sort when no string holds a
 * surrogate (then UTF-16 order is byte order), compareUtf8 otherwise.
 */
export function sortUtf8(keys: string[]): string[] {
  for (let i = 0; i < keys.length; i++) {
    if (HAS_SURROGATE.test(keys[i])) return keys.sort(compareUtf8);
  }
  return keys.sort();
}

/** A sink that writes each block to `file` with blocking writes (map tasks: the app is sync). */
export function syncFileSink(file: Deno.FsFile): BlockSink {
  return (bytes) => {
    let done = 0;
    while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
  };
}

/** A sink that writes each block to `file` (or any writer) asynchronously. */
export function fileSink(file: { write(p: Uint8Array): Promise<number> }): BlockSink {
  return async (bytes) => {
    let done = 0;
    while (done < bytes.length) done += await file.write(bytes.subarray(done));
  };
}

/**
 * Fills blocks with bytes and hands each full one to a sink. Methods return a promise only when
 * the sink did (await it before the next call); with a synchronous sink they never do.
 */
class BlockWriter {
  readonly #sink: BlockSink;
  readonly #blockSize: number;
  protected block: Uint8Array;
  protected pos = 0;
  #written = 0;

  constructor(sink: BlockSink, block: number | Uint8Array) {
    this.#sink = sink;
    this.#blockSize = typeof block === "number" ? block : block.length;
    this.block = typeof block === "number" ? new Uint8Array(block) : block;
  }

  /** Bytes handed to the sink so far plus those buffered. */
  get bytes(): number {
    return this.#written + this.pos;
  }

  /** Makes room for `need` more bytes, handing the filled part of the block to the sink. */
  protected room(need: number): void | Promise<void> {
    if (this.pos + need <= this.block.length) return;
    const full = this.block.subarray(0, this.pos);
    this.#written += this.pos;
    const result = this.#sink(full);
    // A sink still holding the block (a pending write) gets to keep it: start a new one.
    if (result !== undefined || need > this.block.length) {
      this.block = new Uint8Array(Math.max(this.#blockSize, need));
    }
    this.pos = 0;
    return result;
  }

  /** Hands what is buffered to the sink. */
  protected drain(): void | Promise<void> {
    if (this.pos === 0) return;
    const full = this.block.subarray(0, this.pos);
    this.#written += this.pos;
    this.pos = 0;
    const result = this.#sink(full);
    if (result !== undefined) this.block = new Uint8Array(this.#blockSize);
    return result;
  }
}

/** Writes one run: the magic, records in the caller's order, and the end marker on close(). */
export class RecordWriter extends BlockWriter {
  #records = 0;

  /**
   * Starts a run whose blocks go to `sink`; `block` is a size, or a buffer to fill (it must not be
   * in use elsewhere until close(); with an async sink a full block is replaced, not reused).
   */
  constructor(sink: BlockSink, block: number | Uint8Array = BLOCK_SIZE) {
    super(sink, block);
    this.block.set(MAGIC);
    this.pos = MAGIC.length;
  }

  /** Records added so far. */
  get records(): number {
    return this.#records;
  }

  /** Appends one record; returns a promise (await it) only when a full block went to an async sink. */
  add(key: string, value: string): void | Promise<void> {
    if (key.length < SHORT && value.length < SHORT) {
      // The common record (a word and a count): both length prefixes fit in one byte whatever
      // the encoding, so the characters go straight into the block after them, and an ASCII
      // string costs one pass instead of a length pass and a copy pass.
      const result = this.room(2 + 3 * (key.length + value.length));
      const block = this.block;
      const start = this.pos;
      const keyEnd = putShort(block, start + 2, key);
      const valueEnd = putShort(block, keyEnd, value);
      block[start] = keyEnd - start - 1; // keyLength + 1
      block[start + 1] = valueEnd - keyEnd;
      this.pos = valueEnd;
      this.#records++;
      return result;
    }
    const keyBytes = utf8Length(key);
    const valueBytes = utf8Length(value);
    const result = this.room(10 + keyBytes + valueBytes);
    let pos = putVarint(this.block, this.pos, keyBytes + 1);
    pos = putVarint(this.block, pos, valueBytes);
    pos = putString(this.block, pos, key, keyBytes);
    this.pos = putString(this.block, pos, value, valueBytes);
    this.#records++;
    return result;
  }

  /** Writes the end marker and hands the last block to the sink; the sink stays open. */
  close(): void | Promise<void> {
    const result = this.room(5);
    const block = this.block;
    const pos = this.pos;
    block[pos] = 0;
    const count = this.#records >>> 0;
    block[pos + 1] = count >>> 24;
    block[pos + 2] = (count >>> 16) & 0xff;
    block[pos + 3] = (count >>> 8) & 0xff;
    block[pos + 4] = count & 0xff;
    this.pos = pos + 5;
    if (result !== undefined) return result.then(() => this.drain());
    return this.drain();
  }
}

/** Writes text (reduce output lines) in UTF-8 through blocks. */
export class TextWriter extends BlockWriter {
  /** Starts writing to `sink`. */
  constructor(sink: BlockSink, blockSize = BLOCK_SIZE) {
    super(sink, blockSize);
  }

  /** Appends `text`; returns a promise (await it) only when a full block went to an async sink. */
  add(text: string): void | Promise<void> {
    const bytes = utf8Length(text);
    const result = this.room(bytes);
    this.pos = putString(this.block, this.pos, text, bytes);
    return result;
  }

  /**
   * Appends the line `<key> <value>\n`, where `keyBytes[0, keyLength)` are the bytes `key` was
   * decoded from (a merge's current key): an ASCII key's bytes are copied as they are instead of
   * the line being built as a string and encoded again; any other key goes through `key`, so the
   * line is the same bytes either way. Returns a promise as add() does.
   */
  line(keyBytes: Uint8Array, keyLength: number, key: string, value: string): void | Promise<void> {
    let high = 0;
    for (let i = 0; i < keyLength; i++) high |= keyBytes[i];
    if (high >= 0x80 || value.length >= SHORT) return this.add(`${key} ${value}\n`);
    const result = this.room(keyLength + 2 + 3 * value.length);
    const block = this.block;
    let pos = this.pos;
    for (let i = 0; i < keyLength; i++) block[pos + i] = keyBytes[i];
    pos += keyLength;
    block[pos] = 0x20;
    pos = putShort(block, pos + 1, value);
    block[pos] = 0x0a;
    this.pos = pos + 1;
    return result;
  }

  /** Hands the last block to the sink; the sink stays open. */
  close(): void | Promise<void> {
    return this.drain();
  }
}

/**
 * Key bytes a reader packs into its `head` number. Six bytes (48 bits) times eight, plus the
 * length code, stay below 2^53, so the number is an exact integer.
 */
export const HEAD_BYTES = 6;

/** Multiplier that left-aligns n < HEAD_BYTES key bytes in a head, by n (padding and length code). */
const HEAD_SCALE = Array.from({ length: HEAD_BYTES + 1 }, (_, n) => 8 * 256 ** (HEAD_BYTES - n));

/**
 * The head number of the key `buffer[start, start + length)`: its first HEAD_BYTES bytes as a
 * big-endian number (zero-padded), times 8, plus the key's length when it is at most HEAD_BYTES,
 * else 7. Heads order as the keys' bytes do, except that two keys longer than HEAD_BYTES with
 * the same first HEAD_BYTES bytes have equal heads (compare their remaining bytes); equal heads
 * of keys of at most HEAD_BYTES bytes mean equal keys. (A shorter key that matches a longer one
 * as far as it goes, zero-padded, has the smaller length code: it sorts first, as in bytes.)
 */
export function headOf(buffer: Uint8Array, start: number, length: number): number {
  if (length >= HEAD_BYTES) {
    // Most keys: straight-line code, in two 24-bit halves (exact in int32 arithmetic).
    const high = (buffer[start] << 16) | (buffer[start + 1] << 8) | buffer[start + 2];
    const low = (buffer[start + 3] << 16) | (buffer[start + 4] << 8) | buffer[start + 5];
    return (high * 0x1000000 + low) * 8 + (length === HEAD_BYTES ? HEAD_BYTES : 7);
  }
  let head = 0;
  for (let i = 0; i < length; i++) head = head * 256 + buffer[start + i];
  return head * HEAD_SCALE[length] + length;
}

/**
 * Reads the records of one run from a byte source in blocks. After `advance()` returns true the
 * current record's key is `buffer[keyStart, keyEnd)` and its value `buffer[valueStart, valueEnd)`,
 * valid until the next `advance()` or `fill()`.
 */
export class RecordReader {
  /** The block holding the current record. */
  buffer: Uint8Array;
  keyStart = 0;
  keyEnd = 0;
  valueStart = 0;
  valueEnd = 0;
  /**
   * The current key's head (see headOf): a merge orders runs by it, comparing key bytes only
   * when two heads are equal and their keys longer than HEAD_BYTES. 0 before the first record
   * and after the last (the key fields are then empty).
   */
  head = 0;
  /** True when the source reads synchronously: advanceSync() may be called instead of fill(). */
  readonly sync: boolean;
  readonly #source: ByteSource;
  readonly #name: string;
  /**
   * Where the next record starts in `buffer`, and where the bytes read into it end. A merge
   * parses the common record in place (mr/merge.ts Merger.collect), moving `pos` past it and
   * counting it in `records`; everything else goes through advance().
   */
  pos = 0;
  end = 0;
  /** Records read so far. */
  records = 0;
  #eof = false;
  #started = false;
  #finished = false;
  #consumed = 0;

  /** Reads from `source`; `name` (a file name) appears in error messages. */
  constructor(source: ByteSource, name: string, blockSize = BLOCK_SIZE) {
    this.#source = source;
    this.#name = name;
    this.buffer = new Uint8Array(blockSize);
    this.sync = typeof source.readSync === "function";
  }

  /**
   * Moves to the next record: true when there is one, false after the last, undefined when the
   * block ran out (await fill(), then call advance() again). Throws RecordFormatError on damage.
   */
  advance(): boolean | undefined {
    if (this.#finished) return false;
    const buffer = this.buffer;
    const end = this.end;
    let pos = this.pos;
    if (!this.#started) {
      if (end - pos < MAGIC.length) return this.#short();
      for (let i = 0; i < MAGIC.length; i++) {
        if (buffer[pos + i] !== MAGIC[i]) throw this.#error("not a record run (bad magic)");
      }
      pos += MAGIC.length;
      this.pos = pos;
      this.#started = true;
    }
    // First length: keyLength + 1, or 0 for the end marker.
    let keyLength = 0;
    let shift = 1;
    for (;;) {
      if (pos >= end) return this.#short();
      const byte = buffer[pos++];
      keyLength += (byte & 0x7f) * shift;
      if (byte < 0x80) break;
      shift *= 128;
      if (shift > 2 ** 35) throw this.#error("record length too long");
    }
    if (keyLength === 0) return this.#endMarker(pos);
    keyLength -= 1;
    let valueLength = 0;
    shift = 1;
    for (;;) {
      if (pos >= end) return this.#short();
      const byte = buffer[pos++];
      valueLength += (byte & 0x7f) * shift;
      if (byte < 0x80) break;
      shift *= 128;
      if (shift > 2 ** 35) throw this.#error("record length too long");
    }
    if (pos + keyLength + valueLength > end) return this.#short(keyLength + valueLength + 20);
    this.keyStart = pos;
    this.keyEnd = pos + keyLength;
    this.valueStart = this.keyEnd;
    this.valueEnd = this.keyEnd + valueLength;
    this.head = headOf(buffer, pos, keyLength);
    this.pos = this.valueEnd;
    this.records++;
    return true;
  }

  /**
   * Like advance(), reading more with blocking reads whenever the block runs out (never
   * undefined); only for a reader whose `sync` is true.
   */
  advanceSync(): boolean {
    for (;;) {
      const more = this.advance();
      if (more !== undefined) return more;
      this.#received(this.#source.readSync!(this.#room()));
    }
  }

  /** Reads more bytes, keeping the unread tail; call after advance() returned undefined. */
  async fill(): Promise<void> {
    this.#received(await this.#source.read(this.#room()));
  }

  /** Where the next read goes: the unread tail moved to the block's start, grown if needed. */
  #room(): Uint8Array {
    if (this.#eof) throw this.#error("truncated (no end marker)");
    const tail = this.end - this.pos;
    if (this.pos > 0) {
      this.#consumed += this.pos;
      this.buffer.copyWithin(0, this.pos, this.end);
      this.pos = 0;
      this.end = tail;
    }
    // Grow when the record needs more than the block, or when the block is full of it.
    const wanted = this.end === this.buffer.length ? this.buffer.length + 1 : this.#wanted;
    if (wanted > this.buffer.length) {
      const bigger = new Uint8Array(Math.max(wanted, this.buffer.length * 2));
      bigger.set(this.buffer.subarray(0, this.end));
      this.buffer = bigger;
    }
    return this.buffer.subarray(this.end);
  }

  /** Takes the result of a read into #room(). */
  #received(n: number | null): void {
    if (n === null) this.#eof = true;
    else this.end += n;
  }

  /** Reads the next record, filling as needed: the convenient, slower form of advance(). */
  async next(): Promise<boolean> {
    for (;;) {
      const more = this.advance();
      if (more !== undefined) return more;
      await this.fill();
    }
  }

  /** The current record's key as a string. */
  key(): string {
    return decodeUtf8(this.buffer, this.keyStart, this.keyEnd);
  }

  /** The current record's value as a string. */
  value(): string {
    return decodeUtf8(this.buffer, this.valueStart, this.valueEnd);
  }

  #wanted = 0;

  #short(need = 0): undefined {
    if (this.#eof) throw this.#error("truncated (no end marker)");
    // The block must hold at least one whole record: grow it on the next fill if it cannot.
    this.#wanted = need;
    return undefined;
  }

  #endMarker(pos: number): boolean | undefined {
    if (this.end - pos < 4) return this.#short();
    const b = this.buffer;
    const count = ((b[pos] << 24) | (b[pos + 1] << 16) | (b[pos + 2] << 8) | b[pos + 3]) >>> 0;
    if (count !== this.records >>> 0) {
      throw this.#error(`end marker counts ${count} records, read ${this.records}`);
    }
    if (pos + 4 !== this.end) throw this.#error("bytes after the end marker");
    this.pos = pos + 4;
    this.#finished = true;
    // No current record: an empty key, which a merge never compares byte by byte.
    this.keyStart = this.keyEnd = 0;
    this.valueStart = this.valueEnd = 0;
    this.head = 0;
    return false;
  }

  #error(what: string): RecordFormatError {
    return new RecordFormatError(
      `Cannot read run ${this.#name}: ${what} at byte ${this.#consumed + this.pos}`,
    );
  }
}
