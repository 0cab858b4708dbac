/**
 * `vmchan getty` in a real guest (busybox getty and login): a login prompt and a working login on a
 * console port (hvc0) and on a serial port through a PTY, respawn after logout, hang-up on host
 * disconnect, autologin, and the root refusal. The host side is the harness's own socket code.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type * as net from "node:net";
import { ExitCode } from "../../lib/exit-codes.ts";
import { PortsListing } from "../../lib/schema.ts";
import { labUser } from "../lab/initramfs.ts";
import { type GuestJob, Lab } from "../lab/lab.ts";
import { waitHeld, expectExit } from "../support/guest.ts";

let lab: Lab;

beforeAll(async () => {
  lab = await Lab.boot({
    name: "vmchan-getty",
    ports: [{ name: "g.con", kind: "console" }, { name: "g.ser" }, { name: "g.auto" }],
  });
}, 180_000);

afterAll(async () => {
  await lab?.close();
}, 60_000);

/** Everything a host connection received, with waits for text to appear after a cursor. */
class Transcript {
  private data = "";
  private cursor = 0;
  private wake: (() => void) | null = null;
  constructor(readonly sock: net.Socket) {
    sock.setEncoding("latin1");
    sock.on("data", (s: string) => {
      this.data += s;
      this.wake?.();
    });
  }

  /** Waits until `pattern` appears after what earlier waits consumed; consumes up to its end. */
  async waitFor(pattern: string | RegExp, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rest = this.data.slice(this.cursor);
      const m = typeof pattern === "string" ? (rest.includes(pattern) ? { index: rest.indexOf(pattern), 0: pattern } : null) : rest.match(pattern);
      if (m && m.index !== undefined) {
        this.cursor += m.index + m[0]!.length;
        return rest.slice(0, m.index + m[0]!.length);
      }
      if (Date.now() > deadline) throw new Error(`${JSON.stringify(String(pattern))} did not arrive within ${timeoutMs} ms; got ${JSON.stringify(rest)}`);
      await Promise.race([new Promise<void>((r) => (this.wake = r)), Bun.sleep(200)]);
    }
  }

  send(text: string): void {
    this.sock.write(text);
  }
}


/** Logs in as the lab's test user at a "login:" prompt already seen, and proves the shell runs as that user. */
async function logIn(t: Transcript): Promise<void> {
  t.send(`${labUser.name}\n`);
  await t.waitFor("Password:");
  t.send(`${labUser.password}\n`);
  await t.waitFor(/[$#] /);
  t.send("echo vmchan-ok-$((6*7)) uid=$(id -u)\n");
  await t.waitFor(`vmchan-ok-42 uid=${labUser.uid}`);
}

async function stop(job: GuestJob): Promise<{ code: number; stderr: string }> {
  await job.kill("TERM");
  return job.wait({ timeoutMs: 30_000 });
}

describe("vmchan getty (real guest, busybox getty)", () => {
  test("on hvc0: Enter gives a login prompt, the test user logs in, logout gets a new prompt, SIGTERM exits 0", async () => {
    const job = await lab.spawn("exec vmchan getty");
    let sock: net.Socket | null = null;
    try {
      await waitHeld(lab, "g.con");
      sock = await lab.connect("g.con");
      const t = new Transcript(sock);
      // The first prompt was printed before the host connected: a console drops it (facts (i)).
      t.send("\n");
      await t.waitFor("login:");
      await logIn(t);
      // A getty that exits within 1 s counts as dying at once (a back-off and a log line): this login is quicker
      // than any person's, so it lasts a little longer before logging out.
      t.send("sleep 1; exit\n");
      // Not a condition stand-in: the respawned getty prints its prompt to the connected host by itself; the
      // newline only nudges it, and reaching the shell instead (if it is slow to exit) changes nothing.
      await Bun.sleep(1500);
      t.send("\n");
      await t.waitFor("login:");
      const r = await stop(job);
      expectExit(lab, r, ExitCode.ok);
      expect(r.stderr).toBe("vmchan: busybox getty on hvc0\n");
      // The getty went with it: nothing holds the console any more.
      const list = PortsListing.parse(JSON.parse((await lab.run("vmchan ports list --json")).stdout));
      expect(list.guest.find((p) => p.name === "g.con")?.holders).toEqual([]);
    } finally {
      sock?.destroy();
      await job.kill("KILL").catch(() => {});
    }
  }, 240_000);

  test("on a serial port through a PTY: a prompt on connect, a login, a hang-up on disconnect, a fresh prompt on reconnect", async () => {
    const job = await lab.spawn("exec vmchan getty g.ser");
    let sock: net.Socket | null = null;
    try {
      await waitHeld(lab, "g.ser");
      sock = await lab.connect("g.ser");
      let t = new Transcript(sock);
      // Nothing sent: the guest sees the host connect, and the getty starts for it.
      await t.waitFor("login:");
      await logIn(t);
      t.send("echo shell=$$ > /tmp/ser-shell\n");
      await t.waitFor(/[$#] /);
      const shell = (await lab.run("cat /tmp/ser-shell")).stdout.trim().replace("shell=", "");
      expect(shell).toMatch(/^\d+$/);
      sock.destroy();
      // The disconnect hangs the session up: the shell is gone.
      const gone = await lab.run(`for i in $(seq 100); do kill -0 ${shell} 2>/dev/null || exit 0; sleep 0.2; done; exit 1`, { timeoutMs: 60_000 });
      expectExit(lab, gone, 0);
      sock = await lab.connect("g.ser");
      t = new Transcript(sock);
      await t.waitFor("login:");
      await logIn(t);
      const r = await stop(job);
      expectExit(lab, r, ExitCode.ok);
      expect(r.stderr).toBe('vmchan: busybox getty on "g.ser" (through a PTY)\n');
    } finally {
      sock?.destroy();
      await job.kill("KILL").catch(() => {});
      await lab.run("rm -f /tmp/ser-shell");
    }
  }, 240_000);

  test("--autologin gives the user's shell without a password; root is refused without --allow-root", async () => {
    const refused = await lab.run("vmchan getty --autologin root g.auto");
    expectExit(lab, refused, ExitCode.usage);
    expect(refused.stderr).toBe(
      'vmchan: refusing --autologin "root": it is root, and anyone who reaches the port would get a root shell without a password (hint: add --allow-root if that is really wanted)\n',
    );
    const job = await lab.spawn(`exec vmchan getty --autologin ${labUser.name} g.auto`);
    let sock: net.Socket | null = null;
    try {
      await waitHeld(lab, "g.auto");
      sock = await lab.connect("g.auto");
      const t = new Transcript(sock);
      await t.waitFor(/[$#] /);
      t.send("echo auto-$((6*7)) $(id -un)\n");
      await t.waitFor(`auto-42 ${labUser.name}`);
      const r = await stop(job);
      expectExit(lab, r, ExitCode.ok);
      expect(r.stderr).toBe(`vmchan: busybox getty on "g.auto" (through a PTY), logging in "${labUser.name}" automatically\n`);
      // The autologin program is removed on exit.
      expect((await lab.run("ls /run/vmchan-getty-* /tmp/vmchan-getty-* 2>/dev/null | wc -l")).stdout.trim()).toBe("0");
    } finally {
      sock?.destroy();
      await job.kill("KILL").catch(() => {});
    }
  }, 240_000);
});
