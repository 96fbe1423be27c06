import assert from "node:assert/strict";
import { parseHostPort } from "../../net/host_port.ts";

Deno.test("parseHostPort: names, IPv4, bracketed IPv6 and port 0", () => {
  assert.deepEqual(parseHostPort("localhost:8080"), { hostname: "localhost", port: 8080 });
  assert.deepEqual(parseHostPort(" 10.0.0.1:0 "), { hostname: "10.0.0.1", port: 0 });
  assert.deepEqual(parseHostPort("[::1]:7001"), { hostname: "::1", port: 7001 });
});

Deno.test("parseHostPort: a missing host or port, or a port past 65535, is a RangeError", () => {
  for (const bad of ["nohost", ":80", "host:", "host:65536", "host:port", ""]) {
    assert.throws(() => parseHostPort(bad), RangeError, bad);
  }
  assert.throws(() => parseHostPort("x"), /^RangeError: expected HOST:PORT, got "x"$/);
});

Deno.test("parseHostPort: a host that could only fail in a DNS lookup is refused up front", () => {
  for (
    const bad of [
      "127.0.0.1:7001:7002",
      "http://h:80",
      "my host:7001",
      "a..b:1",
      "::1:7001",
      "h/x:1",
    ]
  ) {
    assert.throws(
      () => parseHostPort(bad),
      /^RangeError: expected HOST:PORT with HOST a name/,
      bad,
    );
  }
  assert.deepEqual(parseHostPort("node-1.example.com:7001"), {
    hostname: "node-1.example.com",
    port: 7001,
  });
  assert.deepEqual(parseHostPort("[fe80::1%eth0]:7001"), { hostname: "fe80::1%eth0", port: 7001 });
});
