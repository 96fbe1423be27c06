/**
 * CRC-32C (Castagnoli), the one checksum of the program: WAL records and snapshot files
 * (persist/) and InstallSnapshot transfers (raft/). It lives in util/, a folder of leaf modules
 * that import nothing, because raft/ must stay free of the I/O layers (it may not import
 * persist/) while persist/ should not reach into the consensus core for a checksum; a leaf both
 * may import keeps one implementation without either dependency. Castagnoli rather
 * than the zlib polynomial because it detects more error patterns in the record sizes we write
 * (and it is what etcd, RocksDB and iSCSI use). Slicing-by-16: sixteen 256-entry tables let the
 * inner loop consume sixteen bytes per iteration (read as four little-endian words), about four
 * times faster than the byte-wise loop; over 1 GB/s here, so a 28 KiB batch costs ~25 µs.
 */

// Bit-reversed Castagnoli polynomial 0x1EDC6F41.
const POLY = 0x82f63b78;

// Table s (0..15) lives at [256 * s, 256 * s + 256) of one flat Int32Array: a single typed array
// keeps the hot loop monomorphic, which V8 runs markedly faster than separate tables.
const T: Int32Array = buildTable();

function buildTable(): Int32Array {
  const t = new Int32Array(16 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[i] = c;
  }
  // Table s maps a byte to its CRC contribution when followed by s more zero bytes.
  for (let s = 1; s < 16; s++) {
    for (let i = 0; i < 256; i++) {
      const prev = t[(s - 1) * 256 + i];
      t[s * 256 + i] = (prev >>> 8) ^ t[prev & 0xff];
    }
  }
  return t;
}

/**
 * Returns the CRC-32C of `bytes[start, end)`, continuing from `crc` (the value a previous call
 * returned) so a checksum can be computed over several pieces; pass 0 to start.
 */
export function crc32c(
  bytes: Uint8Array,
  crc = 0,
  start = 0,
  end: number = bytes.length,
): number {
  let c = ~crc;
  let i = start;
  const end16 = end - ((end - i) & 15);
  if (i < end16) {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    while (i < end16) {
      // Fold the running crc into the first word, then look all sixteen bytes up at once.
      const a = v.getInt32(i, true) ^ c;
      const b = v.getInt32(i + 4, true);
      const d = v.getInt32(i + 8, true);
      const e = v.getInt32(i + 12, true);
      c = T[3840 + (a & 0xff)] ^ T[3584 + ((a >>> 8) & 0xff)] ^ T[3328 + ((a >>> 16) & 0xff)] ^
        T[3072 + (a >>> 24)] ^ T[2816 + (b & 0xff)] ^ T[2560 + ((b >>> 8) & 0xff)] ^
        T[2304 + ((b >>> 16) & 0xff)] ^ T[2048 + (b >>> 24)] ^ T[1792 + (d & 0xff)] ^
        T[1536 + ((d >>> 8) & 0xff)] ^ T[1280 + ((d >>> 16) & 0xff)] ^ T[1024 + (d >>> 24)] ^
        T[768 + (e & 0xff)] ^ T[512 + ((e >>> 8) & 0xff)] ^ T[256 + ((e >>> 16) & 0xff)] ^
        T[e >>> 24];
      i += 16;
    }
  }
  while (i < end) c = T[(c ^ bytes[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
