import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { VMCHAN } from "../support/binary.ts";
import { perTest } from "../support/fixture.ts";
import { HostileQmp, onePort, qemuFixture } from "../support/hostile-qmp.ts";
import { memorySampler } from "../support/proc-stats.ts";

/** Far above what vmchan needs (about 60 MiB), far below what an unbounded buffer reaches in a second of flood. */
const RSS_BOUND = 200 * 1024 * 1024;
const MiB = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

const { fixture, later } = perTest();

async function scene(how: ConstructorParameters<typeof HostileQmp>[1]) {
  const fx = fixture();
  const qmpPath = join(fx.root, "qmp.sock");
  const qmp = new HostileQmp(qmpPath, how);
  await qmp.listen();
  later(() => qmp.close());
  qemuFixture(fx, qmpPath, ["-name", "vm1", ...onePort(join(fx.root, "x.sock"))]);
  return { fx, qmp };
}

const vserport = (id: string, open: boolean) => JSON.stringify({ event: "VSERPORT_CHANGE", data: { id, open }, timestamp: { seconds: 1, microseconds: 0 } }) + "\r\n";

/** Runs `ports watch` until its stderr matches `until` (or it exits), sampling its memory meanwhile. */
async function watchUntil(root: string, until: RegExp, limitMs = 30_000) {
  const proc = Bun.spawn([VMCHAN, "ports", "watch", "--root", root], { env: { PATH: "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe" });
  const memory = memorySampler(proc.pid, 20);
  const stdout = new Response(proc.stdout).text();
  let stderr = "";
  const reader = proc.stderr.getReader();
  const dec = new TextDecoder();
  const killer = setTimeout(() => proc.kill("SIGKILL"), limitMs);
  while (!until.test(stderr)) {
    const { value, done } = await reader.read();
    if (done) break;
    stderr += dec.decode(value, { stream: true });
  }
  // Still alive after the peer was dropped: the whole command did not fail with it.
  const aliveAfter = proc.exitCode === null;
  proc.kill("SIGTERM");
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += dec.decode(value, { stream: true });
    }
  })();
  const code = await proc.exited;
  clearTimeout(killer);
  return { peak: memory.stop(), stderr, stdout: await stdout, code, aliveAfter };
}

describe("a hostile QMP peer", () => {
  const floods: Array<[string, () => string]> = [
    ["one port toggling", (() => {
      let open = false;
      return () => vserport("p0", (open = !open));
    })()],
    ["ever new device ids", (() => {
      let n = 0;
      return () => vserport(`dev${n++}`, true);
    })()],
    ["DEVICE_DELETED of anonymous devices (each asks for a poll)", (() => {
      let n = 0;
      return () => JSON.stringify({ event: "DEVICE_DELETED", data: { path: `/machine/peripheral-anon/device[${n++}]` } }) + "\n";
    })()],
    ["events vmchan does not know", () => JSON.stringify({ event: "RTC_CHANGE", data: { offset: 1 } }) + "\n"],
  ];
  for (const [what, next] of floods) {
    test(`ports watch drops a peer flooding events (${what}) with one note, stays up and bounded`, async () => {
      const { fx, qmp } = await scene({ flood: next });
      const r = await watchUntil(fx.root, /dropped the QMP peer[^\n]*\n/);
      const seen = `what I saw: peak ${MiB(r.peak)}, code ${r.code}, peer sent ${MiB(qmp.sent)}, stderr:\n${r.stderr.slice(0, 2000)}`;
      expect(r.stderr, seen).toMatch(/vmchan: note: VM "vm1" \(pid 4242\): dropped the QMP peer at \S+qmp\.sock: it floods \((over \d+ events within 1 s|events for over \d+ unhandled device ids at once)[^\n]*unknown from now on$/m);
      expect(r.stderr.match(/dropped the QMP peer/g)?.length, seen).toBe(1);
      expect(r.aliveAfter, seen).toBe(true);
      expect(r.code, seen).toBe(0);
      expect(r.peak, seen).toBeLessThan(RSS_BOUND);
      expect(qmp.sent, seen).toBeGreaterThanOrEqual(64 * 1024);
      expect(r.stderr, seen).not.toMatch(/internal error|at .*\.ts:\d+/);
    }, 120_000);
  }

  test("ports watch drops a peer whose line never ends, stays up and bounded", async () => {
    const { fx, qmp } = await scene({ flood: () => "x".repeat(4096) });
    const r = await watchUntil(fx.root, /line over \d+ bytes[^\n]*\n|dropped[^\n]*\n/);
    const seen = `what I saw: peak ${MiB(r.peak)}, code ${r.code}, peer sent ${MiB(qmp.sent)}, stderr:\n${r.stderr.slice(0, 2000)}`;
    expect(r.stderr, seen).toMatch(/vmchan: note: VM "vm1" \(pid 4242\): QMP peer at \S+qmp\.sock dropped: QMP peer sent a line over 4194304 bytes without a newline/);
    expect(r.aliveAfter, seen).toBe(true);
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
    expect(qmp.sent, seen).toBeGreaterThan(4 * 1024 * 1024);
  }, 120_000);

  test("ports list: a line without a newline costs bounded memory, gives one note and the VM with unknown state", async () => {
    const { fx, qmp } = await scene({ flood: () => "y".repeat(65536) });
    const proc = Bun.spawn([VMCHAN, "ports", "list", "--root", fx.root], { env: { PATH: "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe" });
    const memory = memorySampler(proc.pid, 10);
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const peak = memory.stop();
    const seen = `what I saw: peak ${MiB(peak)}, code ${code}, peer sent ${MiB(qmp.sent)}, stdout:\n${stdout}\nstderr:\n${stderr}`;
    expect(code, seen).toBe(0);
    expect(stderr, seen).toMatch(/^vmchan: note: cannot query QMP of VM "vm1" \(pid 4242\) at \S+qmp\.sock: QMP peer sent a line over 4194304 bytes without a newline \(QEMU never does\)\n$/);
    expect(stdout, seen).toMatch(/^vm1 +4242 +\S+ +org\.x +serial +\S+x\.sock +we connect +unknown +\S+$/m);
    expect(peak, seen).toBeLessThan(RSS_BOUND);
    expect(qmp.sent, seen).toBeGreaterThan(4 * 1024 * 1024);
  }, 120_000);

  for (const early of [false, true]) {
    // Between the replies the listing may well be done before the flood passes the limit: then there is no note.
    test(`ports list: a peer flooding events ${early ? "right after its greeting is dropped with one note" : "between the replies costs bounded memory"}, the VM listed with unknown state`, async () => {
      let open = false;
      const { fx, qmp } = await scene({ flood: () => vserport("p0", (open = !open)), early });
      const proc = Bun.spawn([VMCHAN, "ports", "list", "--root", fx.root], { env: { PATH: "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe" });
      const memory = memorySampler(proc.pid, 10);
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      const peak = memory.stop();
      const seen = `what I saw: peak ${MiB(peak)}, code ${code}, peer sent ${MiB(qmp.sent)}, stdout:\n${stdout}\nstderr:\n${stderr}`;
      expect(code, seen).toBe(0);
      const note = /^vmchan: note: cannot query QMP of VM "vm1" \(pid 4242\) at \S+qmp\.sock: QMP peer floods: over 10000 events or other unasked-for messages within 1 s[^\n]*\n$/;
      if (early || stderr !== "") expect(stderr, seen).toMatch(note);
      expect(stdout, seen).toMatch(/^vm1 +4242 +\S+ +org\.x +serial +\S+x\.sock +we connect +unknown +unknown$/m);
      expect(peak, seen).toBeLessThan(RSS_BOUND);
    }, 120_000);
  }

  test("ports watch: a peer flooding right after its greeting costs bounded memory and gives one note, the watch stays up", async () => {
    let open = false;
    const { fx, qmp } = await scene({ flood: () => vserport("p0", (open = !open)), early: true });
    const r = await watchUntil(fx.root, /QMP peer floods[^\n]*\n/);
    const seen = `what I saw: peak ${MiB(r.peak)}, code ${r.code}, peer sent ${MiB(qmp.sent)}, stderr:\n${r.stderr.slice(0, 2000)}`;
    expect(r.stderr, seen).toMatch(/^vmchan: note: VM "vm1" \(pid 4242\): no QMP socket answered \(\S+qmp\.sock: QMP peer floods: over 10000 events[^\n]*\n/m);
    expect(r.aliveAfter, seen).toBe(true);
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
  }, 120_000);
});
