/**
 * Ports given by path inside a real guest: /dev/vportNpM, /dev/virtio-ports/NAME and /dev/hvcN still
 * work now that a path must be a virtio-serial port or hvc console, and what looks like a port but is
 * not (a file, a planted /dev/virtio-ports link, a serial tty, /dev/null) is refused and left as it was.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ExitCode } from "../../lib/exit-codes.ts";
import { Lab } from "../lab/lab.ts";
import { readUntil, writeAndClose } from "../lab/socket.ts";
import { waitHeld } from "../support/guest.ts";

let lab: Lab;

beforeAll(async () => {
  lab = await Lab.boot({
    name: "vmchan-port-path",
    links: true,
    ports: [
      { name: "t.con", kind: "console", nr: 0 },
      { name: "t.dev", nr: 1 },
      { name: "t.link", nr: 2 },
      { name: "t.cat", nr: 3 },
    ],
  });
}, 180_000);

afterAll(async () => {
  await lab?.close();
}, 60_000);

describe("guest port paths (real guest)", () => {
  test("send /dev/vport0p1 (and the same port as vport0p1, t.dev, port:t.dev) reaches the host", async () => {
    const sock = await lab.connect("t.dev");
    try {
      for (const [i, spec] of ["/dev/vport0p1", "vport0p1", "t.dev", "port:t.dev"].entries()) {
        const word = `via-${i}-${spec.replace(/\W/g, "_")};`;
        const got = readUntil(sock, (d) => d.toString().includes(word), 60_000);
        const r = await lab.run(`vmchan send --timeout 30 ${spec} --data '${word}'`);
        expect(r.stderr, spec).toBe("");
        expect(r.code, spec).toBe(0);
        expect((await got).toString(), spec).toBe(word);
      }
    } finally {
      sock.destroy();
    }
  }, 120_000);

  test("send /dev/virtio-ports/NAME (a udev-style link) reaches the host", async () => {
    const sock = await lab.connect("t.link");
    try {
      const got = readUntil(sock, (d) => d.toString().includes("via-link"), 60_000);
      const r = await lab.run("readlink /dev/virtio-ports/t.link && vmchan send --timeout 30 /dev/virtio-ports/t.link --data via-link");
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect((await got).toString()).toBe("via-link");
    } finally {
      sock.destroy();
    }
  }, 120_000);

  test("cat /dev/vport0p3 gets what the host sends", async () => {
    const job = await lab.spawn("vmchan cat /dev/vport0p3");
    await waitHeld(lab, "t.cat");
    await writeAndClose(await lab.connect("t.cat"), "to-the-guest", 1500);
    const r = await job.wait({ timeoutMs: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("to-the-guest");
  }, 120_000);

  test("send /dev/hvc0 reaches the host on the console socket", async () => {
    const sock = await lab.connect("t.con");
    try {
      const got = readUntil(sock, (d) => d.toString().includes("via-hvc"), 60_000);
      // A console drops output until QEMU has taken the host's connection, which the guest cannot see: repeat until it arrives.
      const job = await lab.spawn("for i in $(seq 100); do vmchan send /dev/hvc0 --data via-hvc || exit 1; sleep 0.3; done");
      const data = (await got).toString();
      expect(data).toContain("via-hvc");
      await job.kill();
      const r = await job.wait({ timeoutMs: 30_000 });
      expect(r.stderr, "the repeated sends").toBe("");
    } finally {
      sock.destroy();
    }
  }, 120_000);

  test("a file, links to it, a planted /dev/virtio-ports link, a fifo, a directory, ttyS0 and /dev/null are refused with exit 2, the file unchanged", async () => {
    const setup = await lab.run(
      "printf 'precious data\\n' > /tmp/precious && ln -sf /tmp/precious /tmp/link && mkdir -p /tmp/dir /dev/virtio-ports && " +
        "ln -sf /tmp/precious /dev/virtio-ports/org.evil.0 && rm -f /tmp/fifo && mkfifo /tmp/fifo && sha256sum /tmp/precious",
    );
    expect(setup.code, setup.stderr).toBe(0);
    const before = setup.stdout.split(/\s+/)[0]!;
    const paths = ["/tmp/precious", "/tmp/link", "/dev/virtio-ports/org.evil.0", "/tmp/fifo", "/tmp/dir", "/dev/ttyS0", "/dev/null", "/dev/zero"];
    for (const path of paths) {
      for (const cmd of [`send --no-wait ${path} --data XX`, `cat --no-wait ${path}`, `send --timeout 1 ${path} --data XX`]) {
        const r = await lab.run(`vmchan ${cmd} </dev/null`);
        const seen = `vmchan ${cmd}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
        expect(r.code, seen).toBe(ExitCode.usage);
        expect(r.stderr, seen).toMatch(/^vmchan: cannot open port ".+": .+ not a virtio-serial port or hvc console \(hint: .+\)\n$/);
        expect(r.stdout, seen).toBe("");
      }
    }
    const after = await lab.run("sha256sum /tmp/precious && cat /tmp/precious");
    expect(after.stdout.split(/\s+/)[0], after.stdout).toBe(before);
    const getty = await lab.run("vmchan getty /tmp/precious; echo \"exit $?\"");
    expect(getty.stdout, "getty on a file").toBe("exit 2\n");
    expect(getty.stderr, "getty on a file").toMatch(/^vmchan: cannot open port "\/tmp\/precious": \/tmp\/precious is a regular file, not a virtio-serial port or hvc console \(hint: .+\)\n$/);
    expect(getty.stderr, "getty takes no file: address, so its hint does not offer one").not.toContain("file:PATH");
    await lab.run("rm -rf /tmp/precious /tmp/link /tmp/dir /tmp/fifo /dev/virtio-ports/org.evil.0");
  }, 300_000);

  test("a link swapped between a port and a file while vmchan opens it never writes the file", async () => {
    const setup = await lab.run("printf 'precious data\\n' > /tmp/race-target && sha256sum /tmp/race-target");
    expect(setup.code, setup.stderr).toBe(0);
    const before = setup.stdout.split(/\s+/)[0]!;
    // rename(2) swaps the link atomically, so the link always exists and points at one or the other.
    const swapper = await lab.spawn(
      "while :; do ln -sf /dev/vport0p1 /tmp/race-a && mv -f /tmp/race-a /tmp/race-link; ln -sf /tmp/race-target /tmp/race-b && mv -f /tmp/race-b /tmp/race-link; done",
    );
    await lab.run("for i in $(seq 100); do [ -L /tmp/race-link ] && exit 0; sleep 0.1; done; exit 1");
    try {
      const r = await lab.run(
        "for i in $(seq 40); do vmchan send --no-wait /tmp/race-link --data XX 2>>/tmp/race-err </dev/null; echo $?; done | sort | uniq -c",
        { timeoutMs: 240_000 },
      );
      expect(r.code, r.stderr).toBe(0);
      // Every run ends as a refusal (2), a swap caught between stat and open (1), or the real port without a host (6).
      const codes = r.stdout.trim().split("\n").map((l) => Number(l.trim().split(/\s+/)[1]));
      expect(codes.every((c) => [1, 2, 6].includes(c)), `exit codes (count, code): ${r.stdout}`).toBe(true);
      // Both sides of the swap were met, so the race was really run.
      expect(codes.includes(2) && codes.includes(6), `exit codes (count, code): ${r.stdout}`).toBe(true);
    } finally {
      await swapper.kill("KILL");
      await swapper.wait({ timeoutMs: 30_000 }).catch(() => {});
    }
    const after = await lab.run("sha256sum /tmp/race-target; sort /tmp/race-err | sed 's/\"[^\"]*\"/\"X\"/g' | uniq -c");
    expect(after.stdout.split(/\s+/)[0], after.stdout).toBe(before);
    expect(after.stdout, "every error is one vmchan line").not.toMatch(/internal error|    at /);
    await lab.run("rm -f /tmp/race-target /tmp/race-link /tmp/race-err /tmp/race-a /tmp/race-b");
  }, 300_000);

  test("file:PATH still opens a file in the guest when asked for", async () => {
    const r = await lab.run("printf 0123456789 > /tmp/explicit && vmchan send file:/tmp/explicit --data AB && cat /tmp/explicit");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("AB23456789");
  }, 60_000);
});
