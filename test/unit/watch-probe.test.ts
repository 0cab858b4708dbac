import { afterEach, describe, expect, test } from "bun:test";
import { rmSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { DiscoveryProbe } from "../../lib/watch/discovery-probe.ts";
import { FixtureRoot } from "../support/fixture.ts";

let fx: FixtureRoot;
afterEach(() => fx?.dispose());

const cmdline = (...argv: string[]) => argv.join("\0") + "\0";

function probe(youngMs = 5000) {
  const clock = { t: 0 };
  const p = new DiscoveryProbe(join(fx.root, "proc"), [join(fx.root, "run/libvirt/qemu")], { now: () => clock.t, youngMs });
  return { p, clock };
}

describe("discovery probe", () => {
  test("the first look is a change; nothing new is none; other processes coming and going are none", () => {
    fx = new FixtureRoot().file("/proc/1/cmdline", cmdline("/sbin/init")).file("/proc/2/cmdline", "");
    const { p } = probe();
    expect(p.changed()).toBe(true);
    expect(p.changed()).toBe(false);
    fx.file("/proc/300/cmdline", cmdline("sleep", "5"));
    expect(p.changed()).toBe(false);
    rmSync(join(fx.root, "proc/300"), { recursive: true });
    expect(p.changed()).toBe(false);
  });

  test("a QEMU process starting and stopping is a change", () => {
    fx = new FixtureRoot().file("/proc/1/cmdline", cmdline("/sbin/init"));
    const { p } = probe();
    p.changed();
    fx.file("/proc/4242/cmdline", cmdline("/usr/bin/qemu-system-x86_64", "-name", "vm1"));
    expect(p.changed()).toBe(true);
    expect(p.changed()).toBe(false);
    rmSync(join(fx.root, "proc/4242"), { recursive: true });
    expect(p.changed()).toBe(true);
  });

  test("a new process that execs QEMU soon after it appeared is a change; an old one is not looked at again", () => {
    fx = new FixtureRoot().file("/proc/1/cmdline", cmdline("/sbin/init")).file("/proc/50/cmdline", cmdline("bash"));
    const { p, clock } = probe(5000);
    p.changed();
    fx.file("/proc/77/cmdline", cmdline("libvirtd"));
    expect(p.changed()).toBe(false);
    clock.t += 1000;
    fx.file("/proc/77/cmdline", cmdline("qemu-system-x86_64", "-name", "web01"));
    expect(p.changed()).toBe(true);
    clock.t += 10_000;
    fx.file("/proc/50/cmdline", cmdline("qemu-kvm"));
    expect(p.changed()).toBe(false);
  });

  test("a libvirt status file written is a change", () => {
    fx = new FixtureRoot().file("/run/libvirt/qemu/web01.xml", "<domstatus/>");
    const { p } = probe();
    p.changed();
    expect(p.changed()).toBe(false);
    utimesSync(join(fx.root, "run/libvirt/qemu/web01.xml"), new Date(), new Date(Date.now() + 5000));
    expect(p.changed()).toBe(true);
    rmSync(join(fx.root, "run/libvirt/qemu/web01.xml"));
    expect(p.changed()).toBe(true);
    expect(p.changed()).toBe(false);
  });
});
