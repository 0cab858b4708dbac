/**
 * What listen and bridge may touch on disk, and what they leave behind, against the compiled binary:
 * things at a listening path that are not theirs (a file, a directory, a fifo, a symlink, a live
 * socket of another process, another user's stale socket in a sticky directory) are refused and left
 * exactly as they were; what they made is removed on every way out (SIGTERM, SIGINT, SIGHUP, normal
 * end, error), and only if the path still names it. Host-only: no VM.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode } from "../../lib/exit-codes.ts";
import { VMCHAN, vmchan } from "../support/binary.ts";
import { unixListening } from "../support/proc-stats.ts";

const dir = mkdtempSync(join(tmpdir(), "vmchan-fs-"));
chmodSync(dir, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => join(dir, `${++n}-${name}`);
const NOBODY = 65534;

/** A stale socket at `path`: bound by a process that then died (nothing listens, connect is refused). */
function staleSocket(path: string): void {
  spawnSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`]);
  expect(lstatSync(path).isSocket(), `no stale socket made at ${path}`).toBe(true);
}

/** A process of its own listening on `path`; resolves once it listens. */
async function liveListener(path: string, asUser?: number) {
  const script = `require("net").createServer(s => s.end("owner\\n")).listen(${JSON.stringify(path)}, () => console.log("ready"))`;
  const argv = asUser === undefined ? [process.execPath, "-e", script] : ["setpriv", `--reuid=${asUser}`, `--regid=${asUser}`, "--clear-groups", process.execPath, "-e", script];
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const reader = proc.stdout.getReader();
  let said = "";
  while (!said.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`listener on ${path} exited: ${await new Response(proc.stderr).text()}`);
    said += Buffer.from(value).toString();
  }
  return proc;
}

/** Connects to `path` and reads what the server says first. */
function hello(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    let got = "";
    s.on("data", (d) => (got += d.toString()));
    s.on("end", () => resolve(got));
    s.on("error", reject);
  });
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
};

/** One line, "vmchan: ..." with a hint, and no stack trace. */
function expectOneLine(stderr: string, pattern: RegExp): void {
  expect(stderr, `stderr was: ${JSON.stringify(stderr)}`).toMatch(/^vmchan: [^\n]+\n$/);
  expect(stderr, `stderr was: ${JSON.stringify(stderr)}`).toMatch(pattern);
  expect(stderr).not.toContain("    at ");
}

describe("listen and bridge never remove what they did not make", () => {
  for (const verb of ["listen", "bridge"] as const) {
    const args = (path: string) => (verb === "listen" ? ["listen", `unix:${path}`] : ["bridge", "--once", `unix-listen:${path}`, "exec:cat"]);

    test(`${verb}: a regular file at the path is refused with the usage code and left unchanged`, async () => {
      const path = fresh("file");
      writeFileSync(path, "precious data\n");
      const r = await vmchan(args(path));
      expect(r.code, r.stderr).toBe(ExitCode.usage);
      expectOneLine(r.stderr, /exists and is not a socket \(it is a regular file; it is left alone\)/);
      expect(readFileSync(path, "utf8")).toBe("precious data\n");
    });

    test(`${verb}: a directory at the path is one line and the usage code, and it stays`, async () => {
      const path = fresh("dir");
      mkdirSync(path);
      writeFileSync(join(path, "inside"), "x");
      const r = await vmchan(args(path));
      expect(r.code, r.stderr).toBe(ExitCode.usage);
      expectOneLine(r.stderr, /it is a directory/);
      expect(readFileSync(join(path, "inside"), "utf8")).toBe("x");
    });

    test(`${verb}: a live socket of another process is refused as busy and its owner can still be reached`, async () => {
      const path = fresh("live.sock");
      const owner = await liveListener(path);
      try {
        const before = lstatSync(path).ino;
        const r = await vmchan(args(path));
        expect(r.code, r.stderr).toBe(ExitCode.busy);
        expectOneLine(r.stderr, /another process listens on/);
        expect(lstatSync(path).ino, "the socket file was replaced").toBe(before);
        expect(await hello(path)).toBe("owner\n");
      } finally {
        owner.kill("SIGKILL");
        await owner.exited;
      }
    });
  }

  test("a stale socket of another user in a sticky directory is refused with the permission code and left there", async () => {
    const sticky = fresh("sticky");
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    const path = join(sticky, "stale.sock");
    staleSocket(path);
    chownSync(path, NOBODY, NOBODY);
    const before = lstatSync(path).ino;
    for (const args of [["listen", `unix:${path}`], ["bridge", `unix-listen:${path}`, "exec:cat"]]) {
      const r = await vmchan(args);
      expect(r.code, r.stderr).toBe(ExitCode.permission);
      expectOneLine(r.stderr, new RegExp(`is a stale socket owned by uid ${NOBODY}, mode 0\\d{3}, not by this user; it is left alone`));
      expect(lstatSync(path).ino, "the other user's socket was removed or replaced").toBe(before);
    }
  });

  test("a stale socket of another user in a plain directory is not removed either (even by root)", async () => {
    const path = fresh("stale-other.sock");
    staleSocket(path);
    chownSync(path, NOBODY, NOBODY);
    const r = await vmchan(["listen", `unix:${path}`]);
    expect(r.code, r.stderr).toBe(ExitCode.permission);
    expect(lstatSync(path).uid).toBe(NOBODY);
  });

  test("a live socket of another user is busy, and stays reachable", async () => {
    const sticky = fresh("sticky-live");
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    const path = join(sticky, "theirs.sock");
    const owner = await liveListener(path, NOBODY);
    try {
      expect(lstatSync(path).uid).toBe(NOBODY);
      const r = await vmchan(["bridge", `unix-listen:${path}`, "exec:cat"]);
      expect(r.code, r.stderr).toBe(ExitCode.busy);
      expect(await hello(path)).toBe("owner\n");
    } finally {
      owner.kill("SIGKILL");
      await owner.exited;
    }
  });

  test("a symlink, a fifo and a symlink to a socket at the path are refused; their targets are untouched", async () => {
    const target = fresh("target");
    writeFileSync(target, "target data");
    const link = fresh("link");
    symlinkSync(target, link);
    const fifo = fresh("fifo");
    spawnSync("mkfifo", [fifo]);
    const sock = fresh("real.sock");
    staleSocket(sock);
    const linkToSock = fresh("link-to-sock");
    symlinkSync(sock, linkToSock);
    for (const [path, kind] of [[link, "a symbolic link"], [fifo, "a fifo"], [linkToSock, "a symbolic link"]] as const) {
      const r = await vmchan(["listen", `unix:${path}`]);
      expect(r.code, `${path}: ${r.stderr}`).toBe(ExitCode.usage);
      expectOneLine(r.stderr, new RegExp(`it is ${kind}; it is left alone`));
      expect(existsSync(path) || lstatSync(path).isSymbolicLink()).toBe(true);
    }
    expect(readlinkSync(link)).toBe(target);
    expect(readFileSync(target, "utf8")).toBe("target data");
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(lstatSync(sock).isSocket()).toBe(true);
  });

  test("this user's own stale socket is replaced, made mode 0600, and removed at the end", async () => {
    const path = fresh("own-stale.sock");
    staleSocket(path);
    const proc = Bun.spawn([VMCHAN, "bridge", "--once", `unix-listen:${path}`, "exec:cat"], { stdout: "ignore", stderr: "pipe" });
    // The new socket may get the stale one's inode number back: what tells them apart is that it listens.
    await waitFor("the new socket", () => unixListening(path));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = net.connect(path, () => s.end("ping"));
      let got = "";
      s.on("data", (d) => (got += d.toString()));
      s.on("close", () => resolve(got));
      s.on("error", reject);
    });
    expect(echoed).toBe("ping");
    const code = await proc.exited;
    expect(code, await new Response(proc.stderr).text()).toBe(0);
    expect(existsSync(path), "the socket vmchan made is still there after the bridge ended").toBe(false);
  });

  test("something put at the path while listening (a file, another socket) survives the listener's exit", async () => {
    for (const replacement of ["file", "socket"] as const) {
      const path = fresh(`swapped-${replacement}.sock`);
      const proc = Bun.spawn([VMCHAN, "listen", `unix:${path}`], { stdin: "pipe", stdout: "ignore", stderr: "pipe" });
      await waitFor("the listening socket", () => unixListening(path));
      renameSync(path, `${path}.moved`);
      let other: Awaited<ReturnType<typeof liveListener>> | null = null;
      if (replacement === "file") writeFileSync(path, "someone else's");
      else other = await liveListener(path);
      try {
        proc.kill("SIGTERM");
        const code = await proc.exited;
        expect(code).toBe(128 + 15);
        if (replacement === "file") expect(readFileSync(path, "utf8")).toBe("someone else's");
        else expect(await hello(path)).toBe("owner\n");
      } finally {
        other?.kill("SIGKILL");
        await other?.exited;
      }
    }
  });

  test("no temporary name is left in the directory", async () => {
    const sub = fresh("clean");
    mkdirSync(sub);
    const path = join(sub, "s.sock");
    const proc = Bun.spawn([VMCHAN, "listen", `unix:${path}`], { stdin: "pipe", stdout: "ignore", stderr: "pipe" });
    await waitFor("the listening socket", () => unixListening(path));
    const { readdirSync } = await import("node:fs");
    expect(readdirSync(sub)).toEqual(["s.sock"]);
    proc.kill("SIGTERM");
    await proc.exited;
    expect(readdirSync(sub)).toEqual([]);
  });
});

describe("every way out ends the command's process group and removes the socket vmchan made", () => {
  /** Starts a bridge whose exec: child records its pid, and a background job's pid, then waits; connects a client to start it. */
  async function bridgeWithChild(extra: string[] = [], trapTerm = false) {
    const sub = fresh("exit");
    mkdirSync(sub);
    const sock = join(sub, "b.sock");
    const pids = join(sub, "pids");
    const script = `${trapTerm ? "trap '' TERM; " : ""}sleep 1000 & echo $$ $! > ${pids}; while :; do sleep 1; done`;
    const proc = Bun.spawn([VMCHAN, "bridge", ...extra, `unix-listen:${sock}`, `exec:sh -c "${script}"`], { stdout: "ignore", stderr: "pipe" });
    await waitFor("the bridge's socket", () => unixListening(sock));
    const client = net.connect(sock);
    await new Promise<void>((resolve, reject) => client.once("connect", () => resolve()).once("error", reject));
    await waitFor("the child's pids", () => existsSync(pids) && readFileSync(pids, "utf8").trim().split(" ").length === 2);
    const [shell, job] = readFileSync(pids, "utf8").trim().split(" ").map(Number) as [number, number];
    expect(alive(shell) && alive(job), "the command is not running").toBe(true);
    return { proc, sock, shell, job, client };
  }

  for (const [signal, num] of [["SIGTERM", 15], ["SIGINT", 2], ["SIGHUP", 1]] as const) {
    test(`${signal}: the exec: command and its background job are gone, the socket removed, exit ${128 + num}`, async () => {
      const { proc, sock, shell, job, client } = await bridgeWithChild();
      proc.kill(signal);
      const code = await proc.exited;
      const stderr = await new Response(proc.stderr).text();
      client.destroy();
      expect(code, stderr).toBe(128 + num);
      await waitFor(`pids ${shell} and ${job} to end`, () => !alive(shell) && !alive(job), 10_000).catch(() => {});
      expect(alive(shell), `the command (pid ${shell}) still runs after ${signal}`).toBe(false);
      expect(alive(job), `its background job (pid ${job}) still runs after ${signal}`).toBe(false);
      expect(existsSync(sock), "the bridge's socket is still on disk").toBe(false);
    }, 60_000);
  }

  test("listen --exec: SIGTERM ends the command and its group and removes the socket", async () => {
    const sub = fresh("listen-exec");
    mkdirSync(sub);
    const sock = join(sub, "l.sock");
    const pids = join(sub, "pids");
    const proc = Bun.spawn([VMCHAN, "listen", "-k", "--exec", `sh -c "sleep 1000 & echo $$ $! > ${pids}; wait"`, `unix:${sock}`], { stdout: "ignore", stderr: "pipe" });
    await waitFor("the socket", () => unixListening(sock));
    const client = net.connect(sock);
    client.on("error", () => {});
    await waitFor("the command's pids", () => existsSync(pids) && readFileSync(pids, "utf8").trim().split(" ").length === 2);
    const [shell, job] = readFileSync(pids, "utf8").trim().split(" ").map(Number) as [number, number];
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(143);
    client.destroy();
    await waitFor("the command to end", () => !alive(shell) && !alive(job), 10_000).catch(() => {});
    expect(alive(shell), `pid ${shell} survived`).toBe(false);
    expect(alive(job), `pid ${job} survived`).toBe(false);
    expect(existsSync(sock)).toBe(false);
  }, 60_000);

  test("a command that ignores SIGTERM is killed after the grace period", async () => {
    const { proc, sock, shell, job, client } = await bridgeWithChild([], true);
    proc.kill("SIGTERM");
    const code = await proc.exited;
    client.destroy();
    expect(code).toBe(143);
    await waitFor("the command to end", () => !alive(shell) && !alive(job), 10_000).catch(() => {});
    expect(alive(shell), `pid ${shell} survived`).toBe(false);
    expect(alive(job), `pid ${job} survived`).toBe(false);
    expect(existsSync(sock)).toBe(false);
  }, 60_000);

  test("normal end (--once, the client leaves): the command's group ends and the socket is removed", async () => {
    const { proc, sock, shell, job, client } = await bridgeWithChild(["--once"]);
    client.destroy();
    const code = await proc.exited;
    const stderr = await new Response(proc.stderr).text();
    expect(code, stderr).toBe(0);
    await waitFor("the command to end", () => !alive(shell) && !alive(job), 10_000).catch(() => {});
    expect(alive(shell), `pid ${shell} survived`).toBe(false);
    expect(alive(job), `pid ${job} survived`).toBe(false);
    expect(existsSync(sock)).toBe(false);
  }, 60_000);

  /** Live (not zombie) processes whose environment carries `mark`: everything a run started, wherever it went. */
  function marked(mark: string): string[] {
    const found: string[] = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      try {
        if (!readFileSync(`/proc/${name}/environ`, "latin1").split("\0").includes(mark) || !alive(Number(name))) continue;
        found.push(`${name}: ${readFileSync(`/proc/${name}/cmdline`, "latin1").split("\0").join(" ").trim()}`);
      } catch {
        // gone, or not ours
      }
    }
    return found;
  }
  /** Zombie children of `pid` (exited, never reaped). */
  function zombieChildren(pid: number): string[] {
    const found: string[] = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, "latin1");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (f[0] === "Z" && Number(f[1]) === pid) found.push(stat.slice(0, stat.lastIndexOf(")") + 1));
      } catch {
        // gone
      }
    }
    return found;
  }
  const ESCAPER = "sh -c 'sleep 3001 & setsid sleep 3002 & exec cat'";
  /** listen --exec ESCAPER with a marker in its environment, one client connected, both sleeps running. */
  async function listenWithEscaper(extra: string[] = [], exec = ESCAPER) {
    const sub = fresh("escape");
    mkdirSync(sub);
    const sock = join(sub, "l.sock");
    const mark = `VMCHAN_TEST_MARK=${sub}`;
    const proc = Bun.spawn([VMCHAN, "listen", ...extra, "-v", "--exec", exec, `unix:${sock}`], {
      stdout: "ignore",
      stderr: "pipe",
      env: { PATH: "/usr/bin:/bin", VMCHAN_TEST_MARK: sub },
    });
    await waitFor("the socket", () => unixListening(sock));
    const client = net.connect(sock);
    client.on("error", () => {});
    await waitFor("both sleeps", () => marked(mark).filter((p) => / sleep 300[12]$/.test(p)).length === 2);
    return { proc, sock, mark, client };
  }

  for (const [signal, num] of [["SIGTERM", 15], ["SIGINT", 2], ["SIGHUP", 1]] as const) {
    test(`${signal}: a child that left its group with setsid is ended too (vmchan is a subreaper)`, async () => {
      const { proc, mark, client } = await listenWithEscaper();
      const before = marked(mark);
      proc.kill(signal);
      const code = await proc.exited;
      const stderr = await new Response(proc.stderr).text();
      client.destroy();
      expect(code, stderr).toBe(128 + num);
      await waitFor("every process of the run to end", () => marked(mark).length === 0, 10_000).catch(() => {});
      expect(marked(mark), `running before ${signal}: ${JSON.stringify(before)}; still running after vmchan exited`).toEqual([]);
    }, 60_000);
  }

  test("normal end: a setsid child of the session's command ends with the session", async () => {
    const { proc, mark, client } = await listenWithEscaper();
    client.end("bye\n");
    const code = await proc.exited;
    const stderr = await new Response(proc.stderr).text();
    client.destroy();
    expect(code, stderr).toBe(0);
    await waitFor("every process of the run to end", () => marked(mark).length === 0, 10_000).catch(() => {});
    expect(marked(mark), "still running after vmchan ended normally").toEqual([]);
  }, 60_000);

  test("listen --keep: a setsid child is ended when its session ends, and reaped (no zombie left)", async () => {
    const { proc, mark, client } = await listenWithEscaper(["-k"]);
    client.end();
    try {
      await waitFor("the session's processes to end", () => marked(mark).filter((p) => !p.includes(VMCHAN)).length === 0, 15_000).catch(() => {});
      expect(marked(mark).filter((p) => !p.includes(VMCHAN)), "still running after the session ended, vmchan still serving").toEqual([]);
      await waitFor("no zombie children", () => zombieChildren(proc.pid).length === 0, 10_000).catch(() => {});
      expect(zombieChildren(proc.pid), "unreaped children of vmchan").toEqual([]);
      expect(proc.exitCode, "listen -k ended by itself").toBeNull();
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 60_000);

  test("a setsid child that ignores SIGTERM is killed after the grace period", async () => {
    const { proc, mark, client } = await listenWithEscaper([], "sh -c 'sleep 3001 & setsid sh -c \"trap \\\"\\\" TERM; sleep 3002; sleep 3003\" & exec cat'");
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(143);
    client.destroy();
    await waitFor("every process of the run to end", () => marked(mark).length === 0, 10_000).catch(() => {});
    expect(marked(mark), "still running after vmchan exited").toEqual([]);
  }, 60_000);

  test("an error after listening (the other side cannot start) removes the socket", async () => {
    const sock = fresh("err.sock");
    const r = await vmchan(["bridge", `unix-listen:${sock}`, "exec:/nonexistent/program"]);
    expect(r.code, r.stderr).toBe(ExitCode.notFound);
    expect(existsSync(sock)).toBe(false);
  });
});

describe("errors are one line with the documented code", () => {
  test("a unix path over 107 bytes: usage, for listen, bridge and cat", async () => {
    const long = join(dir, "x".repeat(120 - dir.length));
    for (const args of [["listen", `unix:${long}`], ["bridge", `unix-listen:${long}`, "-"], ["cat", `unix:${long}`], ["send", `unix:${long}`, "-d", "x"]]) {
      const r = await vmchan(args);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(ExitCode.usage);
      expectOneLine(r.stderr, /the socket path is \d+ bytes long, the limit is 107/);
    }
    expect(existsSync(long)).toBe(false);
  });

  test("a path exactly 107 bytes long still works", async () => {
    const sub = fresh("len");
    mkdirSync(sub);
    const path = join(sub, "y".repeat(107 - sub.length - 1));
    expect(Buffer.byteLength(path)).toBe(107);
    const proc = Bun.spawn([VMCHAN, "listen", `unix:${path}`], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    await waitFor("the listening socket", () => unixListening(path));
    const s = net.connect(path, () => s.end("107"));
    expect(await new Response(proc.stdout).text()).toBe("107");
    expect(await proc.exited).toBe(0);
    expect(existsSync(path)).toBe(false);
  });

  test("connecting to a directory, a regular file or through a file: not found, saying what is there", async () => {
    const file = fresh("notsock");
    writeFileSync(file, "x");
    const cases: Array<[string, RegExp]> = [
      [dir, /is a directory, not a socket/],
      [file, /is a regular file, not a socket/],
      [`${file}/s.sock`, /a part of it is not a directory/],
    ];
    for (const [path, pattern] of cases)
      for (const args of [["cat", `unix:${path}`], ["send", `unix:${path}`, "-d", "x"], ["bridge", "--once", `unix:${path}`, "-"]]) {
        const r = await vmchan(args);
        expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(ExitCode.notFound);
        expectOneLine(r.stderr, pattern);
      }
    expect(readFileSync(file, "utf8")).toBe("x");
  });

  test("tcp-listen on a port in use: busy", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const r = await vmchan(["bridge", `tcp-listen:127.0.0.1:${taken.port}`, "-"]);
      expect(r.code, r.stderr).toBe(ExitCode.busy);
      expectOneLine(r.stderr, /is in use/);
    } finally {
      taken.stop(true);
    }
  });

  test("a user's own stale socket in a directory that user may not write to: the permission code, and it stays", async () => {
    const ro = fresh("ro-stale");
    mkdirSync(ro);
    chmodSync(ro, 0o755);
    const path = join(ro, "mine.sock");
    staleSocket(path);
    chownSync(path, NOBODY, NOBODY);
    const r = Bun.spawnSync(["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", VMCHAN, "listen", `unix:${path}`], { stderr: "pipe", stdout: "ignore" });
    const stderr = r.stderr.toString();
    expect(r.exitCode, stderr).toBe(ExitCode.permission);
    expectOneLine(stderr, /permission denied creating a socket in/);
    expect(lstatSync(path).isSocket()).toBe(true);
  });

  test("a missing directory: not found, naming the directory", async () => {
    const path = join(dir, "no", "such", "dir", "s.sock");
    const r = await vmchan(["listen", `unix:${path}`]);
    expect(r.code, r.stderr).toBe(ExitCode.notFound);
    expectOneLine(r.stderr, new RegExp(`directory ${join(dir, "no", "such", "dir")} does not exist`));
    const f = fresh("plainfile");
    writeFileSync(f, "");
    const r2 = await vmchan(["bridge", `unix-listen:${f}/s.sock`, "-"]);
    expect(r2.code, r2.stderr).toBe(ExitCode.notFound);
    expectOneLine(r2.stderr, /is not a directory/);
  });

  test("a directory this user may not write to: the permission code", async () => {
    const ro = fresh("ro");
    mkdirSync(ro);
    chmodSync(ro, 0o755);
    const r = Bun.spawnSync(["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", VMCHAN, "listen", `unix:${ro}/s.sock`], { stderr: "pipe", stdout: "ignore" });
    const stderr = r.stderr.toString();
    expect(r.exitCode, stderr).toBe(ExitCode.permission);
    expectOneLine(stderr, /permission denied creating a socket in/);
  });

  test("tcp-listen on an address that is not on this host: not found, saying so", async () => {
    for (const addr of ["192.0.2.1:0", "[2001:db8::1]:0"]) {
      const r = await vmchan(["bridge", `tcp-listen:${addr}`, "-"]);
      expect(r.code, r.stderr).toBe(ExitCode.notFound);
      expectOneLine(r.stderr, /is not an address of this host/);
    }
  });

  test("exec: of a command that is not executable, is a directory, or does not exist", async () => {
    const plain = fresh("not-exec.sh");
    writeFileSync(plain, "#!/bin/sh\necho hi\n");
    chmodSync(plain, 0o644);
    const cases: Array<[string, number, RegExp]> = [
      [plain, ExitCode.permission, /permission denied \(not executable by this user\)/],
      [dir, ExitCode.permission, /is a directory/],
      ["/nonexistent/program", ExitCode.notFound, /command not found/],
      ["no-such-command-anywhere", ExitCode.notFound, /command not found/],
    ];
    for (const [cmd, code, pattern] of cases) {
      for (const args of [["bridge", "--once", "tcp-listen:0", `exec:${cmd}`], ["listen", "--exec", cmd, `unix:${fresh("e.sock")}`]]) {
        const r = await vmchan(args);
        expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(code);
        expectOneLine(r.stderr, pattern);
      }
    }
  });

  test("--root '' is a usage error, a missing --root not found", async () => {
    for (const verb of ["list", "watch"]) {
      const r = await vmchan(["ports", verb, "--root", ""], { timeoutMs: 10_000 });
      expect(r.code, r.stderr).toBe(ExitCode.usage);
      expectOneLine(r.stderr, /--root must not be empty/);
      const m = await vmchan(["ports", verb, "--root", join(dir, "missing-root")], { timeoutMs: 10_000 });
      expect(m.code, m.stderr).toBe(ExitCode.notFound);
      expectOneLine(m.stderr, /no such directory/);
    }
  });
});

describe("output that cannot be delivered is never success", () => {
  async function talker(data: string) {
    const path = fresh("talk.sock");
    const server = net.createServer((s) => s.on("error", () => {}).end(data));
    await new Promise<void>((r) => server.listen(path, r));
    return { path, server };
  }
  /** Runs a shell line without blocking this process (its servers must keep answering). */
  async function sh(cmd: string) {
    const p = Bun.spawn(["bash", "-c", cmd], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin" } });
    const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
    const [stdout, stderr, exitCode] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    clearTimeout(timer);
    return { stdout, stderr, exitCode };
  }

  test("cat to a closed stdout (>&-) fails with the I/O code and one line, and reads nothing from the port", async () => {
    const { path, server } = await talker("data that would be lost\n");
    let accepted = 0;
    server.on("connection", () => accepted++);
    try {
      const r = await sh(`${VMCHAN} cat unix:${path} >&-`);
      expect(r.exitCode, r.stderr).toBe(ExitCode.failure);
      expectOneLine(r.stderr, /cannot write standard output: it was closed when vmchan started/);
      expect(accepted, "cat connected (and so consumed data) before failing").toBe(0);
    } finally {
      server.close();
    }
  });

  test("listen and bridge with stdio to a closed stdout fail at once", async () => {
    for (const args of [["listen", `unix:${fresh("l.sock")}`], ["bridge", `unix-listen:${fresh("b.sock")}`, "-"]]) {
      const r = await sh(`${VMCHAN} ${args.join(" ")} >&- </dev/null`);
      expect(r.exitCode, r.stderr).toBe(ExitCode.failure);
      expectOneLine(r.stderr, /cannot write standard output: it was closed when vmchan started/);
    }
  });

  test("help and version to a closed (>&-) or full stdout fail with one line, never exit 0", async () => {
    for (const args of ["--help", "--version", "-V", "help", "cat --help", "listen -h", "help bridge", "completions --help"]) {
      for (const redirect of [">&-", ">/dev/full"]) {
        const r = await sh(`${VMCHAN} ${args} ${redirect}`);
        const seen = `vmchan ${args} ${redirect}: exit ${r.exitCode}, stderr ${JSON.stringify(r.stderr)}`;
        expect(r.exitCode, seen).toBe(ExitCode.failure);
        expectOneLine(r.stderr, redirect === ">&-" ? /cannot write standard output: it was closed when vmchan started/ : /cannot write standard output: .*no space left on device/i);
      }
      const ok = await sh(`${VMCHAN} ${args} | wc -c`);
      expect(ok.exitCode, ok.stderr).toBe(0);
      expect(Number(ok.stdout.trim()), `vmchan ${args} into a pipe wrote ${ok.stdout.trim()} bytes`).toBeGreaterThan(5);
    }
  });

  test("text output (completion scripts) to a full stdout fails with one line, never exit 0", async () => {
    for (const shell of ["bash", "zsh", "fish"]) {
      const r = await sh(`${VMCHAN} completions ${shell} >/dev/full`);
      expect(r.exitCode, `completions ${shell} >/dev/full: ${r.stderr}`).toBe(ExitCode.failure);
      expectOneLine(r.stderr, /cannot write standard output: .*no space left on device/i);
    }
  });

  test("cat to /dev/null (not closed, only discarded) still succeeds", async () => {
    const { path, server } = await talker("x");
    try {
      const devnull = await sh(`${VMCHAN} cat unix:${path} >/dev/null`);
      expect(devnull.exitCode, devnull.stderr).toBe(0);
    } finally {
      server.close();
    }
  });

  test("cat into a pipe whose reader has gone does not exit 0", async () => {
    const big = "z".repeat(4 * 1024 * 1024);
    const { path, server } = await talker(big);
    try {
      const r = await sh(`${VMCHAN} cat unix:${path} | head -c 1 >/dev/null; echo "rc=\${PIPESTATUS[0]}"`);
      expect(r.stdout, r.stderr).toBe(`rc=${ExitCode.brokenPipe}\n`);
    } finally {
      server.close();
    }
  });

  test("cat to a full device fails with the I/O code and says why", async () => {
    const { path, server } = await talker("x".repeat(1 << 20));
    try {
      const r = await sh(`${VMCHAN} cat unix:${path} >/dev/full`);
      expect(r.exitCode, r.stderr).toBe(ExitCode.failure);
      expectOneLine(r.stderr, /cannot write standard output: .*no space left on device/i);
    } finally {
      server.close();
    }
  });
});
