import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VMCHAN, vmchan } from "../support/binary.ts";

// What the Bun runtime inside dist/vmchan does with the variables it reads before vmchan's code
// runs, and what vmchan does about them. Each attack is tried against the real binary.

const dir = mkdtempSync(join(tmpdir(), "vmchan-bunenv-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const REFUSED = 11;
const markers = () => readdirSync(dir).filter((f) => f.startsWith("marker-"));

/** A file that, if any runtime loads it, leaves a marker file behind. */
function markerScript(name: string): string {
  const path = join(dir, name);
  writeFileSync(path, `require("fs").writeFileSync(${JSON.stringify(join(dir, "marker-"))} + ${JSON.stringify(name)} + "-" + process.pid, "ran");\n`);
  return path;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

/** Ports in LISTEN state in /proc/net/tcp (hex local port, state 0A). */
function listeningPorts(): number[] {
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[3] === "0A")
    .map((f) => parseInt(f[1]!.split(":")[1]!, 16));
}

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

describe("the compiled binary and Bun's environment", () => {
  test("refuses each runtime variable with one line and exit 11, before doing anything", async () => {
    for (const [name, value] of [
      ["BUN_OPTIONS", "--smol"],
      ["BUN_OPTIONS", ""],
      ["BUN_BE_BUN", "1"],
      ["BUN_BE_BUN", "0"],
      ["BUN_INSPECT", "127.0.0.1:9"],
      ["BUN_INSPECT_CONNECT_TO", "ws://127.0.0.1:9/x"],
      ["BUN_INSPECT_NOTIFY", "unix:///tmp/x"],
      ["BUN_INSPECT_PRELOAD", "/tmp/x.js"],
      ["BUN_JSC_useJIT", "0"],
      ["JSC_SIGNAL_FOR_GC", "15"],
      ["JSC_useJIT", "0"],
      ["JSC_dumpOptions", "1"],
      ["JSC_", ""],
      ["BUN_CONFIG_VERBOSE_FETCH", "curl"],
    ] as const) {
      const r = await vmchan(["send", "unix:" + join(dir, "never.sock"), "--data", "x"], { env: { [name]: value } });
      const seen = `${name}=${value}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
      expect(r.code, seen).toBe(REFUSED);
      expect(r.stderr, seen).toMatch(new RegExp(`^vmchan: refusing to start: the environment sets ${name}, a variable that changes the Bun runtime .+ \\(hint: .*VMCHAN_ALLOW_BUN_ENV=1.*\\)\\n$`));
      expect(r.stdout.byteLength, seen).toBe(0);
    }
  });

  test("the refusal names several variables, and escapes a hostile name", async () => {
    const r = await vmchan(["--version"], { env: { BUN_OPTIONS: "x", BUN_CONFIG_Z: "1", "BUN_CONFIG_\x1b]0;pwned\x07": "1" } });
    expect(r.code, r.stderr).toBe(REFUSED);
    expect(r.stderr, "what I saw: " + JSON.stringify(r.stderr)).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    expect(r.stderr).toContain("BUN_CONFIG_Z, BUN_OPTIONS");
    expect(r.stderr.split("\n").length, r.stderr).toBe(2);
  });

  test("BUN_OPTIONS=--preload FILE never runs FILE, even with VMCHAN_ALLOW_BUN_ENV=1", async () => {
    const pre = markerScript("preload.js");
    for (const options of [`--preload ${pre}`, `--preload=${pre}`, `-r ${pre}`, `--require ${pre}`, `--import ${pre}`]) {
      const refused = await vmchan(["--version"], { env: { BUN_OPTIONS: options } });
      expect(refused.code, `${options}: ${refused.stderr}`).toBe(REFUSED);
      const allowed = await vmchan(["--version"], { env: { BUN_OPTIONS: options, VMCHAN_ALLOW_BUN_ENV: "1" } });
      expect(allowed.code, `${options}: ${allowed.stderr}`).toBe(0);
      expect(allowed.stdout.toString()).toStartWith("vmchan ");
      expect(markers(), `after BUN_OPTIONS="${options}"`).toEqual([]);
    }
  });

  test("the control: plain bun does run a BUN_OPTIONS preload, so the test above can fail", async () => {
    const pre = markerScript("control.js");
    const p = Bun.spawnSync([process.execPath, "-e", "0"], { env: { PATH: "/usr/bin:/bin", BUN_OPTIONS: `--preload ${pre}` } });
    expect(p.exitCode).toBe(0);
    const seen = markers();
    expect(seen.some((m) => m.startsWith("marker-control.js")), `markers: ${seen}`).toBe(true);
    for (const m of seen) rmSync(join(dir, m));
  });

  test("BUN_BE_BUN=1 does not turn the binary into a general runtime", async () => {
    const script = markerScript("script.js");
    const refused = await vmchan([script], { env: { BUN_BE_BUN: "1" } });
    expect(refused.code, refused.stderr).toBe(REFUSED);
    for (const args of [[script], ["-e", `require(${JSON.stringify(script)})`], ["run", script], ["--version"]]) {
      const r = await vmchan(args, { env: { BUN_BE_BUN: "1", VMCHAN_ALLOW_BUN_ENV: "1" } });
      const seen = `${args.join(" ")}: exit ${r.code}, stdout ${JSON.stringify(r.stdout.toString())}, stderr ${JSON.stringify(r.stderr)}`;
      // vmchan's own parser answers: a version, or a usage error; never Bun's.
      if (args[0] === "--version") expect(r.stdout.toString(), seen).toStartWith("vmchan ");
      else expect(r.code, seen).toBe(2);
      expect(r.stdout.toString(), seen).not.toMatch(/^1\.\d+\.\d+/);
      expect(markers(), seen).toEqual([]);
    }
  });

  test("BUN_INSPECT opens no debugger port and does not hold the start, even with VMCHAN_ALLOW_BUN_ENV=1", async () => {
    // Control: plain bun listens on the port BUN_INSPECT names, and with ?wait=1 runs no code until a debugger comes.
    const controlPort = await freePort();
    const control = Bun.spawn([process.execPath, "-e", "console.log('user code ran'); setInterval(() => {}, 1000)"], {
      env: { PATH: "/usr/bin:/bin", BUN_INSPECT: `ws://127.0.0.1:${controlPort}/x?wait=1` },
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      let up = false;
      const end = Date.now() + 20_000;
      while (!up && Date.now() < end) up = await connects(controlPort);
      expect(up, "plain bun should listen on the BUN_INSPECT port").toBe(true);
    } finally {
      control.kill("SIGKILL");
      await control.exited;
    }

    const forms: Array<(p: number) => Record<string, string>> = [
      (p) => ({ BUN_INSPECT: `ws://127.0.0.1:${p}/x?wait=1` }),
      (p) => ({ BUN_INSPECT: `ws://127.0.0.1:${p}/x?break=1` }),
      (p) => ({ BUN_INSPECT: `127.0.0.1:${p}` }),
      (p) => ({ BUN_INSPECT: `${p}` }),
      (p) => ({ BUN_OPTIONS: `--inspect-wait=127.0.0.1:${p}` }),
      (p) => ({ BUN_OPTIONS: `--inspect-brk=127.0.0.1:${p}` }),
    ];
    for (const form of forms) {
      const port = await freePort();
      const make = (p: number) => JSON.stringify(form(p));
      const sock = join(dir, `inspect-${port}.sock`);
      const p = Bun.spawn([VMCHAN, "listen", `unix-listen:${sock}`], {
        env: { PATH: "/usr/bin:/bin", ...form(port), VMCHAN_ALLOW_BUN_ENV: "1" },
        stdin: "pipe",
        stdout: "pipe",
        stderr: "pipe",
      });
      try {
        // The socket exists only once vmchan's code runs: with ?wait=1 an active inspector would hold it back.
        await until(`vmchan to listen on ${sock} with ${make(port)}`, () => existsSync(sock));
        const listening = listeningPorts();
        expect(listening, `${make(port)}: /proc/net/tcp listeners ${listening}`).not.toContain(port);
        expect(await connects(port), `${make(port)}: something accepts on ${port}`).toBe(false);
      } finally {
        p.kill("SIGTERM");
        await p.exited;
      }
    }
  }, 90_000);

  test("what acts before vmchan's code: BUN_JSC_* engine options (refused by default, active if allowed)", async () => {
    const refused = await vmchan(["--version"], { env: { BUN_JSC_dumpOptions: "1" } });
    expect(refused.code).toBe(REFUSED);
    // The engine has applied the option before vmchan's check can run: its output is already there.
    expect(refused.stderr, refused.stderr).toContain("Modified JSC options");
    const allowed = await vmchan(["--version"], { env: { BUN_JSC_dumpOptions: "1", VMCHAN_ALLOW_BUN_ENV: "1" } });
    expect(allowed.code).toBe(0);
    expect(allowed.stderr).toContain("dumpOptions=1");
  });

  test("what acts before vmchan's code: a malformed BUN_JSC_* stops the runtime itself (exit 1, its own message)", async () => {
    const r = await vmchan(["--version"], { env: { BUN_JSC_noSuchOption: "1", VMCHAN_ALLOW_BUN_ENV: "1" } });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain("invalid JSC environment variable");
    expect(r.stdout.toString(), "vmchan never ran").toBe("");
  });

  test("what acts before vmchan's code: the dynamic loader's LD_PRELOAD (not Bun's, not refusable from inside)", async () => {
    const r = await vmchan(["--version"], { env: { LD_PRELOAD: join(dir, "no-such-library.so") } });
    // The loader has already looked for the library when vmchan starts; vmchan itself runs normally.
    expect(r.stderr, r.stderr).toContain("no-such-library.so");
    expect(r.code, r.stderr).toBe(0);
  });

  test("NODE_OPTIONS is not read by the runtime, so it is not refused and runs nothing", async () => {
    const pre = markerScript("node-options.js");
    for (const value of [`--require ${pre}`, `--import ${pre}`, `--inspect=127.0.0.1:9`]) {
      const r = await vmchan(["--version"], { env: { NODE_OPTIONS: value } });
      expect(r.code, `NODE_OPTIONS=${value}: ${r.stderr}`).toBe(0);
      expect(markers(), `NODE_OPTIONS=${value}`).toEqual([]);
    }
  });

  test("exec: children get an environment without the runtime variables, and keep the rest", async () => {
    const r = await vmchan(["bridge", "--once", "exec:env", "-"], {
      env: { VMCHAN_ALLOW_BUN_ENV: "1", BUN_OPTIONS: "--smol", BUN_BE_BUN: "1", BUN_INSPECT_X: "1", BUN_CONFIG_Y: "1", BUN_JSC_useJIT: "1", JSC_useJIT: "1", JSC_SIGNAL_FOR_GC: "10", KEEP_ME: "yes" },
      stdin: "",
    });
    const out = r.stdout.toString();
    expect(r.code, r.stderr).toBe(0);
    expect(out, "what the child saw: " + out).toContain("KEEP_ME=yes\n");
    expect(out, "what the child saw: " + out).not.toMatch(/^(BUN_OPTIONS|BUN_BE_BUN|BUN_INSPECT|BUN_CONFIG_|BUN_JSC_|JSC_)/m);
  });

  test("why JSC_* is refused: JSC_SIGNAL_FOR_GC=15 makes the runtime take SIGTERM, so an allowed run ignores it", async () => {
    const sock = join(dir, "jsc-sigterm.sock");
    const allowed = Bun.spawn([VMCHAN, "listen", "unix-listen:" + sock], {
      env: { PATH: "/usr/bin:/bin", JSC_SIGNAL_FOR_GC: "15", VMCHAN_ALLOW_BUN_ENV: "1" },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    try {
      await until("the listener's socket", () => existsSync(sock));
      allowed.kill("SIGTERM");
      const done = await Promise.race([allowed.exited.then(() => "exited"), Bun.sleep(3000).then(() => "still running")]);
      // Documents the runtime behaviour the refusal guards against; if a Bun upgrade stops it, this fails and says so.
      expect(done, "JSC_SIGNAL_FOR_GC=15, allowed, after SIGTERM the binary was: " + done).toBe("still running");
    } finally {
      allowed.kill("SIGKILL");
      await allowed.exited;
    }
    const refused = await vmchan(["listen", "unix-listen:" + join(dir, "jsc-refused.sock")], { env: { JSC_SIGNAL_FOR_GC: "15" } });
    expect(refused.code, refused.stderr).toBe(REFUSED);
    expect(refused.stderr, refused.stderr).toContain("JSC_SIGNAL_FOR_GC");
    expect(existsSync(join(dir, "jsc-refused.sock")), "the refused run made its socket").toBe(false);
  });

  test("a bunfig.toml in HOME or XDG_CONFIG_HOME preloads nothing", async () => {
    const home = mkdtempSync(join(dir, "home-"));
    const pre = markerScript("home-bunfig.js");
    const bunfig = `preload = [${JSON.stringify(pre)}]\n`;
    mkdirSync(join(home, ".config", "bun"), { recursive: true });
    writeFileSync(join(home, ".bunfig.toml"), bunfig);
    writeFileSync(join(home, ".config", ".bunfig.toml"), bunfig);
    writeFileSync(join(home, ".config", "bun", "bunfig.toml"), bunfig);
    const r = await vmchan(["--version"], { cwd: home, env: { HOME: home, XDG_CONFIG_HOME: join(home, ".config") } });
    expect(r.code, r.stderr).toBe(0);
    expect(markers(), "a global bunfig preload").toEqual([]);
  });

  test(".env and bunfig.toml in the working directory are not loaded, not even into children", async () => {
    const cwd = mkdtempSync(join(dir, "cwd-"));
    const pre = markerScript("bunfig-preload.js");
    writeFileSync(join(cwd, "bunfig.toml"), `preload = [${JSON.stringify(pre)}]\n[run]\nsmol = false\n`);
    // If .env were loaded, BUN_OPTIONS would make vmchan refuse, and the marker would reach the child.
    writeFileSync(join(cwd, ".env"), `BUN_OPTIONS=--preload ${pre}\nDOTENV_MARKER=loaded\n`);
    writeFileSync(join(cwd, ".env.local"), "DOTENV_LOCAL_MARKER=loaded\n");
    writeFileSync(join(cwd, ".env.production"), "DOTENV_PROD_MARKER=loaded\n");
    const r = await vmchan(["bridge", "--once", "exec:env", "-"], { cwd, stdin: "" });
    const out = r.stdout.toString();
    expect(r.code, r.stderr).toBe(0);
    expect(out, "what the child saw: " + out).not.toContain("MARKER=loaded");
    expect(out).not.toContain("BUN_OPTIONS");
    expect(markers(), "bunfig preload").toEqual([]);
  });
});
