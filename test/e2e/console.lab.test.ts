/**
 * `vmchan console` on the host, in a real terminal (tmux), against a real guest running `vmchan getty`
 * on its console port: a login through the console, Ctrl-C reaching the guest, Ctrl-] q quitting with
 * exit 0 and the terminal settings exactly as before, SIGTERM restoring them too, and stdin that is
 * not a terminal refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode } from "../../lib/exit-codes.ts";
import { PortsListing } from "../../lib/schema.ts";
import { labUser } from "../lab/initramfs.ts";
import { type GuestJob, Lab } from "../lab/lab.ts";
import { VMCHAN, vmchan } from "../support/binary.ts";
import { expectExit } from "../support/guest.ts";

const vmName = `vmchan-console-${process.pid}`;
let lab: Lab;
let getty: GuestJob | null = null;
let dir = "";
/** A tmux server of our own, so nothing of anyone else's is touched. */
const tmuxSocket = `vmchan-console-test-${process.pid}`;

beforeAll(async () => {
  if (!Bun.which("tmux")) throw new Error("these tests need tmux on the host: apt-get install -y tmux");
  dir = mkdtempSync(join(tmpdir(), "vmchan-console-"));
  lab = await Lab.boot({ name: vmName, ports: [{ name: "c.con", kind: "console" }] });
  getty = await lab.spawn("exec vmchan getty");
  // Wait until the getty holds the console.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await lab.run("vmchan ports list --json");
    if (PortsListing.parse(JSON.parse(r.stdout)).guest.find((p) => p.name === "c.con")?.holders.length) break;
    if (Date.now() > deadline) throw new Error("the guest getty did not open the console within 60 s");
    await Bun.sleep(200);
  }
}, 180_000);

afterAll(async () => {
  tmux(["kill-server"]);
  await getty?.kill("KILL").catch(() => {});
  await lab?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

function tmux(args: string[]): string {
  const r = Bun.spawnSync(["tmux", "-L", tmuxSocket, "-f", "/dev/null", ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, TMUX: "" } });
  return r.stdout.toString();
}

/** The tmux session of the current test (one per test: reusing a name raced with its kill). */
let session = "t";

/** The pane's text, scrollback included. */
function pane(): string {
  return tmux(["capture-pane", "-p", "-J", "-t", session, "-S", "-300"]);
}

/** Waits until `text` shows in the pane (`after` occurrences already there are not counted). */
async function waitPane(text: string, timeoutMs = 60_000, after = 0): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const screen = pane();
    if (screen.split(text).length - 1 > after) return;
    if (Date.now() > deadline) throw new Error(`${JSON.stringify(text)} did not show within ${timeoutMs} ms; the pane:\n${screen}`);
    await Bun.sleep(200);
  }
}

async function waitFile(path: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path) || readFileSync(path, "utf8") === "") {
    if (Date.now() > deadline) throw new Error(`${path} was not written within ${timeoutMs} ms; the pane:\n${pane()}`);
    await Bun.sleep(100);
  }
  return readFileSync(path, "utf8");
}

/** Types a line into the pane (literally), then Enter. */
function typeLine(text: string): void {
  if (text) tmux(["send-keys", "-t", session, "-l", text]);
  tmux(["send-keys", "-t", session, "Enter"]);
}

/** Starts a shell in a fresh tmux session that records the terminal settings around `command`, its pid and status. */
async function startInTerminal(tag: string, command: string): Promise<void> {
  session = `t-${tag}`;
  tmux(["new-session", "-d", "-s", session, "-x", "150", "-y", "45", "/bin/sh"]);
  // Type only once the shell is there: keys sent before would race with its start.
  const deadline = Date.now() + 30_000;
  while (!/[#$] *$/m.test(pane())) {
    if (Date.now() > deadline) throw new Error(`the shell in tmux session ${session} did not start within 30 s: ${JSON.stringify(pane())}`);
    await Bun.sleep(100);
  }
  const d = join(dir, tag);
  typeLine(`mkdir -p ${d}; stty -g > ${d}/before; sh -c 'echo $$ > ${d}/pid; exec ${command}'; echo $? > ${d}/rc; stty -g > ${d}/after`);
}

describe("vmchan console (real guest, tmux)", () => {
  test("a login through the console; Ctrl-C goes to the guest; Ctrl-] q exits 0 and restores the terminal exactly", async () => {
    const started = Date.now();
    // The VM by name alone: its first console port, found by host discovery.
    await startInTerminal("quit", `${VMCHAN} console ${vmName}`);
    await waitPane(`vmchan: connected to ${vmName}:c.con (${lab.socketPath("c.con")}); quit: Ctrl-] q`);
    // The getty's first prompt was dropped before anyone connected: Enter asks for it again.
    typeLine("");
    await waitPane("login:");
    typeLine(labUser.name);
    await waitPane("Password:");
    typeLine(labUser.password);
    await waitPane("~ $ ");
    typeLine("echo vmchan-ok-$((6*7))");
    await waitPane("vmchan-ok-42");
    // Raw mode: Ctrl-C is a byte for the guest's tty, which interrupts its sleep; the console stays.
    typeLine("sleep 60");
    await Bun.sleep(500); // let the shell start it; a Ctrl-C that came first would only cancel the line, and the checks below hold either way
    tmux(["send-keys", "-t", session, "C-c"]);
    typeLine("echo after-$((1+1))");
    await waitPane("after-2", 20_000);
    // Escape twice sends one escape to the shell (Ctrl-U then clears its line); then escape q quits.
    tmux(["send-keys", "-t", session, "C-]", "C-]", "C-u"]);
    tmux(["send-keys", "-t", session, "C-]"]);
    tmux(["send-keys", "-t", session, "q"]);
    const d = join(dir, "quit");
    expect((await waitFile(`${d}/rc`)).trim()).toBe("0");
    const after = await waitFile(`${d}/after`);
    expect(after).toBe(readFileSync(`${d}/before`, "utf8"));
    const pid = Number(readFileSync(`${d}/pid`, "utf8"));
    expect(() => process.kill(pid, 0)).toThrow();
    console.log(`console session through tmux: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }, 180_000);

  test("SIGTERM ends the console with code 130 and the terminal restored", async () => {
    // The test user is still logged in on the console (a console has no hang-up): its shell answers.
    await startInTerminal("term", `${VMCHAN} console unix:${lab.socketPath("c.con")}`);
    await waitPane(`vmchan: connected to unix:${lab.socketPath("c.con")}; quit: Ctrl-] q`);
    typeLine("echo still-$((2*3))");
    await waitPane("still-6");
    const d = join(dir, "term");
    process.kill(Number(await waitFile(`${d}/pid`)), "SIGTERM");
    expect((await waitFile(`${d}/rc`)).trim()).toBe(String(ExitCode.interrupted));
    expect(await waitFile(`${d}/after`)).toBe(readFileSync(`${d}/before`, "utf8"));
    await waitPane(`vmchan: console on unix:${lab.socketPath("c.con")} stopped by SIGTERM`);
  }, 120_000);

  test("stdin that is not a terminal is refused with the usage code and a hint", async () => {
    const target = `unix:${lab.socketPath("c.con")}`;
    const r = await vmchan(["console", target]);
    expectExit(lab, r, ExitCode.usage);
    expect(r.stderr).toBe(`vmchan: cannot open a console on "${target}": standard input is not a terminal (hint: for pipes and scripts use 'vmchan bridge - ${target}')\n`);
  }, 60_000);
});
