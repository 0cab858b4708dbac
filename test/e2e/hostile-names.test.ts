import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { vmchan } from "../support/binary.ts";
import { perTest } from "../support/fixture.ts";
import { HostileQmp, qemuFixture } from "../support/hostile-qmp.ts";

const { fixture, later } = perTest();

/** Names a hostile peer might give: terminal sequences, a bell, a newline forging a row, C1 CSI (raw and UTF-8), separators, bidi. */
const hostile = [
  "esc\x1b[31mred\x1b]0;title\x07",
  "bell\x07bell",
  "row\nforged  /dev/vport9p9  present  serial",
  "cr\roverwrite",
  "c1\u009b31m",
  "sep\u2028line\u2029para",
  "bidi\u202egnp.exe",
  "del\x7fdel",
];

/**
 * Byte sequences a terminal may obey, found in `out` (a Buffer of what vmchan printed): C0 controls other than
 * newline (and tab in JSON whitespace), DEL, UTF-8 C1 controls, raw 8-bit C1 bytes outside UTF-8, U+2028/2029,
 * bidi overrides. Each as "offset: hex".
 */
function unsafeBytes(out: Buffer): string[] {
  const found: string[] = [];
  const text = out.toString("latin1");
  const re = /[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]/g;
  for (const m of text.matchAll(re)) found.push(`${m.index}: ${Buffer.from(m[0], "latin1").toString("hex")}`);
  // A raw C1 byte not inside a UTF-8 sequence (0x9b alone is CSI to an 8-bit terminal).
  for (let i = 0; i < out.length; i++) {
    const b = out[i]!;
    if (b >= 0x80 && b <= 0x9f) {
      const lead = out[i - 1];
      const inSequence = lead !== undefined && lead >= 0xc2; // a continuation byte after a lead or another continuation
      const afterCont = lead !== undefined && lead >= 0x80 && lead <= 0xbf;
      if (!inSequence && !afterCont) found.push(`${i}: raw ${b.toString(16)}`);
    }
  }
  return found;
}

describe("hostile names never reach the terminal raw", () => {
  test("guest: port names and holder command names are escaped in the table and in --json", async () => {
    const fx = fixture();
    hostile.forEach((name, i) => fx.port(`vport0p${i + 1}`, name, { link: false, debug: { host_connected: 0, guest_connected: 1 } }));
    // A name with invalid UTF-8 and a raw 8-bit CSI.
    fx.dir("/sys/class/virtio-ports/vport0p20");
    writeFileSync(join(fx.root, "sys/class/virtio-ports/vport0p20/name"), Buffer.from([0x72, 0x61, 0x77, 0x9b, 0x32, 0x4a, 0xff, 0xc2, 0x0a]));
    fx.file("/dev/vport0p20", "");
    fx.process(777, "evil\x1b]0;pwn\x07\x9b", [join("/dev", "vport0p1")]);
    const table = await vmchan(["ports", "list", "--root", fx.root]);
    const seen = `what I saw: code ${table.code}, stderr ${JSON.stringify(table.stderr)}, stdout:\n${JSON.stringify(table.stdout.toString())}`;
    expect(table.code, seen).toBe(0);
    expect(unsafeBytes(table.stdout), seen).toEqual([]);
    const lines = table.stdout.toString().trimEnd().split("\n");
    expect(lines.length, seen).toBe(1 + hostile.length + 1); // header and one row per port: no forged row
    expect(table.stdout.toString(), seen).toContain("row\\x0aforged");
    expect(table.stdout.toString(), seen).toContain("esc\\x1b[31mred\\x1b]0;title\\x07");
    expect(table.stdout.toString(), seen).toContain("c1\\x9b31m");
    expect(table.stdout.toString(), seen).toContain("sep\\u2028line\\u2029para");

    const json = await vmchan(["ports", "list", "--json", "--root", fx.root]);
    const jseen = `what I saw: code ${json.code}, stdout:\n${JSON.stringify(json.stdout.toString())}`;
    expect(json.code, jseen).toBe(0);
    expect(unsafeBytes(json.stdout), jseen).toEqual([]);
    const listing = JSON.parse(json.stdout.toString()) as { guest: { name: string | null; holders: { command: string }[] }[] };
    // JSON keeps the names whole: the escapes are JSON's, so a parser gets them back exactly.
    for (const name of hostile) expect(listing.guest.map((p) => p.name), jseen).toContain(name);
    expect(json.stdout.toString(), jseen).toContain("\\u009b");
    expect(json.stdout.toString(), jseen).toContain("\\u2028");
  });

  test("host: VM name, port name, socket path and QEMU's error text are escaped in table, notes and --json", async () => {
    const fx = fixture();
    const qmpPath = join(fx.root, "q\x1b[2Jmp.sock");
    const qmp = new HostileQmp(qmpPath, { errorDesc: "denied\x1b]0;owned\x07\nvmchan: note: forged line\u009b" });
    await qmp.listen();
    later(() => qmp.close());
    const sock = "/run/x\x1b[5m\nforged.sock";
    qemuFixture(fx, qmpPath, [
      "-name", "vm\x1b[31m\nforged 1 row",
      "-device", "virtio-serial-pci,id=vs0",
      "-chardev", `socket,id=c0,path=${sock},server=on,wait=off`,
      "-device", "virtserialport,bus=vs0.0,chardev=c0,name=org.\u009b\x07x,id=p0",
    ]);
    const r = await vmchan(["ports", "list", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, stderr ${JSON.stringify(r.stderr)}, stdout ${JSON.stringify(r.stdout.toString())}`;
    expect(r.code, seen).toBe(0);
    expect(unsafeBytes(r.stdout), seen).toEqual([]);
    expect(unsafeBytes(Buffer.from(r.stderr)), seen).toEqual([]);
    expect(r.stdout.toString().trimEnd().split("\n").length, seen).toBe(2);
    expect(r.stdout.toString(), seen).toContain("vm\\x1b[31m\\x0aforged 1 row");
    expect(r.stdout.toString(), seen).toContain("org.\\x9b\\x07x");
    expect(r.stdout.toString(), seen).toContain("/run/x\\x1b[5m\\x0aforged.sock");
    // One note, one line: QEMU's text cannot start a line of its own.
    const notes = r.stderr.trimEnd().split("\n");
    expect(notes.length, seen).toBe(1);
    expect(notes[0], seen).toMatch(/^vmchan: note: cannot query QMP of VM "vm\\x1b\[31m\\x0aforged 1 row" \(pid 4242\) at \S*q\\x1b\[2Jmp\.sock: QMP command "query-status" failed: denied\\x1b\]0;owned\\x07\\x0avmchan: note: forged line\\x9b \(GenericError\)$/);

    const json = await vmchan(["ports", "list", "--json", "--root", fx.root]);
    const jseen = `what I saw: code ${json.code}, stdout ${JSON.stringify(json.stdout.toString())}`;
    expect(unsafeBytes(json.stdout), jseen).toEqual([]);
    const listing = JSON.parse(json.stdout.toString()) as { host: { vms: { name: string; ports: { name: string; path: string }[] }[] } };
    expect(listing.host.vms[0]!.name, jseen).toBe("vm\x1b[31m\nforged 1 row");
    expect(listing.host.vms[0]!.ports[0]!.name, jseen).toBe("org.\u009b\x07x");
    expect(listing.host.vms[0]!.ports[0]!.path, jseen).toBe(sock);
  });

  test("error messages with hostile text are one escaped line with their exit code", async () => {
    const fx = fixture();
    qemuFixture(fx, join(fx.root, "none.sock"), ["-name", "web01"]);
    const r = await vmchan(["ports", "list", "--no-qmp", "--vm", "x\x1b[2J\ny\u009b", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
    expect(r.code, seen).toBe(3);
    expect(unsafeBytes(Buffer.from(r.stderr)), seen).toEqual([]);
    expect(r.stderr, seen).toBe(`vmchan: no running VM named "x\\x1b[2J\\x0ay\\x9b" (hint: see 'vmchan ports list' for every VM)\n`);
  });

  test("a libvirt XML with control characters (as numeric references) in names is escaped too", async () => {
    const fx = fixture();
    fx.file(
      "/run/libvirt/qemu/evil.xml",
      `<domstatus pid='5151'><domain><name>lv&#27;[31m&#10;forged</name><devices>` +
        `<channel type='unix'><source mode='bind' path='/p&#155;x'/><target type='virtio' name='n&#7;&#x2028;' state='connected'/><alias name='channel0'/></channel>` +
        `</devices></domain></domstatus>`,
    );
    const r = await vmchan(["ports", "list", "--no-qmp", "--root", fx.root]);
    const seen = `what I saw: code ${r.code}, stderr ${JSON.stringify(r.stderr)}, stdout ${JSON.stringify(r.stdout.toString())}`;
    expect(r.code, seen).toBe(0);
    expect(unsafeBytes(r.stdout), seen).toEqual([]);
    expect(r.stdout.toString(), seen).toMatch(/^lv\\x1b\[31m\\x0aforged +5151 +\S+ +n\\x07\\u2028 +serial +\/p\\x9bx /m);
    const json = await vmchan(["ports", "list", "--no-qmp", "--json", "--root", fx.root]);
    expect(unsafeBytes(json.stdout), `what I saw: ${JSON.stringify(json.stdout.toString())}`).toEqual([]);
  });

  test("usage errors quoting what was typed are escaped too", async () => {
    for (const args of [["ports", "list", "--x\x1b]0;t\x07\u009b"], ["bad\x1b[2J\nverb"], ["cat", "a", "b\u2028", "c"]]) {
      const r = await vmchan(args);
      const seen = `what I saw for ${JSON.stringify(args)}: code ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
      expect(r.code, seen).toBe(2);
      expect(unsafeBytes(Buffer.from(r.stderr)), seen).toEqual([]);
      expect(r.stderr.split("\n").length, seen).toBe(2);
    }
  });
});
