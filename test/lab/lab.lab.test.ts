/** The lab itself, in a real guest: the command agent, jobs, a client-mode port, QMP, and cleanup. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { Lab } from "./lab.ts";
import { readUntil } from "./socket.ts";
import { expectExit } from "../support/guest.ts";

const long = 120_000;

describe("the lab", () => {
  let lab: Lab;
  // A listener for the client-mode port: QEMU connects to it, retrying every second.
  let listenDir = "";
  let listenPath = "";
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => accepted.push(s.on("error", () => {})));

  beforeAll(async () => {
    listenDir = mkdtempSync("/tmp/vmchan-lab-listen-");
    listenPath = join(listenDir, "client.sock");
    await new Promise<void>((resolve) => server.listen(listenPath, resolve));
    lab = await Lab.boot({
      ports: [{ name: "org.vmchan.lab.client", mode: "client", path: listenPath, nr: 1 }],
      name: "vmchan-lab-self-test",
    });
  }, long);
  afterAll(async () => {
    await lab?.close();
    for (const s of accepted) s.destroy();
    server.close();
    if (listenDir) rmSync(listenDir, { recursive: true, force: true });
  }, long);

  test(
    "run returns the exit code, stdout and stderr apart, byte for byte",
    async () => {
      const r = await lab.run("printf 'one\\n two  \\t3\\r\\n\\342\\202\\254'; echo oops >&2; exit 7");
      expect(r).toEqual({ code: 7, stdout: "one\n two  \t3\r\n€", stderr: "oops\n" });
      const big = await lab.run("head -c 300000 /dev/zero | tr '\\0' x");
      expect(big.stdout).toBe("x".repeat(300000));
    },
    long,
  );

  test(
    "a job gets stdin from /dev/null and none of the agent's descriptors",
    async () => {
      const r = await lab.run("for f in /proc/$$/fd/*; do echo \"${f##*/} $(readlink $f)\"; done");
      const fds = r.stdout.trim().split("\n");
      expect(fds[0]).toBe("0 /dev/null");
      expect(fds.some((l) => /vport|\/tmp\/\.lab-agent\/events/.test(l))).toBe(false);
    },
    long,
  );

  test(
    "a long job does not block other commands",
    async () => {
      // A run queued behind the job would take its 20 s; 10 s is far from that and far above a loaded round trip.
      const slow = await lab.spawn("sleep 20; echo slow");
      const started = Date.now();
      expect((await lab.run("echo quick")).stdout).toBe("quick\n");
      const took = Date.now() - started;
      expect(took, `echo quick took ${took} ms`).toBeLessThan(10_000);
      expect(await slow.wait({ timeoutMs: 60_000 })).toEqual({ code: 0, stdout: "slow\n", stderr: "" });
    },
    long,
  );

  test(
    "kill signals the job's whole process group",
    async () => {
      const job = await lab.spawn("sleep 101 & sleep 102; echo never");
      // The job's pid is also its process group (setsid); busybox here has ps but no pgrep.
      const group = `ps -o pgid,args | grep -c '^ *${job.pid} sleep 10[12]$'`;
      const both = await lab.run(`for i in $(seq 50); do [ "$(${group})" = 2 ] && exit 0; sleep 0.1; done; exit 1`);
      expectExit(lab, both, 0);
      await job.kill("TERM");
      expect(await job.wait({ timeoutMs: 30_000 })).toEqual({ code: 143, stdout: "", stderr: "" });
      const left = await lab.run("for i in $(seq 50); do ps -o args | grep -q '^sleep 10[12]$' || exit 0; sleep 0.1; done; exit 1");
      expectExit(lab, left, 0);
    },
    long,
  );

  test(
    "run rejects after its timeout and kills the command",
    async () => {
      await expect(lab.run("sleep 31; echo late", { timeoutMs: 1500 })).rejects.toThrow('guest command timed out after');
      const left = await lab.run("for i in $(seq 50); do ps -o args | grep -q '^sleep 31$' || exit 0; sleep 0.1; done; exit 1");
      expectExit(lab, left, 0);
    },
    long,
  );

  test(
    "a client-mode port: QEMU connects to our listener and guest data arrives there",
    async () => {
      // QEMU connects at start or within a second (reconnect=1).
      for (let i = 0; i < 100 && accepted.length === 0; i++) await Bun.sleep(50);
      expect(accepted).toHaveLength(1);
      const got = readUntil(accepted[0]!, (d) => d.includes(0x0a), 30_000);
      const r = await lab.run("echo from-guest > /dev/vport0p1");
      expectExit(lab, r, 0);
      expect((await got).toString()).toBe("from-guest\n");
      expect(lab.socketPath("org.vmchan.lab.client")).toBe(listenPath);
      expect(() => lab.connect("org.vmchan.lab.client")).toThrow("is in client mode");
    },
    long,
  );

  test(
    "QMP answers for this VM, and the console log shows the guest's init",
    async () => {
      expect(await lab.qmp.execute("query-name")).toEqual({ name: "vmchan-lab-self-test" });
      const chardevs = await lab.qmp.execute<Array<{ label: string }>>("query-chardev");
      expect(chardevs.map((c) => c.label)).toContain("ch-port-org.vmchan.lab.client");
      expect(lab.consoleLog()).toContain("lab-init: ready");
    },
    long,
  );

  test(
    "close quits QEMU and removes the temp dir",
    async () => {
      const pid = lab.qemuPid;
      const dir = lab.dir;
      await lab.close();
      expect(existsSync(dir)).toBe(false);
      expect(() => process.kill(pid, 0)).toThrow();
      await expect(lab.run("true")).rejects.toThrow("the lab is closed");
    },
    long,
  );
});
