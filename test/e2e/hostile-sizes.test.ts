import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { VMCHAN } from "../support/binary.ts";
import { type FixtureRoot, perTest } from "../support/fixture.ts";
import { memorySampler } from "../support/proc-stats.ts";

/** Far above what vmchan needs for these listings (well under 150 MiB measured), far below what a multiplied table takes (GBs). */
const RSS_BOUND = 200 * 1024 * 1024;
const MiB = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

const { fixture } = perTest();

/** Runs the binary, sampling its memory; returns code, output and the peak RSS. */
async function listed(args: string[]) {
  const proc = Bun.spawn([VMCHAN, ...args], { env: { PATH: "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe" });
  const memory = memorySampler(proc.pid, 10);
  const timer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { stdout, stderr, code, peak: memory.stop() };
}

/** A QEMU command line (pid 4242) named `name` with `ports` virtserialports on unix sockets. */
function bigVm(fx: FixtureRoot, name: string, ports: number, pid = 4242): void {
  const argv = ["qemu-system-x86_64", "-name", `guest=${name.replaceAll(",", ",,")}`, "-device", "virtio-serial-pci,id=vs0"];
  for (let i = 0; i < ports; i++) {
    argv.push("-chardev", `socket,id=c${i},path=/run/vm/p${i}.sock,server=on,wait=off`);
    argv.push("-device", `virtserialport,bus=vs0.0,nr=${(i % 30) + 1},chardev=c${i},name=org.p${i},id=p${i}`);
  }
  fx.file(`/proc/${pid}/cmdline`, argv.join("\0") + "\0");
}

/** A libvirt status XML for domain `name` with `channels` unix channels. */
function bigDomainXml(name: string, channels: number, pid = 5151): string {
  const parts = [`<domstatus state='running' pid='${pid}'><domain type='kvm'><name>${name}</name><uuid>1b4e28ba-2fa1-11d2-883f-0016d3cca427</uuid><devices>`];
  parts.push(`<controller type='virtio-serial' index='0'><alias name='virtio-serial0'/></controller>`);
  for (let i = 0; i < channels; i++) {
    parts.push(
      `<channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-1-${name}/org.c${i}'/>` +
        `<target type='virtio' name='org.c${i}' state='disconnected'/><alias name='channel${i}'/>` +
        `<address type='virtio-serial' controller='0' bus='0' port='${(i % 30) + 1}'/></channel>`,
    );
  }
  parts.push("</devices></domain></domstatus>");
  return parts.join("\n");
}

describe("ports list with huge inputs", () => {
  const hugeName = "n".repeat(120 * 1024);

  test("a 120 KB -name and 15,000 ports: bounded memory, the name capped with an ellipsis in the table", async () => {
    const fx = fixture();
    bigVm(fx, hugeName, 15_000);
    const r = await listed(["ports", "list", "--no-qmp", "--root", fx.root]);
    const lines = r.stdout.split("\n");
    const seen = `what I saw: code ${r.code}, peak ${MiB(r.peak)}, ${lines.length} lines, longest ${Math.max(...lines.slice(0, 100).map((l) => l.length))}, stderr: ${r.stderr.slice(0, 500)}, first lines:\n${lines.slice(0, 3).join("\n").slice(0, 1000)}`;
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
    expect(lines.length, seen).toBe(15_000 + 2); // header, rows, final newline
    expect(lines[1], seen).toMatch(/^n{79}… +4242 +\S+ +org\.p0 +serial +\/run\/vm\/p0\.sock +we connect +unknown +unknown$/);
    expect(lines[15_000], seen).toMatch(/^n{79}… +4242 +\S+ +org\.p14999 /m);
    for (const l of lines) if (l.length > 400) throw new Error(`a line of ${l.length} characters; ${seen}`);
  }, 180_000);

  test("--json of the same VM keeps the full name, with bounded memory", async () => {
    const fx = fixture();
    bigVm(fx, hugeName, 15_000);
    const r = await listed(["ports", "list", "--json", "--no-qmp", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, peak ${MiB(r.peak)}, ${r.stdout.length} bytes of JSON, stderr: ${r.stderr.slice(0, 500)}`;
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
    const listing = JSON.parse(r.stdout) as { host: { vms: { name: string; ports: unknown[] }[] } };
    expect(listing.host.vms[0]!.name, seen).toBe(hugeName);
    expect(listing.host.vms[0]!.ports.length, seen).toBe(15_000);
  }, 180_000);

  test("a 37 MB libvirt XML with 200,000 channels is skipped with a note, in bounded memory", async () => {
    const fx = fixture();
    const xml = bigDomainXml("huge", 200_000);
    expect(xml.length).toBeGreaterThan(36_000_000);
    fx.dir("/run/libvirt/qemu");
    writeFileSync(join(fx.root, "run/libvirt/qemu/huge.xml"), xml);
    fx.file("/run/libvirt/qemu/small.xml", bigDomainXml("small", 2, 5152));
    const r = await listed(["ports", "list", "--no-qmp", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, peak ${MiB(r.peak)}, stdout:\n${r.stdout.slice(0, 1000)}\nstderr:\n${r.stderr.slice(0, 1000)}`;
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
    expect(r.stderr, seen).toMatch(/^vmchan: note: skipped \S+\/run\/libvirt\/qemu\/huge\.xml: larger than 4 MiB \(libvirt's live XML of a domain is far smaller\)$/m);
    expect(r.stdout, seen).toMatch(/^small +5152 +\S+ +org\.c1 /m);
    expect(r.stdout, seen).not.toMatch(/huge/);
  }, 180_000);

  test("a libvirt XML just under the bound (14,000 channels) is listed in bounded memory", async () => {
    const fx = fixture();
    const xml = bigDomainXml("big", 14_000);
    expect(xml.length).toBeLessThan(4 * 1024 * 1024);
    fx.file("/run/libvirt/qemu/big.xml", xml);
    const r = await listed(["ports", "list", "--no-qmp", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, peak ${MiB(r.peak)}, xml ${xml.length} bytes, stderr:\n${r.stderr.slice(0, 1000)}`;
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
    expect(r.stdout.split("\n").length, seen).toBe(14_000 + 2);
  }, 180_000);

  test("a command line over 4 MiB is skipped with a note, the other VMs still listed", async () => {
    const fx = fixture();
    const argv = ["qemu-system-x86_64", "-name", "bloat", ...Array.from({ length: 80 }, () => "x".repeat(64 * 1024))];
    fx.file("/proc/4242/cmdline", argv.join("\0") + "\0");
    bigVm(fx, "fine", 1, 4343);
    const r = await listed(["ports", "list", "--no-qmp", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, peak ${MiB(r.peak)}, stdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(0, 1000)}`;
    expect(r.code, seen).toBe(0);
    expect(r.stderr, seen).toMatch(/^vmchan: note: skipped process 4242: \S+\/proc\/4242\/cmdline is larger than 4 MiB \(no QEMU command line is that long\)$/m);
    expect(r.stdout, seen).toMatch(/^fine +4343 +\S+ +org\.p0 /m);
    expect(r.stdout, seen).not.toMatch(/bloat/);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
  }, 180_000);

  test("many processes posing as QEMU with big command lines: bounded memory, one note, a small VM still listed", async () => {
    const fx = fixture();
    for (let i = 0; i < 8; i++) bigVm(fx, `fake${i}`, 15_000, 1000 + i);
    bigVm(fx, "real", 2, 9999);
    const r = await listed(["ports", "list", "--no-qmp", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, peak ${MiB(r.peak)}, stderr:\n${r.stderr.slice(0, 2000)}`;
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
    expect(r.stdout, seen).toMatch(/^real +9999 +\S+ +org\.p1 /m);
    expect(r.stderr, seen).toMatch(/^vmchan: note: skipped \d QEMU processes \(pid [\d, ]+\): their command lines exceed 4 MiB with the others, the most read in one look \(the longest are skipped\)$/m);
    expect(r.stderr.trimEnd().split("\n").length, seen).toBe(1);
  }, 180_000);

  test("an error quoting a 100 KB name stays one bounded line", async () => {
    const fx = fixture();
    bigVm(fx, "wide", 15_000);
    const r = await listed(["ports", "list", "--no-qmp", "--vm", "x".repeat(100_000), "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, ${r.stderr.length} characters on stderr: ${r.stderr.slice(0, 300)}`;
    expect(r.code, seen).toBe(3);
    expect(r.stderr.split("\n").length, seen).toBe(2);
    expect(r.stderr.length, seen).toBeLessThan(3000);
    expect(r.stderr, seen).toMatch(/^vmchan: no running VM named "x+… \(\d+ more characters\) \(hint: /);
  }, 180_000);

  test("a slow reader still gets the whole listing: the output is written out before the exit code", async () => {
    const fx = fixture();
    bigVm(fx, "late", 15_000);
    const proc = Bun.spawn([VMCHAN, "ports", "list", "--json", "--no-qmp", "--root", fx.root], { env: { PATH: "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe" });
    // The reader is slow on purpose (a pause after each read), so output still queued in the process when it
    // exits would be lost. The listing is megabytes, far more than a pipe holds.
    const slowRead = async () => {
      const parts: Uint8Array[] = [];
      for await (const chunk of proc.stdout) {
        parts.push(chunk);
        await Bun.sleep(2);
      }
      return Buffer.concat(parts).toString();
    };
    const [stdout, stderr, code] = await Promise.all([slowRead(), new Response(proc.stderr).text(), proc.exited]);
    const seen = `what I saw: code ${code}, ${stdout.length} bytes, ends ${JSON.stringify(stdout.slice(-80))}, stderr: ${stderr.slice(0, 300)}`;
    expect(code, seen).toBe(0);
    const listing = (() => {
      try {
        return JSON.parse(stdout) as { host: { vms: { ports: unknown[] }[] } };
      } catch {
        return null;
      }
    })();
    expect(listing, seen).not.toBeNull();
    expect(listing!.host.vms[0]!.ports.length, seen).toBe(15_000);
  }, 180_000);

  test("a 15,000-port VM that libvirt also lists (every port merged by id) is listed in bounded memory", async () => {
    const fx = fixture();
    bigVm(fx, "both", 15_000, 5151);
    // The same VM in libvirt's XML, its channels' aliases being the command line's device ids.
    const xml = bigDomainXml("both", 14_000).replace(/alias name='channel(\d+)'/g, "alias name='p$1'");
    fx.file("/run/libvirt/qemu/both.xml", xml);
    const r = await listed(["ports", "list", "--no-qmp", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, peak ${MiB(r.peak)}, stderr:\n${r.stderr.slice(0, 1000)}\n${r.stdout.slice(0, 600)}`;
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
    // Merged: one VM, the command line's 15,000 ports, guest state from libvirt (state='disconnected').
    expect(r.stdout.split("\n").length, seen).toBe(15_000 + 2);
    expect(r.stdout, seen).toMatch(/^both +5151 +\S+ +org\.p0 +serial +\/run\/vm\/p0\.sock +we connect +closed +unknown$/m);
  }, 180_000);

  test("many big libvirt XML files: parsed up to 6 MiB together, the rest skipped with one note", async () => {
    const fx = fixture();
    const xml = bigDomainXml("d", 8_000);
    const domain = (i: number) =>
      xml.replaceAll("<name>d</name>", `<name>d${i}</name>`).replace("pid='5151'", `pid='${6000 + i}'`).replace("1b4e28ba", `0000000${i}`);
    for (let i = 0; i < 6; i++) fx.file(`/run/libvirt/qemu/d${i}.xml`, domain(i));
    const r = await listed(["ports", "list", "--no-qmp", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, peak ${MiB(r.peak)}, xml ${xml.length} bytes each, stderr:\n${r.stderr.slice(0, 1000)}`;
    expect(xml.length * 2).toBeLessThan(6 * 1024 * 1024);
    expect(xml.length * 3).toBeGreaterThan(6 * 1024 * 1024);
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
    expect(r.stderr, seen).toMatch(/^vmchan: note: skipped 4 libvirt domain files \(\S+d2\.xml, \S+d3\.xml, \S+d4\.xml, \S+d5\.xml\): over 6 MiB of domain XML together, the most read in one look$/m);
    expect(r.stdout, seen).toMatch(/^d1 +6001 /m);
    expect(r.stdout, seen).not.toMatch(/^d2 /m);
  }, 180_000);

  test("a guest tree (a mounted image) whose name files are endless, FIFOs or huge: listed at once in bounded memory", async () => {
    const fx = fixture();
    fx.port("vport0p1", "org.ok");
    fx.dir("/sys/class/virtio-ports/vport0p2").file("/dev/vport0p2", "");
    fx.link("/sys/class/virtio-ports/vport0p2/name", "/dev/zero");
    fx.dir("/sys/class/virtio-ports/vport0p3").file("/dev/vport0p3", "");
    expect(Bun.spawnSync(["mkfifo", join(fx.root, "sys/class/virtio-ports/vport0p3/name")]).exitCode).toBe(0);
    fx.file("/sys/class/virtio-ports/vport0p4/name", "n".repeat(10 * 1024 * 1024)).file("/dev/vport0p4", "");
    fx.process(777, "c".repeat(1024 * 1024), ["/dev/vport0p1"]);
    const r = await listed(["ports", "list", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, peak ${MiB(r.peak)}, stderr: ${r.stderr.slice(0, 500)}, stdout:\n${r.stdout.slice(0, 2000)}`;
    expect(r.code, seen).toBe(0);
    expect(r.peak, seen).toBeLessThan(RSS_BOUND);
    const rows = r.stdout.trimEnd().split("\n");
    expect(rows.length, seen).toBe(5);
    expect(rows[1], seen).toMatch(/^org\.ok +\/dev\/vport0p1 .* 777 \(c{50,}/);
    for (const row of rows) expect(row.length, seen).toBeLessThan(800);
  }, 180_000);
});
