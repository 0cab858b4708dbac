import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode } from "../../lib/exit-codes.ts";
import { checkAutologin, uidOf, writeAutologinProgram } from "../../lib/getty/autologin.ts";
import { RespawnBackoff } from "../../lib/getty/backoff.ts";
import { getty } from "../../lib/getty/getty.ts";
import { spawnGetty } from "../../lib/getty/process.ts";
import { findGetty, gettyArgv, type ProgramProbe } from "../../lib/getty/program.ts";
import { supervise } from "../../lib/getty/supervise.ts";
import { gettyTargets } from "../../lib/getty/targets.ts";
import { runCommand } from "../support/context.ts";
import { FixtureRoot } from "../support/fixture.ts";

const passwd = "root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";

let fx: FixtureRoot | undefined;
const dirs: string[] = [];
afterEach(() => {
  fx?.dispose();
  fx = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fake system: executables at the given paths, busybox applets, existing files. */
function probe(files: Record<string, string>, opts: { applets?: string[]; exists?: string[] } = {}): ProgramProbe {
  return {
    which: (name) => Object.keys(files).find((p) => p.endsWith(`/${name}`)) ?? null,
    realpath: (path) => files[path] ?? path,
    hasApplet: (_path, name) => (opts.applets ?? []).includes(name),
    exists: (path) => (opts.exists ?? ["/bin/login"]).includes(path),
  };
}

const debug = (over: Record<string, string | number>) => ({ host_connected: 0, guest_connected: 0, is_console: "no", console_vtermno: 0, ...over });

describe("getty respawn back-off", () => {
  test("a getty that dies at once waits 1, 2, 4 ... 30 s; a normal run restarts at once", () => {
    const b = new RespawnBackoff();
    expect([0, 10, 500, 999, 0, 0, 0, 0, 0].map((ms) => b.next(ms))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    expect(b.next(5000)).toBe(0); // ran a while: at once, but the failures are remembered...
    expect(b.next(100)).toBe(30000);
    expect(b.next(10_000)).toBe(0); // ...until a run of 10 s
    expect(b.next(100)).toBe(1000);
  });

  test("the schedule follows the policy", () => {
    const b = new RespawnBackoff({ quickMs: 50, resetMs: 100, firstDelayMs: 10, maxDelayMs: 35 });
    expect([0, 0, 0, 0, 200, 0].map((ms) => b.next(ms))).toEqual([10, 20, 35, 35, 0, 10]);
  });
});

describe("getty program", () => {
  test("agetty is preferred, with setsid for a PTY", () => {
    const p = findGetty(probe({ "/sbin/agetty": "/sbin/agetty", "/usr/bin/setsid": "/usr/bin/setsid", "/sbin/getty": "/bin/busybox" }));
    expect(p).toEqual({ kind: "agetty", path: "/sbin/agetty", setsid: "/usr/bin/setsid" });
    expect(gettyArgv(p, { tty: "hvc0", term: "vt100" })).toEqual(["/sbin/agetty", "-L", "--noclear", "--keep-baud", "hvc0", "115200,57600,38400,9600", "vt100"]);
    expect(gettyArgv(p, { tty: "-", term: "linux", autologin: "alice" })).toEqual([
      "/usr/bin/setsid", "-c", "/sbin/agetty", "-L", "--noclear", "--keep-baud", "-a", "alice", "-", "115200,57600,38400,9600", "linux",
    ]);
  });

  test("busybox getty through a getty link, or the busybox binary's applet", () => {
    const viaLink = findGetty(probe({ "/sbin/getty": "/bin/busybox" }));
    expect(viaLink).toEqual({ kind: "busybox", argv: ["/sbin/getty"] });
    expect(gettyArgv(viaLink, { tty: "hvc1", term: "vt100" })).toEqual(["/sbin/getty", "-L", "0", "hvc1", "vt100"]);
    const viaApplet = findGetty(probe({ "/bin/busybox": "/bin/busybox" }, { applets: ["getty", "login"] }));
    expect(viaApplet).toEqual({ kind: "busybox", argv: ["/bin/busybox", "getty"] });
    expect(gettyArgv(viaApplet, { tty: "-", term: "vt100", loginProgram: "/run/x/autologin" })).toEqual([
      "/bin/busybox", "getty", "-L", "-n", "-l", "/run/x/autologin", "0", "-", "vt100",
    ]);
  });

  test("a getty that is neither agetty nor busybox is not used; nothing found says what to install", () => {
    expect(() => findGetty(probe({ "/sbin/getty": "/sbin/mingetty" }))).toThrow(
      expect.objectContaining({ code: ExitCode.notFound, message: "cannot start a getty: neither agetty nor busybox getty is installed" }),
    );
    expect(() => findGetty(probe({ "/bin/busybox": "/bin/busybox" }, { applets: ["sh"] }))).toThrow(
      expect.objectContaining({ hint: expect.stringContaining("install util-linux (agetty)") }),
    );
    expect(() => findGetty(probe({ "/sbin/agetty": "/sbin/agetty" }, { exists: [] }))).toThrow(
      expect.objectContaining({ code: ExitCode.notFound, message: "cannot start a getty: /bin/login, which it runs to log users in, is missing" }),
    );
  });
});

describe("getty autologin", () => {
  test("root and any uid 0 are refused unless allowed; unknown users and bad names too", () => {
    fx = new FixtureRoot().file("/etc/passwd", passwd);
    const root = fx.root;
    expect(uidOf(passwd, "alice")).toBe(1000);
    expect(() => checkAutologin("alice", { root })).not.toThrow();
    expect(() => checkAutologin("root", { root })).toThrow(
      expect.objectContaining({ code: ExitCode.usage, message: expect.stringContaining('refusing --autologin "root": it is root'), hint: "add --allow-root if that is really wanted" }),
    );
    expect(() => checkAutologin("toor", { root })).toThrow(/it has uid 0, like root/);
    expect(() => checkAutologin("root", { root, allowRoot: true })).not.toThrow();
    expect(() => checkAutologin("bob", { root })).toThrow(expect.objectContaining({ code: ExitCode.notFound, message: 'cannot log in "bob" automatically: no such user in /etc/passwd' }));
    expect(() => checkAutologin("-f", { root })).toThrow(expect.objectContaining({ code: ExitCode.usage }));
    expect(() => checkAutologin("a b", { root })).toThrow(/not a valid user name/);
  });

  test("busybox autologin is a private script running login -f USER", () => {
    const dir = mkdtempSync(join(tmpdir(), "vmchan-getty-test-"));
    dirs.push(dir);
    const prog = writeAutologinProgram("alice", { dir });
    expect(readFileSync(prog.path, "utf8")).toBe("#!/bin/sh\nexec /bin/login -f 'alice'\n");
    prog.remove();
    expect(() => readFileSync(prog.path)).toThrow();
  });
});

describe("getty targets", () => {
  test("with no port named, every console port with a known hvc; the others are named in a warning", () => {
    fx = new FixtureRoot()
      .port("vport0p0", "con0", { link: false, debug: debug({ is_console: "yes", console_vtermno: 1 }) })
      .port("vport0p1", "org.example.a", { debug: debug({}) })
      .port("vport0p2", "con1", { link: false, debug: debug({ is_console: "yes", console_vtermno: 2 }) });
    const warnings: string[] = [];
    const t = gettyTargets([], fx.root, (l) => warnings.push(l));
    expect(t.map((x) => [x.kind, x.label, x.kind === "console" ? x.tty : ""])).toEqual([
      ["console", "con0", "hvc0"],
      ["console", "con1", "hvc1"],
    ]);
    expect(warnings).toEqual([]);
    const named = gettyTargets(["org.example.a", "hvc3"], fx.root, () => {});
    expect(named.map((x) => [x.kind, x.label, x.path.slice(fx!.root.length)])).toEqual([
      ["serial", "org.example.a", "/dev/vport0p1"],
      ["console", "hvc3", "/dev/hvc3"],
    ]);
    expect(() => gettyTargets(["con0", "hvc0"], fx!.root, () => {})).toThrow(expect.objectContaining({ code: ExitCode.usage, message: expect.stringContaining("given twice") }));
  });

  test("no console port: says which ports there are and how to serve one", () => {
    fx = new FixtureRoot().port("vport0p1", "org.example.a", { debug: debug({}) });
    expect(() => gettyTargets([], fx!.root, () => {})).toThrow(
      expect.objectContaining({
        code: ExitCode.notFound,
        message: 'no console port for a getty: this guest\'s ports are all serial ports ("org.example.a")',
        hint: expect.stringContaining("'vmchan getty org.example.a'"),
      }),
    );
  });

  test("a console whose hvc is unknown (no debugfs) is not guessed", () => {
    fx = new FixtureRoot().port("vport0p0", "con0", { link: false });
    expect(() => gettyTargets([], fx!.root, () => {})).toThrow(expect.objectContaining({ code: ExitCode.notFound, message: expect.stringContaining("is unknown (debugfs is not readable)") }));
    fx.port("vport0p2", "con1", { link: false, debug: debug({ is_console: "yes", console_vtermno: 1 }) });
    const warnings: string[] = [];
    expect(gettyTargets([], fx.root, (l) => warnings.push(l)).map((t) => t.label)).toEqual(["con1"]);
    expect(warnings).toEqual(['vmchan: skipping console port "con0": its /dev/hvcN is unknown (debugfs is not readable)']);
  });

  test("no ports at all: the reason from ports list, exit 10", () => {
    fx = new FixtureRoot();
    expect(() => gettyTargets([], fx!.root, () => {})).toThrow(expect.objectContaining({ code: ExitCode.noPorts }));
  });
});

describe("getty supervision", () => {
  test("a getty that keeps dying at once is restarted with a growing delay, and stop hangs up the running one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmchan-getty-test-"));
    dirs.push(dir);
    const starts: number[] = [];
    const log: string[] = [];
    const stop = new AbortController();
    const t0 = performance.now();
    const run = supervise({
      label: "hvc9",
      stop: stop.signal,
      // quickMs: an `sh -c "exit 3"` counts as dying at once even when a loaded machine takes a second to run it.
      policy: { quickMs: 3000, firstDelayMs: 50, maxDelayMs: 400 },
      log: (l) => log.push(l),
      start: () => {
        starts.push(performance.now() - t0);
        // The fourth one stays up (as a getty waiting for a name does), in its own session like a getty.
        return spawnGetty(starts.length < 4 ? ["sh", "-c", "exit 3"] : ["setsid", "sh", "-c", `echo $$ > ${dir}/pid; exec sleep 60`]);
      },
    });
    for (let i = 0; i < 300 && starts.length < 4; i++) await Bun.sleep(50);
    await Bun.sleep(300); // the fourth stays up: no fifth start may follow
    const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
    const seen = `starts at ${starts.map((s) => s.toFixed(0)).join(", ")} ms; log: ${JSON.stringify(log)}`;
    expect(starts.length, seen).toBe(4);
    // Lower bounds only: the back-off doubles (50, 100, 200 ms); a machine that is slow only makes gaps longer.
    expect(gaps[0]!, seen).toBeGreaterThanOrEqual(50);
    expect(gaps[1]!, seen).toBeGreaterThanOrEqual(100);
    expect(gaps[2]!, seen).toBeGreaterThanOrEqual(200);
    expect(log[0]).toMatch(/^vmchan: the getty on hvc9 exited \(status 3\) after \d+\.\d s; starting it again in 0\.05 s$/);
    const pid = Number(readFileSync(join(dir, "pid"), "utf8"));
    stop.abort();
    await run;
    expect(() => process.kill(pid, 0)).toThrow(); // hung up
  }, 20_000);

  test("getty runs the program on each console port and stops every getty on stop, exit 0", async () => {
    fx = new FixtureRoot()
      .file("/etc/passwd", passwd)
      .port("vport0p0", "con0", { link: false, debug: debug({ is_console: "yes", console_vtermno: 1 }) })
      .port("vport0p3", "con1", { link: false, debug: debug({ is_console: "yes", console_vtermno: 2 }) })
      .file("/dev/hvc0", "")
      .file("/dev/hvc1", "");
    const record = join(fx.root, "argv");
    const fake = join(fx.root, "agetty");
    writeFileSync(fake, `#!/bin/sh\necho "$@" >> ${record}\nexec sleep 60\n`);
    chmodSync(fake, 0o755);
    const stop = new AbortController();
    const running = runCommand(fx.root, (ctx) =>
      getty(ctx, [], { probe: probe({ [fake]: fake }), stop: stop.signal, allowNonRoot: true, anyDevice: true, autologin: "alice" }),
    );
    for (let i = 0; i < 400; i++) {
      await Bun.sleep(50);
      if ((readFileSafe(record).match(/\n/g) ?? []).length >= 2) break;
    }
    stop.abort();
    const r = await running;
    expect(r.code).toBe(ExitCode.ok);
    expect(r.stderr).toBe('vmchan: agetty on hvc0, hvc1, logging in "alice" automatically\n');
    expect(readFileSafe(record).trim().split("\n").sort()).toEqual([
      "-L --noclear --keep-baud -a alice hvc0 115200,57600,38400,9600 vt100",
      "-L --noclear --keep-baud -a alice hvc1 115200,57600,38400,9600 vt100",
    ]);
  }, 20_000);

  test("a console another process holds is refused, naming it", async () => {
    fx = new FixtureRoot()
      .port("vport0p0", "con0", { link: false, debug: debug({ is_console: "yes", console_vtermno: 1 }) })
      .file("/dev/hvc0", "")
      .process(77, "getty", ["/dev/hvc0"]);
    const r = await runCommand(fx.root, (ctx) => getty(ctx, [], { probe: probe({ "/sbin/agetty": "/sbin/agetty" }), allowNonRoot: true, anyDevice: true }));
    expect(r.code).toBe(ExitCode.busy);
    expect(r.stderr).toBe("vmchan: cannot run a getty on hvc0: it is in use by pid 77 (getty) (hint: a console takes one getty; stop the other one first)\n");
  });
});

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
