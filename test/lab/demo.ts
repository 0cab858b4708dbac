#!/usr/bin/env bun
/**
 * `npm run demo`: boots the lab guest with two serial ports and a console, lists them with vmchan inside the
 * guest, then moves one line each way with plain shell tools. Prints every step; exits non-zero if one fails.
 */
import { guestBinary, Lab, type LabPort } from "./lab.ts";
import { readUntil } from "./socket.ts";

const ports: LabPort[] = [
  { name: "org.vmchan.demo.console", kind: "console", nr: 0 },
  { name: "org.vmchan.demo.in", nr: 1 },
  { name: "org.vmchan.demo.out", nr: 2 },
];
const started = Date.now();

function say(text: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[${t}s] ${text}`);
}

function indent(text: string): string {
  return text.trimEnd().replace(/^/gm, "        ");
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`step failed: ${what}`);
}

async function main(lab: Lab): Promise<void> {
  say(`guest is up: QEMU start to agent in ${(lab.bootMs / 1000).toFixed(1)} s; host sockets in ${lab.dir}`);

  say("guest$ vmchan ports list");
  const list = await lab.run(`${guestBinary} ports list`);
  console.log(indent(list.stdout + list.stderr));
  check(list.code === 0 && ports.every((p) => list.stdout.includes(p.name)), "vmchan ports list shows the three ports");

  const line = "hello from the host";
  say(`host -> guest: the host connects to ${lab.socketPath("org.vmchan.demo.in")}, then the guest runs 'head -n1 /dev/vport0p1'`);
  // Host first: a guest read() on a port with no host returns 0 at once, which head takes for end of file.
  const input = await lab.connect("org.vmchan.demo.in");
  try {
    const seen = await lab.run(
      "for i in $(seq 100); do grep -qx 'host_connected: 1' /sys/kernel/debug/virtio-ports/vport0p1 && exit 0; sleep 0.1; done; exit 1",
    );
    check(seen.code === 0, "the guest sees the host connected (debugfs host_connected: 1)");
    // Wait for QEMU to see the guest open the port, so the line goes to head.
    const opened = lab.qmp.waitEvent("VSERPORT_CHANGE", (d) => d.id === "port-org.vmchan.demo.in" && d.open === true, 30_000);
    const reader = await lab.spawn("head -n1 /dev/vport0p1");
    await opened;
    say(`QMP: VSERPORT_CHANGE open=true for port-org.vmchan.demo.in; the host writes "${line}"`);
    input.write(`${line}\n`);
    const got = await reader.wait({ timeoutMs: 30_000 });
    console.log(indent(`guest head printed: ${JSON.stringify(got.stdout)} (exit ${got.code})`));
    check(got.code === 0 && got.stdout === `${line}\n`, "the guest read the host's line");
  } finally {
    // Closed only after head has its line (closing early can drop what QEMU has not delivered yet), and with
    // destroy, never end(): QEMU takes a half-close for a disconnect.
    input.destroy();
  }

  say(`guest -> host: the host connects to ${lab.socketPath("org.vmchan.demo.out")}, the guest runs 'echo hi > /dev/vport0p2'`);
  const sock = await lab.connect("org.vmchan.demo.out");
  try {
    const received = readUntil(sock, (d) => d.includes(0x0a), 30_000);
    const echo = await lab.run("echo hi from the guest > /dev/vport0p2");
    check(echo.code === 0, `the guest's echo succeeded (exit ${echo.code}: ${echo.stderr.trim()})`);
    const data = (await received).toString();
    console.log(indent(`host received: ${JSON.stringify(data)}`));
    check(data === "hi from the guest\n", "the host got the guest's line");
  } finally {
    // destroy, never end(): QEMU takes a half-close for a disconnect.
    sock.destroy();
  }

  say("guest$ vmchan ports list   (counters after the exchange)");
  const after = await lab.run(`${guestBinary} ports list`);
  console.log(indent(after.stdout + after.stderr));
  check(after.code === 0, "vmchan ports list after the exchange");
}

let code = 0;
say(`booting the lab guest (QEMU, TCG) with ports: ${ports.map((p) => `${p.name} (${p.kind ?? "serial"})`).join(", ")}`);
let lab: Lab | null = null;
try {
  lab = await Lab.boot({ ports, name: "vmchan-demo", links: true });
  await main(lab);
  say("all steps passed");
} catch (err) {
  console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
  code = 1;
} finally {
  if (lab) {
    say("shutting down the guest");
    await lab.close();
  }
}
say(code === 0 ? "done" : "done, with a failure");
process.exit(code);
