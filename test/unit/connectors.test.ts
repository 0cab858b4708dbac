import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectorFor } from "../../lib/connectors.ts";
import { ExitCode } from "../../lib/exit-codes.ts";
import { portOpenError } from "../../lib/guest/port-errors.ts";

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));


describe("listening connectors", () => {
  test("a unix listener is created mode 0600 and replaces a stale socket file", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-conn-"));
    const path = join(dir, "l.sock");
    const { spawnSync } = await import("node:child_process");
    // A stale socket: bound by a process that then died.
    spawnSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`]);
    expect(statSync(path).isSocket()).toBe(true);
    const c = connectorFor({ kind: "unix-listen", path }, `unix-listen:${path}`) as unknown as { listen(): Promise<void>; close(): void };
    await c.listen();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const client = net.connect(path);
    await new Promise((r, j) => client.once("connect", r).once("error", j));
    client.destroy();
    c.close();
  });

  test("a unix listener refuses a path another process listens on, and a path that is not a socket", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-conn-"));
    const path = join(dir, "busy.sock");
    const other = net.createServer();
    await new Promise<void>((r) => other.listen(path, r));
    const c = connectorFor({ kind: "unix-listen", path }, `unix-listen:${path}`) as unknown as { listen(): Promise<void> };
    const err = await c.listen().catch((e) => e);
    other.close();
    expect(err.code).toBe(ExitCode.busy);
    expect(err.message).toBe(`cannot listen on "unix-listen:${path}": another process listens on ${path}`);
    const file = join(dir, "file");
    writeFileSync(file, "x");
    const f = connectorFor({ kind: "unix-listen", path: file }, `unix-listen:${file}`) as unknown as { listen(): Promise<void> };
    const err2 = await f.listen().catch((e) => e);
    expect(err2.code).toBe(ExitCode.usage);
    expect(err2.message).toContain("exists and is not a socket");
  });
});

describe("port open errors", () => {
  test("permission denied names the owner and mode and suggests a udev rule", () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-conn-"));
    const dev = join(dir, "vport0p1");
    writeFileSync(dev, "");
    chmodSync(dev, 0o600);
    const err = portOpenError(Object.assign(new Error("EACCES"), { code: "EACCES" }), dev, "org.example.a", dir);
    expect(err.code).toBe(ExitCode.permission);
    expect(err.message).toBe(`cannot open port "org.example.a": permission denied (${dev} is owned by uid 0 gid 0, mode 0600)`);
    expect(err.hint).toBe(
      'run as root, or grant a group with a udev rule: SUBSYSTEM=="virtio-ports", ATTR{name}=="org.example.a", GROUP="vmchan", MODE="0660"',
    );
  });

  test("a console port opened as vportNpM says to use its hvc device", () => {
    const err = portOpenError(Object.assign(new Error("ENXIO"), { code: "ENXIO" }), "/dev/vport0p0", "con0", "/");
    expect(err.message).toBe('cannot open port "con0": /dev/vport0p0 is a console port, which is opened as /dev/hvcN');
  });
});
