import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VmchanError } from "../../lib/errors.ts";
import { ExitCode } from "../../lib/exit-codes.ts";
import { checkUnixPath, listenUnix, removeIfSame, UNIX_PATH_MAX } from "../../lib/net/unix-listen.ts";

let dir = "";
afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));
const handlers = { data() {} };

describe("unix socket paths", () => {
  test("the limit counts bytes, not characters", () => {
    const ascii = "/" + "a".repeat(UNIX_PATH_MAX - 1);
    expect(() => checkUnixPath(ascii, "x", "listen on")).not.toThrow();
    // 60 characters, 120 bytes: fits in characters, not in sun_path.
    const wide = "/" + "é".repeat(60);
    expect(wide.length).toBeLessThan(UNIX_PATH_MAX);
    const err = (() => {
      try {
        checkUnixPath(wide, "unix:wide", "connect to");
      } catch (e) {
        return e as VmchanError;
      }
      return null;
    })();
    expect(err, "a 121-byte path was accepted").toBeInstanceOf(VmchanError);
    expect(err!.code).toBe(ExitCode.usage);
    expect(err!.message).toBe(`cannot connect to "unix:wide": the socket path is 121 bytes long, the limit is ${UNIX_PATH_MAX}`);
  });

  test("a NUL byte is refused", () => {
    expect(() => checkUnixPath("/tmp/a\0b", "x", "listen on")).toThrow(/contains a NUL byte/);
  });
});

describe("listenUnix", () => {
  test("makes a 0600 socket at the path, leaves no temporary name, and close removes it", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-ul-"));
    const path = join(dir, "s.sock");
    const l = await listenUnix(path, "unix:s", handlers);
    expect(lstatSync(path).isSocket()).toBe(true);
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir), "a temporary name was left").toEqual(["s.sock"]);
    const c = net.connect(path);
    await new Promise((r, j) => c.once("connect", r).once("error", j));
    c.destroy();
    l.close();
    expect(existsSync(path)).toBe(false);
  });

  test("close leaves alone what replaced the socket at the path", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-ul-"));
    const path = join(dir, "s.sock");
    const l = await listenUnix(path, "unix:s", handlers);
    renameSync(path, `${path}.old`);
    writeFileSync(path, "not yours");
    l.close();
    expect(readFileSync(path, "utf8")).toBe("not yours");
  });

  test("a path of the longest length the kernel takes works, and close removes it", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-ul-"));
    const path = join(dir, "z".repeat(UNIX_PATH_MAX - dir.length - 1));
    expect(Buffer.byteLength(path)).toBe(UNIX_PATH_MAX);
    const l = await listenUnix(path, "unix:long", handlers);
    const c = net.connect(path);
    await new Promise((r, j) => c.once("connect", r).once("error", j));
    c.destroy();
    l.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a directory any user may write to without the sticky bit is refused; a sticky one is fine", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-ul-"));
    const { chmodSync, mkdirSync } = await import("node:fs");
    mkdirSync(join(dir, "open"));
    chmodSync(join(dir, "open"), 0o777);
    const err = await listenUnix(join(dir, "open", "s.sock"), "unix:open", handlers).catch((e) => e);
    expect(err, String(err)).toBeInstanceOf(VmchanError);
    expect(err.code).toBe(ExitCode.permission);
    expect(err.message).toContain("no sticky bit, so another user could replace the socket");
    expect(readdirSync(join(dir, "open"))).toEqual([]);
    mkdirSync(join(dir, "sticky"));
    chmodSync(join(dir, "sticky"), 0o1777);
    const l = await listenUnix(join(dir, "sticky", "s.sock"), "unix:sticky", handlers);
    l.close();
    expect(readdirSync(join(dir, "sticky"))).toEqual([]);
  });

  test("a path ending in a slash is a usage error", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-ul-"));
    const err = await listenUnix(`${dir}/x/`, "unix:x/", handlers).catch((e) => e);
    expect(err.code, String(err)).toBe(ExitCode.usage);
    expect(err.message).toContain('the socket path ends in "/"');
  });

  test("removeIfSame removes only the same inode", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-ul-"));
    const path = join(dir, "s.sock");
    const l = await listenUnix(path, "unix:s", handlers);
    const st = lstatSync(path);
    renameSync(path, `${path}.old`);
    const other = await listenUnix(path, "unix:s2", handlers);
    expect(removeIfSame(path, st)).toBe(false);
    expect(lstatSync(path).isSocket()).toBe(true);
    other.close();
    l.close();
  });
});
