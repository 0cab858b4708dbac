import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defaultLibvirtDirs, parseLibvirtXml, readLibvirtDomains } from "../../lib/host/libvirt.ts";
import { hostPort, HostVm } from "../../lib/host/model.ts";
import { parseXml, XmlError } from "../../lib/host/xml.ts";
import { FixtureRoot } from "../support/fixture.ts";

const web01 = readFileSync(join(import.meta.dir, "../fixtures/host/web01.xml"), "utf8");

let fx: FixtureRoot | undefined;
afterEach(() => {
  fx?.dispose();
  fx = undefined;
});

describe("parseXml", () => {
  test("reads elements, both quote styles, entities, comments, CDATA and self-closing tags", () => {
    const el = parseXml(`<?xml version="1.0"?>
<!-- top -->
<a x='1' y="two &amp; &quot;three&quot;">
  text &lt;here&gt; &#65;&#x42;<!-- inner --><b/><c z='&apos;'>c<![CDATA[<raw> & ]]></c>
</a>`);
    expect(el.name).toBe("a");
    expect(el.attrs).toEqual({ x: "1", y: 'two & "three"' });
    expect(el.children.map((c) => [c.name, c.attrs, c.text])).toEqual([
      ["b", {}, ""],
      ["c", { z: "'" }, "c<raw> & "],
    ]);
    expect(el.text.trim()).toBe("text <here> AB");
  });

  test("refuses what it does not understand instead of returning half a document", () => {
    const bad = [
      "<a><b></a>",
      "<a>",
      "<a x=1/>",
      "<a x='1' x='2'/>",
      "<a>&nbsp;</a>",
      "<a>& b</a>",
      "<!DOCTYPE a><a/>",
      "<a/><b/>",
      "<a x='<'/>",
      "",
    ];
    for (const src of bad) expect(() => parseXml(src), src).toThrow(XmlError);
  });
});

describe("parseLibvirtXml", () => {
  test("a domstatus file gives pid, uuid, monitor and every virtio channel and console", () => {
    const d = parseLibvirtXml(web01);
    expect(HostVm.parse(d.vm)).toEqual(d.vm);
    expect(d.monitor).toBe("/var/lib/libvirt/qemu/domain-3-web01/monitor.sock");
    const bus = "virtio-serial0.0";
    expect(d.vm).toEqual({
      name: "web01",
      pid: 5151,
      uuid: "0b4fa8c2-1d5e-4b8a-9f3e-2c7d9e6a5b10",
      sources: ["libvirt"],
      qmp: [],
      startedPaused: false,
      running: null,
      ports: [
        // The serial-target console (serial0) is an isa-serial, not virtio: left out.
        hostPort({ kind: "console", id: "console1", chardev: "charconsole1", backend: "pty", qemuBackend: "pty", path: "/dev/pts/5" }),
        hostPort({
          kind: "serial", name: "org.qemu.guest_agent.0", id: "channel0", chardev: "charchannel0", bus, nr: 1,
          backend: "unix", qemuBackend: "socket", path: "/run/libvirt/qemu/channel/3-web01/org.qemu.guest_agent.0",
          mode: "connect", guestOpen: true,
        }),
        hostPort({
          kind: "serial", name: "com.redhat.spice.0", id: "channel1", chardev: "charchannel1", bus, nr: 2,
          backend: "other", qemuBackend: "spicevmc", guestOpen: false,
        }),
        hostPort({
          kind: "serial", name: "org.example.data", id: "channel2", chardev: "charchannel2", bus, nr: 3,
          backend: "unix", qemuBackend: "socket", path: "/srv/chan/web01 & data's.sock", mode: "connect", guestOpen: false,
        }),
        hostPort({ kind: "serial", name: "org.example.hotpty", id: "ua-hotpty", chardev: "charua-hotpty", bus, nr: 4, backend: "pty", qemuBackend: "pty" }),
        hostPort({
          kind: "serial", name: "org.example.push", id: "ua-push", chardev: "charua-push", bus, nr: 5,
          backend: "unix", qemuBackend: "socket", path: "/run/collector.sock", mode: "listen", reconnectMs: 5000,
        }),
      ],
    });
  });

  test("plain virsh dumpxml output has no pid and no monitor", () => {
    const d = parseLibvirtXml(`<domain type='kvm' id='7'><name>x</name><uuid>AB</uuid><devices>
      <channel type='unix'><source mode='bind' path='/p'/><target type='virtio' name='n'/></channel></devices></domain>`);
    expect(d.monitor).toBeNull();
    expect([d.vm.name, d.vm.pid, d.vm.uuid]).toEqual(["x", null, "ab"]);
    expect(d.vm.ports).toEqual([
      hostPort({ kind: "serial", name: "n", backend: "unix", qemuBackend: "socket", path: "/p", mode: "connect" }),
    ]);
  });

  test("a document that is not a domain is refused", () => {
    expect(() => parseLibvirtXml("<network><name>default</name></network>")).toThrow("not a libvirt domain: root element <network>");
  });
});

describe("readLibvirtDomains", () => {
  test("reads the *.xml files of each directory, notes the bad ones and skips missing directories", () => {
    fx = new FixtureRoot()
      .file("/run/libvirt/qemu/web01.xml", web01)
      .file("/run/libvirt/qemu/web01.pid", "5151")
      .file("/run/libvirt/qemu/broken.xml", "<domstatus pid='1'><domain><name>b</name>")
      .dir("/run/libvirt/qemu/channel/3-web01");
    // A directory in place of a file fails like an unreadable one would (chmod cannot stop root).
    mkdirSync(join(fx.root, "/run/libvirt/qemu/locked.xml"));
    const dir = join(fx.root, "/run/libvirt/qemu");
    const r = readLibvirtDomains([dir, join(fx.root, "/missing")]);
    expect(r.domains.map((d) => d.vm.name)).toEqual(["web01"]);
    expect(r.notes).toEqual([
      `cannot parse ${dir}/broken.xml: unclosed element <domain> at offset 41`,
      `cannot read ${dir}/locked.xml: EISDIR: illegal operation on a directory, read`,
    ]);
  });

  test("the session daemon's directory is used when XDG_RUNTIME_DIR is set", () => {
    expect(defaultLibvirtDirs({})).toEqual(["/run/libvirt/qemu"]);
    expect(defaultLibvirtDirs({ XDG_RUNTIME_DIR: "/run/user/1000" })).toEqual(["/run/libvirt/qemu", "/run/user/1000/libvirt/qemu/run"]);
  });
});
