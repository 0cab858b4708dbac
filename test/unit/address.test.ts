import { describe, expect, test } from "bun:test";
import { parseAddress, splitArgv } from "../../lib/address.ts";
import { parseByteCount, parseSeconds } from "../../lib/args.ts";
import { UsageError } from "../../lib/errors.ts";

describe("address parser", () => {
  test("parses every kind from the keyword table", () => {
    expect(parseAddress("-")).toEqual({ kind: "stdio" });
    expect(parseAddress("stdio")).toEqual({ kind: "stdio" });
    expect(parseAddress("org.example.log.0")).toEqual({ kind: "port", spec: "org.example.log.0" });
    expect(parseAddress("/dev/vport0p1")).toEqual({ kind: "port", spec: "/dev/vport0p1" });
    expect(parseAddress("port:a:b")).toEqual({ kind: "port", spec: "a:b" });
    expect(parseAddress("myvm:org.qemu.guest_agent.0")).toEqual({ kind: "vm-port", vm: "myvm", port: "org.qemu.guest_agent.0" });
    expect(parseAddress("unix:/run/a.sock")).toEqual({ kind: "unix", path: "/run/a.sock" });
    expect(parseAddress("UNIX-CONNECT:/x")).toEqual({ kind: "unix", path: "/x" });
    expect(parseAddress("unix-listen:/tmp/l.sock")).toEqual({ kind: "unix-listen", path: "/tmp/l.sock" });
    expect(parseAddress("tcp:localhost:22")).toEqual({ kind: "tcp", host: "localhost", port: 22 });
    expect(parseAddress("tcp:[::1]:22")).toEqual({ kind: "tcp", host: "::1", port: 22 });
    expect(parseAddress("tcp-listen:2222")).toEqual({ kind: "tcp-listen", host: "127.0.0.1", port: 2222 });
    expect(parseAddress("tcp-listen:0.0.0.0:2222")).toEqual({ kind: "tcp-listen", host: "0.0.0.0", port: 2222 });
    expect(parseAddress(`exec:sh -c 'echo "a b"'`)).toEqual({ kind: "exec", argv: ["sh", "-c", `echo "a b"`] });
  });

  test("arity and range errors say what was expected", () => {
    expect(() => parseAddress("tcp:host")).toThrow('address "tcp:host": expected 2 parts, HOST:PORT (tcp:HOST:PORT)');
    expect(() => parseAddress("tcp:host:99999")).toThrow('"99999" is not a TCP port number (0-65535)');
    expect(() => parseAddress("unix:")).toThrow("expected a socket path");
    expect(() => parseAddress("exec:")).toThrow("expected a command");
    expect(() => parseAddress(":x")).toThrow('address ":x" has no VM name before ":"');
    expect(() => parseAddress("vm:")).toThrow('address "vm:" has no port name after ":"');
    expect(() => parseAddress("")).toThrow(UsageError);
  });

  test("splits exec commands like a shell without running one", () => {
    expect(splitArgv(`a  b\\ c "d e" 'f"g'`)).toEqual(["a", "b c", "d e", 'f"g']);
    expect(splitArgv(`""`)).toEqual([""]);
    expect(() => splitArgv(`"open`)).toThrow("unclosed");
  });
});

describe("option values", () => {
  test("seconds and byte counts", () => {
    expect(parseSeconds("2", "--timeout")).toBe(2000);
    expect(parseSeconds("0.25", "--timeout")).toBe(250);
    expect(parseSeconds("3s", "--timeout")).toBe(3000);
    expect(() => parseSeconds("soon", "--timeout")).toThrow('--timeout takes a number of seconds, not "soon"');
    expect(parseByteCount("4096", "--bytes")).toBe(4096);
    expect(parseByteCount("64k", "--bytes")).toBe(65536);
    expect(parseByteCount("16M", "--bytes")).toBe(16 * 1024 * 1024);
    expect(parseByteCount("1GiB", "--bytes")).toBe(1024 ** 3);
    expect(() => parseByteCount("-1", "--bytes")).toThrow(UsageError);
  });
});

describe("file: addresses", () => {
  test("file:PATH is a port address that skips the virtio-serial check; a bare path does not", () => {
    expect(parseAddress("file:/tmp/x")).toEqual({ kind: "port", spec: "/tmp/x", anyDevice: true });
    expect(parseAddress("FILE:rel/x")).toEqual({ kind: "port", spec: "rel/x", anyDevice: true });
    expect(parseAddress("file:a:b")).toEqual({ kind: "port", spec: "a:b", anyDevice: true });
    expect(parseAddress("/tmp/x")).toStrictEqual({ kind: "port", spec: "/tmp/x" });
    expect(parseAddress("port:/tmp/x")).toStrictEqual({ kind: "port", spec: "/tmp/x" });
    expect(() => parseAddress("file:")).toThrow('address "file:": expected a path (file:PATH)');
  });
});
