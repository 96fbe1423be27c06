/**
 * Numbers as a person reads them on a status page: bytes in binary units, durations in the unit
 * that keeps three significant digits, counts with thousands separators. Pure functions.
 */

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** `1536` -> `"1.5 KiB"`; below 1 KiB the exact count (`"512 B"`). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "?";
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const sign = bytes < 0 ? "-" : "";
  if (unit === 0) return `${sign}${value} B`;
  return `${sign}${
    value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
  } ${BYTE_UNITS[unit]}`;
}

/** `28.579314` -> `"28.6 ms"`, `1234` -> `"1.23 s"`, `95000` -> `"1 min 35 s"`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms < 100 ? ms.toPrecision(3) : ms.toFixed(0)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const rest = total % 60;
  if (h > 0) return m === 0 ? `${h} h` : `${h} h ${m} min`;
  return rest === 0 ? `${m} min` : `${m} min ${rest} s`;
}

/** `1234567` -> `"1,234,567"`; a fraction keeps at most two decimals. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return "?";
  return n.toLocaleString("en-US", { maximumFractionDigits: 2 });
}

/** A share in percent for a progress bar: 0-100, 100 when there is nothing to do. */
export function percent(done: number, total: number): number {
  return total <= 0 ? 100 : Math.min(100, Math.round((100 * done) / total));
}
