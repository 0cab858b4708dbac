/**
 * bridge and listen across a real guest: the ssh-style round trip with no guest network, and a
 * command served per host session.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { Lab } from "../lab/lab.ts";
import { readUntil } from "../lab/socket.ts";
import { VMCHAN } from "../support/binary.ts";
import { randomBytes, sha256 } from "../support/host-io.ts";
import { expectExit } from "../support/guest.ts";

const MiB = 1024 * 1024;
let lab: Lab;

beforeAll(async () => {
  lab = await Lab.boot({ name: "vmchan-bridge", ports: [{ name: "b.ssh" }, { name: "b.exec" }] });
  const lo = await lab.run("ip link set lo up");
  expectExit(lab, lo, 0);
}, 180_000);

afterAll(async () => {
  await lab?.close();
}, 60_000);

describe("bridge and listen (real guest)", () => {
  test("ssh-style: a TCP echo server in the guest reached from the host through bridge on both sides, 4 MiB sha256 equal", async () => {
    // The guest's "sshd": busybox nc serving cat, reached only through the port (the guest has no network).
    const server = await lab.spawn("exec nc -ll -p 7777 -e cat");
    const guestBridge = await lab.spawn("exec vmchan bridge b.ssh tcp:127.0.0.1:7777");
    const data = randomBytes(4 * MiB, 22);
    // The host side as an ssh ProxyCommand would run it: stdin/stdout to the VM's port.
    const host = Bun.spawn([VMCHAN, "bridge", "--once", "-", `unix:${lab.socketPath("b.ssh")}`], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      const hash = createHash("sha256");
      let got = 0;
      const reading = (async () => {
        const reader = host.stdout.getReader();
        while (got < data.length) {
          const { value, done } = await reader.read();
          if (done) break;
          hash.update(value);
          got += value.length;
        }
      })();
      for (let off = 0; off < data.length; off += 64 * 1024) {
        host.stdin.write(data.subarray(off, off + 64 * 1024));
        await host.stdin.flush();
      }
      const timeout = Bun.sleep(120_000).then(() => "timeout");
      expect(await Promise.race([reading.then(() => "done"), timeout])).toBe("done");
      expect(got).toBe(data.length);
      expect(hash.digest("hex")).toBe(sha256(data));
    } finally {
      host.kill("SIGTERM");
      await host.exited;
      await guestBridge.kill("TERM");
      await server.kill("TERM");
    }
  }, 180_000);

  test("listen --exec serves three successive host sessions, one command run each", async () => {
    const job = await lab.spawn(`exec vmchan listen -v -k --exec 'sh -c "read line; echo got:\\$line:\\$\\$"' b.exec 2>/tmp/listen-exec.log`);
    try {
      const pids = new Set<string>();
      let sessions = 0;
      for (const word of ["one", "two", "three"]) {
        const sock = await lab.connect("b.exec");
        sock.write(`${word}\n`);
        const reply = (await readUntil(sock, (d) => d.includes("\n"), 30_000)).toString();
        sock.destroy();
        const m = reply.match(/^got:(\w+):(\d+)\n$/);
        expect(m?.[1], `reply to ${word}`).toBe(word);
        pids.add(m![2]!);
        // A guest cannot tell a quick reconnect from the same host connection unless it saw the disconnect in
        // between (virtio-serial has no connection ids): wait until listen has seen this host leave.
        sessions++;
        const seen = await lab.run(
          `for i in $(seq 300); do [ "$(grep -c 'b.exec: host disconnected' /tmp/listen-exec.log)" -ge ${sessions} ] && exit 0; sleep 0.1; done; cat /tmp/listen-exec.log; exit 1`,
          { timeoutMs: 60_000 },
        );
        expect(seen.code, `listen -v never reported disconnect ${sessions}; its stderr: ${seen.stdout}`).toBe(0);
      }
      expect(pids.size).toBe(3);
      const alive = await lab.run(`kill -0 ${job.pid}`);
      expectExit(lab, alive, 0);
    } finally {
      await job.kill("TERM");
    }
  }, 120_000);
});
