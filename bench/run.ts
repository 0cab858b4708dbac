#!/usr/bin/env bun
/**
 * `npm run bench`: vmchan's relay against socat, start-up time, memory, and the guest data path.
 * Prints a table and writes bench/results.md. Not part of `npm test`.
 *
 *   bun bench/run.ts [--quick] [--no-guest] [--runs N] [--vmchan PATH] [--compare LABEL=PATH]... [--out FILE]
 *
 * --quick: one run of each, small sizes (a smoke test of the benchmark itself, not a result).
 * --vmchan: the binary to measure instead of dist/vmchan.
 * --compare: also measure another build (e.g. a prototype of a relay change) in the same interleaved
 *   runs, and add a table comparing it with the main binary.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FixtureRoot } from "../test/support/fixture.ts";
import { type GuestResults, guestBench } from "./guest.ts";
import { fmt, GiB, MiB, output, peerResult, ratio, reap, Sampler, sampleProc, type Stat, stat, startPeer } from "./harness.ts";

const root = new URL("..", import.meta.url).pathname;
const { values: cli } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    "no-guest": { type: "boolean", default: false },
    runs: { type: "string" },
    vmchan: { type: "string", default: join(root, "dist/vmchan") },
    out: { type: "string", default: join(root, "bench/results.md") },
    compare: { type: "string", multiple: true, default: [] },
  },
});
const quick = cli.quick!;
const vmchanBin = cli.vmchan!;
const RUNS = Number(cli.runs ?? (quick ? 1 : 5));
const plan = {
  throughputBytes: quick ? 256 * MiB : GiB,
  pingMs: quick ? 500 : 1500,
  rssSizes: quick ? [64 * MiB] : [64 * MiB, 4 * GiB],
  rssRuns: quick ? 1 : 3,
  slowBytes: quick ? 40 * MiB : 160 * MiB,
  slowRate: 40e6,
  startupRuns: quick ? 5 : 30,
  guestRuns: quick ? 1 : 3,
  guestBytes: 64 * MiB,
};
const log = (s: string) => process.stderr.write(s + "\n");
const began = performance.now();

// ---------------------------------------------------------------- relays

/** A relay from unix socket A to unix socket B, as a command line; null = the peers connected directly. */
interface Relay {
  key: string;
  label: string;
  argv: ((a: string, b: string) => string[]) | null;
}
const direct: Relay = { key: "direct", label: "peers directly (no relay)", argv: null };
const vmchan: Relay = {
  key: "vmchan",
  label: "vmchan bridge --once --linger 0",
  argv: (a, b) => [vmchanBin, "bridge", "--once", "--linger", "0", `unix-listen:${a}`, `unix:${b}`],
};
const socatBig: Relay = {
  key: "socatBig",
  label: "socat -b 262144",
  argv: (a, b) => ["socat", "-b", "262144", `UNIX-LISTEN:${a}`, `UNIX-CONNECT:${b}`],
};
const socatDefault: Relay = {
  key: "socatDefault",
  label: "socat (default -b 8192)",
  argv: (a, b) => ["socat", `UNIX-LISTEN:${a}`, `UNIX-CONNECT:${b}`],
};

/** Other builds to measure alongside (--compare LABEL=PATH). */
const compared: Relay[] = (cli.compare ?? []).map((spec, i) => {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new Error(`--compare takes LABEL=PATH, not "${spec}"`);
  const bin = spec.slice(eq + 1);
  return { key: `compare${i}`, label: spec.slice(0, eq), argv: (a, b) => [bin, "bridge", "--once", "--linger", "0", `unix-listen:${a}`, `unix:${b}`] };
});

interface TransferResult {
  mibps: number;
  /** The relay's peak RSS (VmHWM), bytes; NaN without a relay. */
  hwm: number;
  /** The relay's CPU time, seconds. */
  cpu: number;
}

const tmp = tmpdir().length > 60 ? "/tmp" : tmpdir();

function startRelay(relay: Relay, a: string, b: string) {
  if (!relay.argv) return null;
  return Bun.spawn(relay.argv(a, b), { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
}

async function checkRelay(relay: Relay, proc: ReturnType<typeof startRelay>): Promise<void> {
  if (!proc) return;
  const own = await reap(proc, 5000);
  const err = (await new Response(proc.stderr).text()).trim();
  if (!own) throw new Error(`${relay.label} did not exit within 5 s after the session${err ? `: ${err}` : ""}`);
  if (proc.exitCode !== 0) throw new Error(`${relay.label} exited with ${proc.exitCode}: ${err}`);
}

/** Source → relay → sink, `bytes` from the source's memory; throughput from the source's first write to the sink's last byte. */
async function transfer(relay: Relay, bytes: number, rate = 0): Promise<TransferResult> {
  const dir = mkdtempSync(join(tmp, "vmchan-bench-"));
  const a = join(dir, "a.sock");
  const b = join(dir, "b.sock");
  const timeoutMs = 20_000 + (bytes / (rate || 50 * MiB)) * 1000;
  try {
    const sink = startPeer(["sink", b, String(bytes), String(rate)]);
    if ((await sink.lines.next(10_000, "sink")) !== "listening") throw new Error(`sink did not start: ${await sink.stderr}`);
    const proc = startRelay(relay, a, b);
    const sampler = proc ? new Sampler(proc.pid) : null;
    const source = startPeer(["source", relay.argv ? a : b, String(bytes)]);
    const src = await peerResult<{ start: number; end: number; bytes: number }>(source, "source", timeoutMs);
    const snk = await peerResult<{ first: number; end: number; bytes: number }>(sink, "sink", timeoutMs);
    const sample = sampler?.stop() ?? null;
    await checkRelay(relay, proc);
    await reap(source.proc, 5000);
    await reap(sink.proc, 5000);
    if (snk.bytes !== bytes) throw new Error(`${relay.label}: the sink got ${snk.bytes} of ${bytes} bytes`);
    return { mibps: bytes / MiB / ((snk.end - src.start) / 1000), hwm: sample?.hwm ?? NaN, cpu: sample?.cpu ?? NaN };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The relay's RSS while it listens with no client yet (its floor: code, runtime, heap), bytes. */
async function idleRss(relay: Relay): Promise<number> {
  const dir = mkdtempSync(join(tmp, "vmchan-bench-"));
  const a = join(dir, "a.sock");
  try {
    const proc = startRelay(relay, a, join(dir, "b.sock"))!;
    const deadline = Date.now() + 10_000;
    while (!existsSync(a) && Date.now() < deadline) await Bun.sleep(10);
    await Bun.sleep(300);
    const sample = sampleProc(proc.pid);
    proc.kill("SIGTERM");
    await reap(proc, 5000);
    return sample?.rss ?? NaN;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** 1-byte request/response through the relay for `ms`; round trips per second. */
async function pingPong(relay: Relay, ms: number): Promise<number> {
  const dir = mkdtempSync(join(tmp, "vmchan-bench-"));
  const a = join(dir, "a.sock");
  const b = join(dir, "b.sock");
  try {
    const echo = startPeer(["echo", b]);
    if ((await echo.lines.next(10_000, "echo")) !== "listening") throw new Error(`echo did not start: ${await echo.stderr}`);
    const proc = startRelay(relay, a, b);
    const ping = startPeer(["ping", relay.argv ? a : b, String(ms)]);
    const r = await peerResult<{ roundTrips: number; start: number; end: number }>(ping, "ping", ms + 20_000);
    await checkRelay(relay, proc);
    await reap(ping.proc, 5000);
    await reap(echo.proc, 5000);
    return r.roundTrips / ((r.end - r.start) / 1000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- start-up

function timeCommand(argv: string[], runs: number, env?: Record<string, string>): Stat {
  const times: number[] = [];
  for (let i = 0; i < runs + 3; i++) {
    const t = performance.now();
    const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe", env });
    const dt = performance.now() - t;
    if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited with ${r.exitCode}: ${r.stderr.toString().trim()}`);
    if (i >= 3) times.push(dt); // the first runs warm the page cache
  }
  return stat(times);
}

/** A guest's /sys, /dev and /proc in miniature: three ports, one held by a process. */
function fixture(): FixtureRoot {
  const f = new FixtureRoot();
  const debug = (n: number) => ({ guest_connected: n % 2, host_connected: 1, outvq_full: 0, bytes_sent: 10 * n, bytes_received: 7 * n, bytes_discarded: 0, is_console: "no", console_vtermno: 0 });
  f.port("vport0p1", "org.example.a", { debug: debug(1) });
  f.port("vport0p2", "org.example.b", { debug: debug(2) });
  f.port("vport0p3", "org.qemu.guest_agent.0", { link: false, debug: debug(3) });
  f.process(203, "cat", ["/dev/vport0p2"]);
  return f;
}

// ---------------------------------------------------------------- run

const machine = {
  date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  nproc: output(["nproc"]) || String(cpus().length),
  cpu: cpus()[0]?.model.trim() ?? "unknown",
  memory: `${(totalmem() / GiB).toFixed(1)} GiB`,
  vmchan: output([vmchanBin, "--version"]),
  bun: `${Bun.version} (${Bun.revision.slice(0, 9)})`,
  socat: /socat version (\S+)/.exec(output(["socat", "-V"]))?.[1] ?? "not installed",
  kernel: output(["uname", "-r"]),
  load: loadavg().map((x) => x.toFixed(2)).join(" "),
};
log(`machine: ${JSON.stringify(machine)}`);

const series = (keys: string[]) => Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<string, number[]>;
const relays = [direct, socatBig, socatDefault, vmchan, ...compared];
const mibps = series(relays.map((r) => r.key));
const hwm1g = series(relays.map((r) => r.key));
const cpu1g = series(relays.map((r) => r.key));
const rts = series(relays.map((r) => r.key));

// Runs are interleaved (each run measures every arrangement once) so drift hits all of them alike.
for (let i = 0; i < RUNS; i++) {
  for (const relay of relays) {
    log(`throughput ${plan.throughputBytes / MiB} MiB, ${relay.label}, run ${i + 1}/${RUNS}`);
    const r = await transfer(relay, plan.throughputBytes);
    mibps[relay.key]!.push(r.mibps);
    hwm1g[relay.key]!.push(r.hwm / MiB);
    cpu1g[relay.key]!.push((r.cpu * GiB) / plan.throughputBytes);
  }
}
for (let i = 0; i < RUNS; i++) {
  for (const relay of relays) {
    log(`round trips, ${relay.label}, run ${i + 1}/${RUNS}`);
    rts[relay.key]!.push(await pingPong(relay, plan.pingMs));
  }
}

const memRelays = [socatBig, vmchan, ...compared];
const idle = series(memRelays.map((r) => r.key));
for (let i = 0; i < plan.rssRuns; i++) {
  for (const relay of memRelays) {
    log(`idle RSS, ${relay.label}, run ${i + 1}/${plan.rssRuns}`);
    idle[relay.key]!.push((await idleRss(relay)) / MiB);
  }
}
const hwmBySize = new Map<number, Record<string, number[]>>();
hwmBySize.set(plan.throughputBytes, hwm1g);
for (const size of plan.rssSizes) {
  const s = series(memRelays.map((r) => r.key));
  for (let i = 0; i < plan.rssRuns; i++) {
    for (const relay of memRelays) {
      log(`peak RSS, ${size / MiB} MiB, ${relay.label}, run ${i + 1}/${plan.rssRuns}`);
      s[relay.key]!.push((await transfer(relay, size)).hwm / MiB);
    }
  }
  hwmBySize.set(size, s);
}
const slow = series(memRelays.map((r) => r.key));
const slowRate = series(memRelays.map((r) => r.key));
for (let i = 0; i < plan.rssRuns; i++) {
  for (const relay of memRelays) {
    log(`peak RSS, ${plan.slowBytes / MiB} MiB to a consumer reading 40 MB/s, ${relay.label}, run ${i + 1}/${plan.rssRuns}`);
    const r = await transfer(relay, plan.slowBytes, plan.slowRate);
    slow[relay.key]!.push(r.hwm / MiB);
    slowRate[relay.key]!.push((r.mibps * MiB) / 1e6);
  }
}

log("start-up times");
const fx = fixture();
const env = { PATH: "/usr/bin:/bin" };
let startup: { label: string; s: Stat }[];
try {
  startup = [
    { label: "`/bin/true` (process spawn floor)", s: timeCommand(["/bin/true"], plan.startupRuns, env) },
    { label: "`socat -V` (reference)", s: timeCommand(["socat", "-V"], plan.startupRuns, env) },
    { label: "`vmchan --version`", s: timeCommand([vmchanBin, "--version"], plan.startupRuns, env) },
    { label: "`vmchan --help`", s: timeCommand([vmchanBin, "--help"], plan.startupRuns, env) },
    { label: "`vmchan ports list --root FIXTURE` (3 ports)", s: timeCommand([vmchanBin, "ports", "list", "--root", fx.root], plan.startupRuns, env) },
    { label: "`vmchan ports list --json --root FIXTURE`", s: timeCommand([vmchanBin, "ports", "list", "--json", "--root", fx.root], plan.startupRuns, env) },
  ];
} finally {
  fx.dispose();
}

let guest: GuestResults | null = null;
let guestError = "";
if (!cli["no-guest"]) {
  log("guest (lab boot, QEMU TCG)");
  try {
    guest = await guestBench({ runs: plan.guestRuns, bytes: plan.guestBytes, log });
  } catch (err) {
    guestError = err instanceof Error ? err.message : String(err);
    log(`guest part failed: ${guestError}`);
  }
} else guestError = "skipped (--no-guest)";

// ---------------------------------------------------------------- report

const S = (r: Record<string, number[]>, k: string) => stat(r[k] ?? []);
const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
const lines: string[] = [];
const out = (s = "") => lines.push(s);

const tput = { v: S(mibps, "vmchan"), b: S(mibps, "socatBig"), d: S(mibps, "socatDefault"), direct: S(mibps, "direct") };
const rt = { v: S(rts, "vmchan"), b: S(rts, "socatBig"), d: S(rts, "socatDefault"), direct: S(rts, "direct") };
const hwmRows = [...hwmBySize.entries()].sort((x, y) => x[0] - y[0]);
const vmHwmMax = hwmRows.map(([size, r]) => ({ size, max: S(r, "vmchan").max }));
const slowV = S(slow, "vmchan");
const allHwm = [...vmHwmMax.map((x) => x.max), slowV.max];
const sizeLabel = (n: number) => (n >= GiB ? `${n / GiB} GiB` : `${n / MiB} MiB`);

out("# vmchan benchmark");
out();
out(`${quick ? "**Quick run (--quick): one run each, small sizes; not a result.**\n\n" : ""}` +
  `Run by \`npm run bench\` (bench/run.ts) on ${machine.date}. Each figure is the median of the runs, ` +
  "with (min–max); vmchan and socat were measured in the same run, interleaved.");
out();
out("| machine | |");
out("|---|---|");
out(row(["CPUs (`nproc`)", machine.nproc]));
out(row(["CPU model", machine.cpu]));
out(row(["memory", machine.memory]));
out(row(["kernel", machine.kernel]));
out(row(["load average at start (1, 5, 15 min)", `${machine.load} (other work on the machine widens the spread)`]));
out(row(["vmchan", `${machine.vmchan} (${vmchanBin === join(root, "dist/vmchan") ? "dist/vmchan" : vmchanBin})`]));
out(row(["bun", machine.bun]));
out(row(["socat", machine.socat]));
if (guest) out(row(["QEMU (guest part)", `${guest.qemu}, TCG`]));
out();
out("## Host relay, unix socket to unix socket");
out();
out(
  `One relay process between a source that writes ${sizeLabel(plan.throughputBytes)} from memory into socket A and a sink ` +
    "that reads and counts from socket B (bench/peer.ts, Bun native sockets). vmchan runs as " +
    "`vmchan bridge --once --linger 0 unix-listen:A unix:B`: `--linger 0` because the 1 s linger after the send queue empties " +
    "protects QEMU's tail (facts (l)) and would only add a constant second per session; throughput is timed from the source's " +
    "first write to the sink's last byte, so neither the linger nor the bridge's 0.5 s end-of-session grace is in the figures. " +
    `${RUNS} runs of each. Source, relay and sink are three busy processes on ${machine.nproc} CPUs, so the relay's CPU cost per byte ` +
    "shows directly in its throughput, and run-to-run spread is wide; the CPU-time row is the steadier comparison.",
);
out();
out(row(["measure", "vmchan", "socat -b 262144", "vmchan / socat -b 262144", "socat (default -b 8192)", "vmchan / socat default", "peers directly"]));
out(row(["---", "---:", "---:", "---:", "---:", "---:", "---:"]));
out(row([`throughput, MiB/s (${sizeLabel(plan.throughputBytes)})`, fmt(tput.v), fmt(tput.b), ratio(tput.v, tput.b), fmt(tput.d), ratio(tput.v, tput.d), fmt(tput.direct)]));
out(row([`relay CPU time per GiB, s`, fmt(S(cpu1g, "vmchan"), 2), fmt(S(cpu1g, "socatBig"), 2), ratio(S(cpu1g, "vmchan"), S(cpu1g, "socatBig")), fmt(S(cpu1g, "socatDefault"), 2), ratio(S(cpu1g, "vmchan"), S(cpu1g, "socatDefault")), "—"]));
out(row([`1-byte round trips/s (${plan.pingMs / 1000} s each)`, fmt(rt.v), fmt(rt.b), ratio(rt.v, rt.b), fmt(rt.d), ratio(rt.v, rt.d), fmt(rt.direct)]));
out();
out("## Relay memory: peak RSS (VmHWM), MiB");
out();
out(
  "VmHWM of the relay process (/proc/PID/status, sampled every 10 ms and read once more when the sink has every byte). " +
    `The ${sizeLabel(plan.throughputBytes)} row comes from the throughput runs; the others are ${plan.rssRuns} runs each. The slow ` +
    `consumer reads ${sizeLabel(plan.slowBytes)} at 40 MB/s (it pauses its socket whenever it is ahead of schedule), so the relay's writes back up.`,
);
out();
out(row(["transfer", "vmchan", "socat -b 262144", "vmchan / socat"]));
out(row(["---", "---:", "---:", "---:"]));
out(row(["none: listening, no client yet (VmRSS)", fmt(S(idle, "vmchan"), 1), fmt(S(idle, "socatBig"), 1), ratio(S(idle, "vmchan"), S(idle, "socatBig"))]));
for (const [size, r] of hwmRows) out(row([sizeLabel(size), fmt(S(r, "vmchan"), 1), fmt(S(r, "socatBig"), 1), ratio(S(r, "vmchan"), S(r, "socatBig"))]));
out(
  row([
    `${sizeLabel(plan.slowBytes)}, consumer at 40 MB/s (achieved ${fmt(S(slowRate, "vmchan"), 1)} MB/s)`,
    fmt(slowV, 1),
    fmt(S(slow, "socatBig"), 1),
    ratio(slowV, S(slow, "socatBig")),
  ]),
);
out();
if (compared.length) {
  out("## Other builds, measured in the same runs");
  out();
  const head = ["measure", "vmchan", ...compared.flatMap((c) => [c.label, `${c.label} / vmchan`]), "socat -b 262144"];
  out(row(head));
  out(row(head.map((_, i) => (i === 0 ? "---" : "---:"))));
  const line = (what: string, r: Record<string, number[]>, digits: number) =>
    out(row([what, fmt(S(r, "vmchan"), digits), ...compared.flatMap((c) => [fmt(S(r, c.key), digits), ratio(S(r, c.key), S(r, "vmchan"))]), fmt(S(r, "socatBig"), digits)]));
  line(`throughput, MiB/s (${sizeLabel(plan.throughputBytes)})`, mibps, 0);
  line("relay CPU time per GiB, s", cpu1g, 2);
  line("1-byte round trips/s", rts, 0);
  line("RSS while idle, MiB", idle, 1);
  for (const [size, r] of hwmRows) line(`peak RSS, MiB, ${sizeLabel(size)}`, r, 1);
  line(`peak RSS, MiB, ${sizeLabel(plan.slowBytes)} at 40 MB/s`, slow, 1);
  out();
  for (const c of compared) out(`- ${c.label}: \`${c.argv!("A", "B")[0]}\` (${output([c.argv!("A", "B")[0]!, "--version"])})`);
  out();
}
out("## Start-up (wall time, ms)");
out();
out(`Each command run ${plan.startupRuns} times after 3 warm-up runs, from a Bun driver with \`spawnSync\` (spawn cost included; \`/bin/true\` shows it). The fixture is a fake /sys, /dev and /proc (test/support/fixture.ts).`);
out();
out(row(["command", "median (min–max)"]));
out(row(["---", "---:"]));
for (const { label, s } of startup) out(row([label, fmt(s, 1)]));
out();
out("## Guest data path (lab guest, QEMU TCG)");
out();
if (guest) {
  const g = guest;
  out(
    `One port, ${sizeLabel(g.bytes)} per run, ${plan.guestRuns} runs per tool and direction, boot ${(g.bootMs / 1000).toFixed(1)} s. ` +
      "Guest → host: the host times its first to last byte on the chardev socket (the guest program's start-up is not counted). " +
      "Host → guest: from the guest reader holding the port with the host connected (QEMU's VSERPORT_CHANGE timestamp) " +
      `to the reader's exit as reported by the lab agent, whose own round trip is ${fmt(g.agentMs)} ms. ` +
      "`dd` is busybox: `dd if=FILE of=/dev/vportNpM bs=32768` and `dd if=/dev/vportNpM of=/dev/null bs=4096 count=N iflag=fullblock`; " +
      `vmchan is \`send PORT FILE\` and \`cat --bytes N PORT\`. TCG makes this an order of magnitude slower than the host relay; it is reported, not tuned.`,
  );
  out();
  out(row(["direction, MiB/s", "vmchan", "dd", "vmchan / dd"]));
  out(row(["---", "---:", "---:", "---:"]));
  out(row(["guest → host (`send` vs `dd of=PORT`)", fmt(g.toHost.vmchan, 1), fmt(g.toHost.dd, 1), ratio(g.toHost.vmchan, g.toHost.dd)]));
  out(row(["host → guest (`cat` vs `dd if=PORT`)", fmt(g.toGuest.vmchan, 1), fmt(g.toGuest.dd, 1), ratio(g.toGuest.vmchan, g.toGuest.dd)]));
  out();
  out(`\`vmchan --version\` in the guest: ${fmt(g.startupMs)} ms (/proc/uptime, 10 ms resolution).`);
} else out(`Not measured: ${guestError}`);
out();
out("## Targets");
out();
const tputMet = tput.v.median >= tput.b.median;
const rssUnder = allHwm.every((x) => x < 64);
const largest = S(hwmRows.at(-1)![1], "vmchan").median;
const flat = largest <= S(hwmRows[0]![1], "vmchan").median * 1.1 + 2;
out(
  `- Throughput ratio ≥ 1.0 against \`socat -b 262144\`: **${tputMet ? "met" : "not met"}** ` +
    `(median ratio ${ratio(tput.v, tput.b)}; the peers alone move ${fmt(tput.direct)} MiB/s, ${(tput.direct.median / Math.max(tput.v.median, tput.b.median)).toFixed(1)}× the faster relay, so they are not the bottleneck).`,
);
out(
  `- Peak RSS under 64 MiB: **${rssUnder ? "met" : "not met"}** (largest peak of any run: ` +
    [...vmHwmMax.map((x) => `${x.max.toFixed(1)} MiB at ${sizeLabel(x.size)}`), `${slowV.max.toFixed(1)} MiB with the 40 MB/s consumer`].join(", ") +
    ").",
);
out(
  `- RSS flat with transfer size: **${flat ? "met" : "not met"}** (median ${S(hwmRows[0]![1], "vmchan").median.toFixed(1)} MiB at ` +
    `${sizeLabel(hwmRows[0]![0])}, ${largest.toFixed(1)} MiB at ${sizeLabel(hwmRows.at(-1)![0])}; "flat" = within 10% + 2 MiB).`,
);
out();
out(`Whole benchmark: ${((performance.now() - began) / 1000).toFixed(0)} s.`);

const text = lines.join("\n") + "\n";
process.stdout.write("\n" + text);
writeFileSync(cli.out!, text);
log(`wrote ${cli.out}`);
