/**
 * Network addresses as the program passes them around: a host name (or IP literal, without
 * brackets) and a TCP port. Here in net/ because the transport and the RPC layer use them; the
 * command line (cli/) only turns a bad one into a usage error.
 */

/** A parsed `host:port` address. */
export interface HostPort {
  hostname: string;
  port: number;
}

/**
 * Parses "host:port" or "[v6]:port" (port 0 allowed: pick a free one); throws RangeError naming
 * what was expected when `raw` is not one.
 */
export function parseHostPort(raw: string): HostPort {
  const match = /^(.*):(\d{1,5})$/.exec(raw.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || match[1] === "" || port > 65535) {
    throw new RangeError(`expected HOST:PORT, got "${raw}"`);
  }
  const host = match[1];
  // Checked here, not left to the resolver: "127.0.0.1:7001:7002", "http://host" or a name
  // with a space would otherwise surface later as a DNS lookup failure far from the flag.
  const bracketed = /^\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\]$/.exec(host);
  if (!bracketed && !HOST_NAME.test(host)) {
    throw new RangeError(
      `expected HOST:PORT with HOST a name, an IPv4 address or [IPv6], got "${raw}"`,
    );
  }
  return { hostname: bracketed ? bracketed[1] : host, port };
}

/** Formats an address as "host:port", bracketing an IPv6 literal ("[::1]:7100"). */
export function formatHostPort(address: HostPort): string {
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return `${host}:${address.port}`;
}

/** A DNS name or IPv4 literal: dot-separated labels of letters, digits, "-" and "_". */
const HOST_NAME =
  /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;
