import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VMCHAN, vmchan } from "../support/binary.ts";
import { unixListening } from "../support/proc-stats.ts";

const dir = mkdtempSync(join(tmpdir(), "vmchan-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("the compiled binary", () => {
  test("--version prints the version and the commit", async () => {
    const r = await vmchan(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toMatch(/^vmchan \d+\.\d+\.\d+ \(commit [0-9a-f]{7,}(-dirty)?\)\n$/);
  });

  test("--help lists exactly the implemented subcommands, and the exit codes", async () => {
    const r = await vmchan(["--help"]);
    expect(r.code).toBe(0);
    const out = r.stdout.toString();
    const commands = [...out.split("Commands:")[1]!.split("Exit codes:")[0]!.matchAll(/^  (\w[\w-]*)/gm)].map((m) => m[1]);
    expect(commands).toEqual(["ports", "cat", "send", "listen", "bridge", "getty", "console", "completions", "help"]);
    expect(out).toContain("  4  port or socket held by another process or client");
  });

  test("ignores .env and bunfig.toml in the working directory", async () => {
    writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./evil.ts"]\n');
    writeFileSync(join(dir, "evil.ts"), 'console.log("PRELOADED");\n');
    writeFileSync(join(dir, ".env"), "NODE_OPTIONS=--bogus\n");
    const r = await vmchan(["--version"], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).not.toContain("PRELOADED");
    expect(r.stderr).toBe("");
  });

  test("usage errors are one line with a hint and exit 2, never a stack trace", async () => {
    for (const args of [["cat"], ["bogus"], ["cat", "--bytes", "lots", "x"], ["send", "tcp:nohost", "-d", "x"], ["ports", "list", "--nope"]]) {
      const r = await vmchan(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^vmchan: .+ \(hint: .+\)\n$/);
      expect(r.stderr).not.toContain("    at ");
    }
    expect((await vmchan(["bogus"])).stderr).toContain("unknown command 'bogus'");
    expect((await vmchan(["cta"])).stderr).toContain("(did you mean cat?)");
  });

  test("send unix:PATH delivers every byte to a listener, cat unix:PATH reads until it closes", async () => {
    const data = crypto.getRandomValues(new Uint8Array(65536));
    const big = Buffer.concat(Array.from({ length: 64 }, () => data)); // 4 MiB
    const inPath = join(dir, "in.sock");
    const chunks: Buffer[] = [];
    const closed = new Promise<void>((resolve) => {
      const srv = net.createServer((s) => {
        s.on("data", (d) => chunks.push(Buffer.from(d)));
        s.on("close", () => {
          srv.close();
          resolve();
        });
      });
      srv.listen(inPath);
    });
    const file = join(dir, "big.bin");
    writeFileSync(file, big);
    const sent = await vmchan(["send", `unix:${inPath}`, file]);
    expect(sent.stderr).toBe("");
    expect(sent.code).toBe(0);
    await closed;
    expect(sha(Buffer.concat(chunks))).toBe(sha(big));

    const outPath = join(dir, "out.sock");
    const srv = net.createServer((s) => s.end(big));
    await new Promise<void>((r) => srv.listen(outPath, r));
    const got = await vmchan(["cat", `unix:${outPath}`]);
    srv.close();
    expect(got.code).toBe(0);
    expect(sha(got.stdout)).toBe(sha(big));
    const limited = await vmchan(["cat", "--bytes", "1000", `unix:${outPath}`]).catch(() => null);
    expect(limited?.code).toBe(3); // server closed: nothing listens any more
  });

  test("send of a missing file fails before touching the port", async () => {
    const r = await vmchan(["send", "unix:/nonexistent.sock", join(dir, "missing.bin")]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`vmchan: cannot read "${join(dir, "missing.bin")}": no such file\n`);
  });

  test("listen on a path another process listens on fails at once with the busy code, not a retry loop", async () => {
    const path = join(dir, "taken.sock");
    const first = Bun.spawn([VMCHAN, "listen", `unix:${path}`], { stdin: "pipe", stdout: "ignore", stderr: "ignore" });
    try {
      // Listening, not only bound: a socket nothing listens on yet would look stale, and be replaced.
      for (let i = 0; i < 500 && !unixListening(path); i++) await Bun.sleep(20);
      expect(unixListening(path), `the first listener did not listen at ${path} within 10 s`).toBe(true);
      // A retry loop would still be running after 10 s and be killed: its code would not be 4.
      const second = await vmchan(["listen", `unix:${path}`], { timeoutMs: 10_000 });
      expect(second.code, second.stderr).toBe(4);
      expect(second.stderr).toBe(`vmchan: cannot listen on "unix:${path}": another process listens on ${path} (hint: stop it, or choose another path)\n`);
    } finally {
      first.kill("SIGTERM");
      await first.exited;
    }
  });
});
