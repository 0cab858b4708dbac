/**
 * Fuzz targets: for each parser, a generator (grammar-aware strings, mutations of valid examples and the
 * fixtures, and inputs built from known parts with the expected result) and a check that returns an
 * outcome label or throws when a property is broken. Run by worker.ts under a watchdog (see fuzz.ts).
 *
 * Properties:
 * - address: parseAddress returns a well-formed Address or throws UsageError; an address built from parts
 *   parses back to them; splitArgv inverts shell quoting.
 * - QEMU command line: parseOptionString, parseQemuArgv and splitCmdline never throw; the VM they describe
 *   satisfies the HostVm schema; values escaped with ",," come back; argv survives a trip through
 *   /proc/PID/cmdline's NUL-separated form.
 * - XML: parseXml returns a well-formed tree or throws XmlError; a serialized tree parses back to itself;
 *   parseLibvirtXml returns a domain whose VM satisfies the HostVm schema, or throws XmlError, or the
 *   documented "not a libvirt domain" Error.
 *
 * The bugs they found are fixed; REGRESSIONS keeps each one's minimal input, tested in parsers.test.ts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Address, KEYWORDS, parseAddress, splitArgv } from "../../lib/address.ts";
import { UsageError } from "../../lib/errors.ts";
import { parseOptionString, parseQemuArgv, splitCmdline } from "../../lib/host/cmdline.ts";
import { parseLibvirtXml } from "../../lib/host/libvirt.ts";
import { type HostPort, HostVm } from "../../lib/host/model.ts";
import { parseXml, type XmlElement, XmlError } from "../../lib/host/xml.ts";
import { ALNUM, MIXED, mutate, NASTY, NUMBERISH, type Rng, sameData } from "./kit.ts";

export interface Target<I> {
  /** Generates one input from the case's own PRNG. */
  generate(rng: Rng): I;
  /** Runs the parser on `input`; returns an outcome label, throws when a property does not hold. */
  check(input: I): string;
}

/** Bugs these fuzzers found (now fixed), with the smallest input that showed each: kept as regression tests. */
export const REGRESSIONS = {
  "address-prototype-keyword": {
    summary: 'parseAddress looks the keyword up in a plain object, so a VM named "constructor" or "__proto__" is refused as an unsupported address kind',
    minimal: () => "constructor:org.example.port",
  },
  "xml-deep-nesting": {
    summary: "parseXml recurses once per nesting level: a deeply nested document throws RangeError (stack overflow), not XmlError",
    minimal: () => "<a>".repeat(100_000),
  },
  "xml-prototype-attribute": {
    summary: "parseXml rejects an attribute named like an Object.prototype member (constructor, toString, __proto__...) as a duplicate",
    minimal: () => `<a constructor="1"/>`,
  },
  "libvirt-infinite-reconnect": {
    summary: "parseLibvirtXml turns <reconnect enabled='yes' timeout='1e999'/> into reconnectMs Infinity, which the HostVm schema refuses",
    minimal: () =>
      `<domain><devices><channel type='unix'><source mode='connect' path='/s'><reconnect enabled='yes' timeout='1e999'/></source><target type='virtio' name='n'/></channel></devices></domain>`,
  },
} as const;
export type Regression = keyof typeof REGRESSIONS;

const fixtures = join(import.meta.dir, "../fixtures/host");
const fixtureArgvs = ["handmade.argv", "libvirt.argv"].map((f) => splitCmdline(readFileSync(join(fixtures, f), "utf8")));
const web01 = readFileSync(join(fixtures, "web01.xml"), "utf8");

const fail = (what: string): never => {
  throw new Error(what);
};
const word = (rng: Rng, max = 12, alphabet: readonly string[] | string = MIXED) => rng.string(alphabet, rng.len(max));
const nonEmpty = (rng: Rng, max = 12, alphabet: readonly string[] | string = MIXED) => rng.string(alphabet, 1 + rng.len(max - 1));
const flipCase = (rng: Rng, s: string) => [...s].map((c) => (rng.chance(0.3) ? c.toUpperCase() : c)).join("");

// ------------------------------------------------------------------------------------------- address

/** Text to parse, and the address it must give when it was built from known parts. */
export interface AddressInput {
  text: string;
  expect?: Address;
}

const ADDRESS_EXAMPLES = [
  "-", "stdio", "org.example.log.0", "/dev/vport0p1", "port:a:b", "myvm:org.qemu.guest_agent.0", "unix:/run/a.sock",
  "UNIX-CONNECT:/x", "unix-listen:/tmp/l.sock", "tcp:localhost:22", "tcp:[::1]:22", "tcp-listen:2222", "tcp-listen:0.0.0.0:2222",
  `exec:sh -c 'echo "a b"'`, "tcp-connect:127.0.0.1:80", "hvc0", "vport0p1", "exec:cat", "port:hvc1", `exec:a\\ b "c\\"d" 'e'`,
];
const KEYWORD_NAMES = Object.keys(KEYWORDS);
const HOSTS = ["localhost", "127.0.0.1", "0.0.0.0", "example.org", "a-b.c", "[::1]", "[fe80::1%eth0]", "::1", "[::]", "h"];

/** Quotes one argv word so splitArgv gives it back: single quotes, double quotes, or a backslash before every character. */
function quoteWord(rng: Rng, w: string): string {
  switch (rng.int(4)) {
    case 0:
      return `'${w.replaceAll("'", `'\\''`)}'`;
    case 1:
      return `"${w.replace(/["\\$`]/g, "\\$&")}"`;
    case 2:
      return [...w].map((c) => `\\${c}`).join("") || "''";
    default:
      // Unquoted when nothing in it is special.
      return w !== "" && /^[A-Za-z0-9_./=:,@%+-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`;
  }
}

function quotedLine(rng: Rng, argv: readonly string[]): string {
  return argv.map((w) => quoteWord(rng, w)).join(rng.pick([" ", "  ", "\t", " \t\n "]));
}

function genArgv(rng: Rng): string[] {
  return Array.from({ length: rng.range(1, 5) }, () => word(rng, 10));
}

function addressFromParts(rng: Rng): AddressInput {
  switch (rng.int(9)) {
    case 0: {
      const path = nonEmpty(rng, 40);
      const kw = rng.pick(["unix", "unix-connect"]);
      return { text: `${flipCase(rng, kw)}:${path}`, expect: { kind: "unix", path } };
    }
    case 1: {
      const path = nonEmpty(rng, 40);
      return { text: `${flipCase(rng, "unix-listen")}:${path}`, expect: { kind: "unix-listen", path } };
    }
    case 2: {
      const host = rng.chance(0.5) ? rng.pick(HOSTS) : nonEmpty(rng, 12, `${ALNUM}.-`);
      const port = rng.int(65536);
      const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
      return { text: `${rng.pick(["tcp", "tcp-connect", "TCP"])}:${host}:${port}`, expect: { kind: "tcp", host: bare, port } };
    }
    case 3: {
      const port = rng.int(65536);
      if (rng.chance(0.5)) return { text: `tcp-listen:${port}`, expect: { kind: "tcp-listen", host: "127.0.0.1", port } };
      const host = rng.pick(HOSTS);
      const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
      return { text: `tcp-listen:${host}:${port}`, expect: { kind: "tcp-listen", host: bare, port } };
    }
    case 4: {
      const argv = genArgv(rng);
      return { text: `exec:${quotedLine(rng, argv)}`, expect: { kind: "exec", argv } };
    }
    case 5: {
      const spec = nonEmpty(rng, 30);
      return { text: `port:${spec}`, expect: { kind: "port", spec } };
    }
    case 6: {
      // A bare port name: no colon, not starting with "/", not "-" or "stdio".
      const spec = nonEmpty(rng, 30).replaceAll(":", "_");
      if (spec.startsWith("/") || spec === "-" || spec === "stdio") return { text: spec };
      return { text: spec, expect: { kind: "port", spec } };
    }
    case 7: {
      const spec = `/${word(rng, 30)}`;
      return { text: spec, expect: { kind: "port", spec } };
    }
    default: {
      // VM:NAME with a VM name that is not a keyword (some named like Object.prototype members).
      const vm = rng.chance(0.05) ? rng.pick(["constructor", "__proto__", "toString", "valueOf", "web01"]) : nonEmpty(rng, 12).replaceAll(":", "_");
      const port = nonEmpty(rng, 20);
      if (vm.startsWith("/") || Object.hasOwn(KEYWORDS, vm.toLowerCase())) return { text: `${vm}:${port}` };
      return { text: `${vm}:${port}`, expect: { kind: "vm-port", vm, port } };
    }
  }
}

function addressFromGrammar(rng: Rng): string {
  const kw = rng.chance(0.8) ? flipCase(rng, rng.pick(KEYWORD_NAMES)) : rng.pick(["unixx", "tcp-lis", "exe", "std", "vm", "", "a b", "-", "/dev", "unix-", "ŭnix"]);
  const sep = rng.chance(0.9) ? ":" : rng.pick(["", "::", " :", ": ", ":\0"]);
  let rest: string;
  switch (rng.int(6)) {
    case 0:
      rest = word(rng, 30);
      break;
    case 1:
      rest = `${rng.pick([...HOSTS, "", "[", "]", "[::1", "::1]"])}${rng.chance(0.8) ? ":" : ""}${rng.pick(NUMBERISH)}`;
      break;
    case 2:
      rest = rng.pick(NUMBERISH);
      break;
    case 3:
      rest = quotedLine(rng, genArgv(rng)) + (rng.chance(0.3) ? rng.pick(["'", '"', "\\", `"\\`, "'\\'"]) : "");
      break;
    case 4:
      rest = rng.string(NASTY, rng.len(10));
      break;
    default:
      rest = "";
  }
  return kw + sep + rest;
}

function checkAddressShape(a: Address, text: string): void {
  const str = (v: unknown, empty = false) => typeof v === "string" && (empty || v !== "");
  const keys = Object.keys(a).sort().join(",");
  switch (a.kind) {
    case "stdio":
      if (keys !== "kind") fail(`stdio has fields ${keys}`);
      break;
    case "port":
      if ((keys !== "kind,spec" && keys !== "anyDevice,kind,spec") || !str(a.spec)) fail("port address without a spec");
      // file:PATH (any case, as every keyword) and only it opens a path without the virtio-serial check.
      if ((a.anyDevice === true) !== /^file:/i.test(text)) fail(`anyDevice is ${a.anyDevice} for ${JSON.stringify(text)}`);
      if (text.startsWith("/") && a.spec !== text) fail(`"/..." must be taken as the device path`);
      break;
    case "vm-port":
      if (keys !== "kind,port,vm" || !str(a.vm) || !str(a.port) || a.vm.includes(":")) fail("malformed vm-port");
      if (Object.hasOwn(KEYWORDS, a.vm.toLowerCase())) fail(`VM "${a.vm}" is a keyword`);
      break;
    case "unix":
    case "unix-listen":
      if (keys !== "kind,path" || !str(a.path)) fail(`${a.kind} without a path`);
      break;
    case "tcp":
    case "tcp-listen":
      if (keys !== "host,kind,port" || !str(a.host, true) || !Number.isInteger(a.port) || a.port < 0 || a.port > 65535)
        fail(`malformed ${a.kind}: ${JSON.stringify(a)}`);
      break;
    case "exec":
      if (keys !== "argv,kind" || !Array.isArray(a.argv) || a.argv.length === 0 || !a.argv.every((w) => typeof w === "string"))
        fail("exec without argv");
      break;
    default:
      fail(`unknown kind ${(a as { kind: string }).kind}`);
  }
}

export const addressTarget: Target<AddressInput> = {
  generate(rng) {
    const r = rng.int(10);
    if (r < 3) return addressFromParts(rng);
    if (r < 6) return { text: addressFromGrammar(rng) };
    if (r < 9) return { text: mutate(rng, rng.pick(ADDRESS_EXAMPLES)) };
    return { text: word(rng, 40) };
  },
  check({ text, expect }) {
    let a: Address;
    try {
      a = parseAddress(text);
    } catch (err) {
      if (err instanceof UsageError && err.code === 2 && err.message !== "") {
        if (expect) fail(`built from parts as ${JSON.stringify(expect)}, but refused: ${err.message}`);
        return "UsageError";
      }
      throw err;
    }
    checkAddressShape(a, text);
    if (expect && !sameData(a, expect)) fail(`built from parts as ${JSON.stringify(expect)}, parsed as ${JSON.stringify(a)}`);
    return expect ? `round-trip:${a.kind}` : `ok:${a.kind}`;
  },
};

// ------------------------------------------------------------------------------------------- splitArgv

export interface ArgvInput {
  text: string;
  expect?: string[];
}

const SHELLISH = [..."ab c", "'", '"', "\\", "$", "`", " ", "\t", "\n", "\u00a0", "é", "\0"];

export const splitArgvTarget: Target<ArgvInput> = {
  generate(rng) {
    const r = rng.int(4);
    if (r === 0) {
      const argv = genArgv(rng);
      return { text: quotedLine(rng, argv), expect: argv };
    }
    if (r === 1) return { text: mutate(rng, quotedLine(rng, genArgv(rng)), ["'", '"', "\\", " "]) };
    return { text: rng.string(SHELLISH, rng.len(30)) };
  },
  check({ text, expect }) {
    let argv: string[];
    try {
      argv = splitArgv(text);
    } catch (err) {
      if (err instanceof UsageError && /unclosed/.test(err.message)) {
        if (expect) fail(`quoted ${JSON.stringify(expect)} refused: ${err.message}`);
        return "UsageError";
      }
      throw err;
    }
    if (!Array.isArray(argv) || !argv.every((w) => typeof w === "string")) fail("not a string[]");
    if (expect && !sameData(argv, expect)) fail(`quoted ${JSON.stringify(expect)}, split as ${JSON.stringify(argv)}`);
    if (!/['"\\]/.test(text)) {
      const words = text.split(/\s+/).filter((w) => w !== "");
      if (!sameData(argv, words)) fail(`plain words split as ${JSON.stringify(argv)}, expected ${JSON.stringify(words)}`);
    }
    return expect ? "round-trip" : "ok";
  },
};

// ------------------------------------------------------------------------------------------- QEMU options

export interface OptionsInput {
  text: string;
  implied?: string;
  /** Expected entries (later keys override earlier ones). */
  expect?: Array<[string, string]>;
}

const OPTION_KEYS = ["id", "path", "server", "wait", "name", "chardev", "nr", "bus", "reconnect", "reconnect-ms", "fd", "host", "port", "guest", "x.y", "a-b", "mode"];
const escapeValue = (v: string) => v.replaceAll(",", ",,");

export const optionsTarget: Target<OptionsInput> = {
  generate(rng) {
    const implied = rng.chance(0.5) ? rng.pick(["backend", "driver", "guest", "path", "chardev"]) : undefined;
    const r = rng.int(4);
    if (r === 0) {
      const parts: string[] = [];
      const expect = new Map<string, string>();
      if (implied && rng.chance(0.7)) {
        const v = word(rng, 12).replaceAll("=", "");
        parts.push(escapeValue(v));
        expect.set(implied, v);
      }
      for (let i = rng.range(parts.length ? 0 : 1, 6); i > 0; i--) {
        if (rng.chance(0.15) && parts.length > 0) {
          const flag = rng.pick(["server", "nowait", "wait", "nodelay", "telnet", "noserver"]);
          parts.push(flag);
          if (flag.startsWith("no")) expect.set(flag.slice(2), "off");
          else expect.set(flag, "on");
          continue;
        }
        const key = rng.chance(0.8) ? rng.pick(OPTION_KEYS) : nonEmpty(rng, 6, ALNUM);
        const value = word(rng, 16);
        parts.push(`${key}=${escapeValue(value)}`);
        expect.set(key, value);
      }
      const text = parts.join(",");
      // An implied first value that is empty leaves nothing to see in an otherwise empty string.
      if (text === "") return { text, implied };
      return { text, implied, expect: [...expect] };
    }
    if (r === 1) return { text: mutate(rng, rng.pick(fixtureArgvs.flat()), [",", ",,", "=", "no"]), implied };
    return { text: rng.string([...ALNUM.slice(0, 6), ",", ",", "=", "=", "n", "o", " ", "\\", '"', "{", "}"], rng.len(40)), implied };
  },
  check({ text, implied, expect }) {
    const map = parseOptionString(text, implied ? { implied } : {});
    if (!(map instanceof Map)) fail("not a Map");
    for (const [k, v] of map) if (typeof k !== "string" || typeof v !== "string") fail(`non-string entry ${String(k)}=${String(v)}`);
    if (expect && !sameData(map, new Map(expect))) fail(`expected ${JSON.stringify(expect)}, got ${JSON.stringify([...map])}`);
    return expect ? "round-trip" : "ok";
  },
};

// ------------------------------------------------------------------------------------------- QEMU argv

export interface QemuInput {
  argv: string[];
  /** Built from parts: the ports (in order) and VM name the command line describes. */
  expect?: { name: string | null; ports: Array<Pick<HostPort, "kind" | "name" | "id" | "chardev" | "path" | "mode" | "backend">> };
}

const QEMU_FLAGS = ["-S", "-nographic", "-no-reboot", "-nodefaults", "-enable-kvm", "-daemonize", "-snapshot", "--no-shutdown"];
const OTHER_OPTS = ["-m", "-smp", "-machine", "-accel", "-cpu", "-object", "-blockdev", "-global", "-set", "-append", "-kernel", "-some-future-flag", "--name", "-"];

function chardevValue(rng: Rng): string {
  const backend = rng.pick(["socket", "socket", "socket", "pty", "file", "spicevmc", "null", "stdio", "", "{"]);
  const parts = [backend];
  for (let i = rng.range(0, 6); i > 0; i--) {
    switch (rng.int(10)) {
      case 0:
        parts.push(`id=${rng.pick(["c0", "c1", "c2", "charchannel0", word(rng, 6)])}`);
        break;
      case 1:
        parts.push(`path=${escapeValue(word(rng, 20))}`);
        break;
      case 2:
        parts.push(`server=${rng.pick(["on", "off", "yes", "no", "true", "", "maybe"])}`, rng.pick(["wait=off", "nowait", "wait=on"]));
        break;
      case 3:
        parts.push(rng.pick(["server", "noserver", "nowait"]));
        break;
      case 4:
        parts.push(`reconnect=${rng.pick(NUMBERISH)}`);
        break;
      case 5:
        parts.push(`reconnect-ms=${rng.pick(NUMBERISH)}`);
        break;
      case 6:
        parts.push(`fd=${rng.pick(NUMBERISH)}`);
        break;
      case 7:
        parts.push(`host=${rng.pick(HOSTS)}`, `port=${rng.pick(NUMBERISH)}`);
        break;
      case 8:
        parts.push(`abstract=${rng.pick(["on", "off", "x"])}`);
        break;
      default:
        parts.push(word(rng, 8));
    }
  }
  return parts.join(",");
}

function deviceValue(rng: Rng): string {
  const driver = rng.pick(["virtserialport", "virtserialport", "virtconsole", "virtio-serial-pci", "isa-serial", "", "virtserialport,"]);
  const fields: Array<[string, string]> = [];
  for (let i = rng.range(0, 5); i > 0; i--) {
    const key = rng.pick(["chardev", "name", "id", "nr", "bus", word(rng, 5)]);
    const value = key === "nr" ? rng.pick(NUMBERISH) : key === "chardev" ? rng.pick(["c0", "c1", "c2", "charmonitor", word(rng, 5)]) : word(rng, 12);
    fields.push([key, value]);
  }
  if (rng.chance(0.25)) {
    // The JSON form libvirt uses, sometimes broken or with odd value types.
    const obj: Record<string, unknown> = { driver };
    for (const [k, v] of fields) obj[k] = rng.pick<unknown>([v, Number(v), true, null, [v], { v }]);
    const json = JSON.stringify(obj);
    return rng.chance(0.2) ? mutate(rng, json, ["{", "}", '"', ",", ":", "[", "]"]) : json;
  }
  return [driver, ...fields.map(([k, v]) => `${k}=${escapeValue(v)}`)].join(",");
}

function qemuFromGrammar(rng: Rng): string[] {
  const argv = [rng.pick(["/usr/bin/qemu-system-x86_64", "qemu-kvm", "qemu-system-aarch64", "/opt/qemu/bin/qemu-system-x86_64"])];
  for (let i = rng.range(0, 24); i > 0; i--) {
    switch (rng.int(12)) {
      case 0:
        argv.push("-name", rng.chance(0.5) ? `guest=${escapeValue(word(rng, 10))},debug-threads=on` : word(rng, 10));
        break;
      case 1:
        argv.push("-uuid", rng.chance(0.7) ? "6F9619FF-8B86-D011-B42D-00C04FC964FF" : word(rng, 10));
        break;
      case 2:
        argv.push(rng.pick(QEMU_FLAGS));
        break;
      case 3:
      case 4:
        argv.push("-chardev", rng.chance(0.1) ? `{"backend":"socket","id":"${word(rng, 4, ALNUM)}"}` : chardevValue(rng));
        break;
      case 5:
      case 6:
        argv.push("-device", deviceValue(rng));
        break;
      case 7:
        argv.push(rng.pick(["-qmp", "-qmp-pretty"]), rng.pick([`unix:${escapeValue(word(rng, 12))},server,nowait`, `unix:${word(rng, 12)}`, `tcp:${rng.pick(HOSTS)}:${rng.pick(NUMBERISH)},server`, "stdio", word(rng, 12), "unix:", "tcp:"]));
        break;
      case 8:
        argv.push("-mon", `chardev=${rng.pick(["c0", "c1", "charmonitor", word(rng, 4)])},mode=${rng.pick(["control", "readline", ""])}${rng.chance(0.3) ? ",pretty=on" : ""}`);
        break;
      case 9:
        argv.push("-readconfig", word(rng, 12));
        break;
      case 10:
        argv.push(rng.pick(OTHER_OPTS), ...(rng.chance(0.7) ? [word(rng, 12)] : []));
        break;
      default:
        argv.push(rng.chance(0.5) ? rng.pick(["-chardev", "-device", "-name", "-qmp", "-mon", "-readconfig", "-uuid"]) : word(rng, 12));
    }
  }
  return argv;
}

/** A command line built from ports with odd names and paths (commas escaped), and the ports it must give. */
function qemuFromParts(rng: Rng): QemuInput {
  const argv = ["/usr/bin/qemu-system-x86_64", "-S", "-nodefaults"];
  const name = rng.chance(0.7) ? word(rng, 12) : null;
  if (name !== null) argv.push("-name", `guest=${escapeValue(name)},debug-threads=on`);
  argv.push("-device", "virtio-serial-pci,id=vs0");
  const ports: NonNullable<QemuInput["expect"]>["ports"] = [];
  const n = rng.range(0, 5);
  for (let i = 0; i < n; i++) {
    const chardev = `c${i}${escapeValue(word(rng, 4))}`.replaceAll(",,", "_");
    const path = nonEmpty(rng, 30);
    const server = rng.chance(0.7);
    const portName = rng.chance(0.9) ? word(rng, 20) : null;
    const id = rng.chance(0.8) ? `p${i}` : null;
    const kind = rng.chance(0.8) ? "serial" : "console";
    argv.push(
      "-chardev",
      `socket,id=${chardev},path=${escapeValue(path)}${server ? rng.pick([",server=on,wait=off", ",server,nowait", ",server=yes"]) : rng.pick(["", ",reconnect=1", ",server=off"])}`,
    );
    const dev = [kind === "serial" ? "virtserialport" : "virtconsole", `chardev=${chardev}`, "bus=vs0.0"];
    if (portName !== null) dev.push(`name=${escapeValue(portName)}`);
    if (id !== null) dev.push(`id=${id}`);
    argv.push("-device", dev.join(","));
    ports.push({ kind, name: portName, id, chardev, path, mode: server ? "connect" : "listen", backend: "unix" });
  }
  return { argv, expect: { name, ports } };
}

function checkQemuResult(argv: readonly string[], r: ReturnType<typeof parseQemuArgv>): void {
  const vm = HostVm.safeParse(r.vm);
  if (!vm.success) fail(`the VM does not satisfy the HostVm schema: ${vm.error.message.slice(0, 300)}`);
  if (!Array.isArray(r.notes) || !r.notes.every((n) => typeof n === "string")) fail("notes are not strings");
  for (const p of r.passedFds)
    if (typeof p.chardev !== "string" || !Number.isInteger(p.fd) || (p.use !== "port" && p.use !== "qmp")) fail(`bad passed fd ${JSON.stringify(p)}`);
  if (r.vm.ports.length > argv.length) fail("more ports than words");
}

export const qemuTarget: Target<QemuInput> = {
  generate(rng) {
    const r = rng.int(10);
    if (r < 2) return qemuFromParts(rng);
    if (r < 6) return { argv: qemuFromGrammar(rng) };
    if (r < 9) {
      // Mutate a fixture: drop, duplicate or swap words, or edit characters in a few of them.
      const argv = [...rng.pick(fixtureArgvs)];
      for (let e = rng.range(1, 4); e > 0 && argv.length > 0; e--) {
        const at = rng.int(argv.length);
        switch (rng.int(4)) {
          case 0:
            argv.splice(at, 1);
            break;
          case 1:
            argv.splice(at, 0, argv[rng.int(argv.length)] ?? "");
            break;
          case 2: {
            const other = rng.int(argv.length);
            [argv[at], argv[other]] = [argv[other]!, argv[at]!];
            break;
          }
          default:
            argv[at] = mutate(rng, argv[at] ?? "", [",", ",,", "=", "{", "}", "-", "no"]);
        }
      }
      return { argv };
    }
    return { argv: Array.from({ length: rng.len(12) }, () => (rng.chance(0.4) ? `-${word(rng, 8)}` : word(rng, 12))) };
  },
  check({ argv, expect }) {
    const r = parseQemuArgv(argv);
    checkQemuResult(argv, r);
    // /proc/PID/cmdline is argv joined by NULs: the round trip must not change what is parsed.
    if (!argv.some((w) => w.includes("\0"))) {
      const again = parseQemuArgv(splitCmdline(argv.map((w) => `${w}\0`).join("")));
      if (!sameData(again, r)) fail("parsing argv and its /proc/PID/cmdline form differ");
    }
    if (expect) {
      if (r.vm.name !== expect.name) fail(`name ${JSON.stringify(expect.name)} parsed as ${JSON.stringify(r.vm.name)}`);
      const got = r.vm.ports.map((p) => ({ kind: p.kind, name: p.name, id: p.id, chardev: p.chardev, path: p.path, mode: p.mode, backend: p.backend }));
      if (!sameData(got, expect.ports)) fail(`ports ${JSON.stringify(expect.ports)} parsed as ${JSON.stringify(got)}`);
      return "round-trip";
    }
    return r.notes.length ? "ok:notes" : "ok";
  },
};

// ------------------------------------------------------------------------------------------- /proc/PID/cmdline

export interface CmdlineInput {
  raw: string;
  expect?: string[];
}

export const splitCmdlineTarget: Target<CmdlineInput> = {
  generate(rng) {
    if (rng.chance(0.5)) {
      const argv = Array.from({ length: rng.range(1, 8) }, () => word(rng, 10).replaceAll("\0", ""));
      return { raw: argv.map((w) => `${w}\0`).join(""), expect: argv };
    }
    return { raw: rng.string(["a", "b", "-", "\0", "\0", "é", " "], rng.len(30)) };
  },
  check({ raw, expect }) {
    const argv = splitCmdline(raw);
    if (!Array.isArray(argv) || !argv.every((w) => typeof w === "string")) fail("not a string[]");
    if (argv.join("\0") !== (raw.endsWith("\0") ? raw.slice(0, -1) : raw)) fail(`split as ${JSON.stringify(argv)}`);
    if (expect && !sameData(argv, expect)) fail(`expected ${JSON.stringify(expect)}, got ${JSON.stringify(argv)}`);
    return expect ? "round-trip" : "ok";
  },
};

// ------------------------------------------------------------------------------------------- XML

export interface XmlInput {
  text: string;
  expect?: XmlElement;
}

const ELEMENT_NAMES = ["a", "b", "c-d", "x:y", "_z", "e.f", "domain", "channel", "source", "target"];
const ATTR_NAMES = ["x", "y", "type", "path", "name", "mode", "a-b", "q:r", "_u"];
const PROTO_NAMES = ["constructor", "toString", "__proto__", "valueOf", "hasOwnProperty"];
const XML_TOKENS = [
  "<", ">", "</", "/>", "<a", "</a>", "<b x='1'>", "</b>", "<a/>", "<?xml version='1.0'?>", "<?", "?>", "<!--", "-->", "<![CDATA[", "]]>",
  "&amp;", "&lt;", "&#x41;", "&#65;", "&#1114112;", "&#x110000;", "&#0;", "&#xD800;", "&bogus;", "&", ";", "'", '"', "=", " ", "\n", "x",
  "<!DOCTYPE a>", "<!", "a='b'", 'a="b"', "a=b", "<a x='<'>", "\0", "é",
];

function escapeText(rng: Rng, s: string, quote?: "'" | '"'): string {
  let out = "";
  for (const c of s) {
    if (c === "&") out += "&amp;";
    else if (c === "<") out += "&lt;";
    else if (c === ">" && rng.chance(0.5)) out += "&gt;";
    else if (quote && c === quote) out += quote === '"' ? "&quot;" : "&apos;";
    else if (rng.chance(0.05) && c.codePointAt(0)! > 0 && !(c.charCodeAt(0) >= 0xd800 && c.charCodeAt(0) <= 0xdfff))
      out += rng.chance(0.5) ? `&#${c.codePointAt(0)};` : `&#x${c.codePointAt(0)!.toString(16)};`;
    else out += c;
  }
  return out;
}

const spaces = (rng: Rng, min = 0) => rng.string([" ", "\n", "\t", "\r"], min + rng.len(2));

/** A random element and its serialization; `proto`: allow attribute names such as "constructor". */
function genTree(rng: Rng, depth: number, proto: boolean): { el: XmlElement; text: string } {
  const name = rng.pick(ELEMENT_NAMES);
  const el: XmlElement = { name, attrs: {}, children: [], text: "" };
  let open = `<${name}`;
  for (let i = rng.range(0, 3); i > 0; i--) {
    const key = proto && rng.chance(0.02) ? rng.pick(PROTO_NAMES) : rng.pick(ATTR_NAMES);
    if (Object.hasOwn(el.attrs, key)) continue;
    const value = word(rng, 12);
    const quote = rng.chance(0.5) ? "'" : '"';
    // defineProperty, as the parser does: "__proto__" must be an own attribute, not the prototype.
    Object.defineProperty(el.attrs, key, { value, enumerable: true, writable: true, configurable: true });
    open += `${spaces(rng, 1)}${key}${spaces(rng)}=${spaces(rng)}${quote}${escapeText(rng, value, quote)}${quote}`;
  }
  open += spaces(rng);
  if (depth <= 0 || rng.chance(0.3)) {
    if (rng.chance(0.5)) return { el, text: `${open}/>` };
  }
  let body = "";
  for (let i = depth > 0 ? rng.range(0, 4) : 0; i >= 0; i--) {
    switch (rng.int(5)) {
      case 0: {
        const t = word(rng, 12);
        el.text += t;
        body += escapeText(rng, t);
        break;
      }
      case 1: {
        const t = word(rng, 12).replaceAll("]]>", "");
        el.text += t;
        body += `<![CDATA[${t}]]>`;
        break;
      }
      case 2:
        body += `<!--${word(rng, 10).replaceAll("-", "")}-->`;
        break;
      default:
        if (depth > 0) {
          const c = genTree(rng, depth - 1, proto);
          el.children.push(c.el);
          body += c.text;
        }
    }
  }
  return { el, text: `${open}>${body}</${name}${spaces(rng)}>` };
}

/** The known bug a failed parse shows, if any; `expect` is set when the input was valid by construction. */
/** Walks the tree without recursion (a deep tree is a legal result). */
function checkXmlShape(root: XmlElement): void {
  const stack = [root];
  const nameRe = /^[A-Za-z_:][-A-Za-z0-9_:.]*$/;
  while (stack.length) {
    const el = stack.pop()!;
    if (typeof el.name !== "string" || !nameRe.test(el.name)) fail(`bad element name ${JSON.stringify(el.name)}`);
    if (typeof el.text !== "string") fail("text is not a string");
    for (const [k, v] of Object.entries(el.attrs)) {
      if (!nameRe.test(k)) fail(`bad attribute name ${JSON.stringify(k)}`);
      if (typeof v !== "string") fail(`attribute ${k} is not a string`);
    }
    stack.push(...el.children);
  }
}

export const xmlTarget: Target<XmlInput> = {
  generate(rng) {
    const r = rng.int(1000);
    if (r < 1) {
      // Rarely, a very deep document (the recursion bug needs tens of thousands of levels).
      const depth = rng.range(1_000, 120_000);
      return { text: "<a>".repeat(depth) + "</a>".repeat(depth) };
    }
    if (r < 300) {
      const { el, text } = genTree(rng, rng.range(0, 4), true);
      const prolog = rng.chance(0.3) ? `<?xml version="1.0"?>${spaces(rng)}<!-- c -->${spaces(rng)}` : spaces(rng);
      return { text: prolog + text + spaces(rng), expect: el };
    }
    if (r < 550) return { text: mutate(rng, genTree(rng, rng.range(0, 3), false).text, XML_TOKENS) };
    if (r < 700) {
      // A slice of the fixture, mutated: the whole file is 4.8 KB, and most cases should stay cheap.
      const at = rng.int(web01.length);
      return { text: mutate(rng, rng.chance(0.2) ? web01 : web01.slice(at, at + rng.range(10, 800)), XML_TOKENS) };
    }
    return { text: Array.from({ length: rng.len(20) }, () => rng.pick(XML_TOKENS)).join("") };
  },
  check({ text, expect }) {
    let root: XmlElement;
    try {
      root = parseXml(text);
    } catch (err) {
      if (err instanceof XmlError) {
        if (expect) fail(`a serialized tree was refused: ${err.message}`);
        return "XmlError";
      }
      throw err;
    }
    checkXmlShape(root);
    if (expect && !sameData(root, expect)) fail(`tree ${JSON.stringify(expect).slice(0, 300)} parsed as ${JSON.stringify(root).slice(0, 300)}`);
    return expect ? "round-trip" : "ok";
  },
};

// ------------------------------------------------------------------------------------------- libvirt

export interface LibvirtInput {
  text: string;
  /** Built from parts: the name and kind of each virtio port, in document order. */
  expect?: Array<{ name: string | null; kind: "serial" | "console" }>;
}

const attr = (rng: Rng, key: string, values: readonly string[]) => (rng.chance(0.85) ? ` ${key}='${escapeText(rng, rng.pick(values), "'")}'` : "");

function libvirtFromParts(rng: Rng): LibvirtInput {
  const expect: NonNullable<LibvirtInput["expect"]> = [];
  let devices = "";
  for (let i = rng.range(0, 2); i > 0; i--)
    devices += `<controller type='${rng.pick(["virtio-serial", "usb", "pci"])}'${attr(rng, "index", ["0", "1", "x"])}><alias name='${rng.pick(["virtio-serial0", "virtio-serial1", ""])}'/></controller>`;
  for (let i = rng.range(0, 5); i > 0; i--) {
    const tag = rng.chance(0.75) ? "channel" : "console";
    const type = rng.pick(["unix", "unix", "tcp", "pty", "spicevmc", "file", ""]);
    const targetType = rng.pick(["virtio", "virtio", "virtio", "guestfwd", "serial", "xen"]);
    const name = rng.chance(0.85) ? word(rng, 16) : null;
    let source = "";
    if (rng.chance(0.9)) {
      const reconnect = rng.chance(0.4) ? `<reconnect${attr(rng, "enabled", ["yes", "no", "maybe"])}${attr(rng, "timeout", NUMBERISH)}/>` : "";
      source = `<source${attr(rng, "mode", ["bind", "connect", "other"])}${attr(rng, "path", [word(rng, 20)])}${attr(rng, "host", HOSTS)}${attr(rng, "service", NUMBERISH)}>${reconnect}</source>`;
    }
    const target = `<target type='${targetType}'${name === null ? "" : ` name='${escapeText(rng, name, "'")}'`}${attr(rng, "state", ["connected", "disconnected", "x"])}${attr(rng, "port", NUMBERISH)}/>`;
    const alias = rng.chance(0.8) ? `<alias name='${escapeText(rng, word(rng, 10), "'")}'/>` : "";
    const address = rng.chance(0.7)
      ? `<address type='${rng.pick(["virtio-serial", "pci"])}'${attr(rng, "controller", ["0", "1", "9", ""])}${attr(rng, "bus", ["0", "1", ""])}${attr(rng, "port", NUMBERISH)}/>`
      : "";
    const children = [source, target, alias, address].sort(() => rng.next() - 0.5).join(spaces(rng));
    devices += `<${tag}${type ? ` type='${type}'` : ""}${attr(rng, "tty", ["/dev/pts/3"])}>${children}</${tag}>`;
    if (targetType === "virtio") expect.push({ name, kind: tag === "console" ? "console" : "serial" });
  }
  const domain = `<domain type='kvm'><name>${escapeText(rng, word(rng, 10))}</name><uuid>${escapeText(rng, rng.pick(["0B4FA8C2-1D5E-4B8A-9F3E-2C7D9E6A5B10", word(rng, 8)]))}</uuid><devices>${devices}</devices></domain>`;
  if (rng.chance(0.03)) return { text: rng.chance(0.5) ? domain.replaceAll("domain", rng.pick(["network", "pool", "Domain"])) : `<domstatus pid='1'>${devices}</domstatus>` };
  if (rng.chance(0.5)) return { text: domain, expect };
  const monitor = rng.chance(0.8) ? `<monitor${attr(rng, "path", [word(rng, 20)])}${attr(rng, "type", ["unix", "pty", ""])}/>` : "";
  return { text: `<domstatus state='running'${attr(rng, "pid", NUMBERISH)}>${monitor}${domain}</domstatus>`, expect };
}

export const libvirtTarget: Target<LibvirtInput> = {
  generate(rng) {
    const r = rng.int(10);
    if (r < 4) return libvirtFromParts(rng);
    if (r < 6) return { text: mutate(rng, libvirtFromParts(rng).text, XML_TOKENS) };
    if (r < 9) {
      // The fixture with a few of its attribute values or words replaced, or characters edited.
      let text = web01;
      for (let e = rng.range(1, 3); e > 0; e--) {
        if (rng.chance(0.5)) {
          const values = [...text.matchAll(/='([^']*)'/g)];
          if (values.length === 0) continue;
          const m = rng.pick(values);
          text = text.slice(0, m.index + 2) + escapeText(rng, rng.pick([...NUMBERISH, word(rng, 8)]), "'") + text.slice(m.index + 2 + m[1]!.length);
        } else text = mutate(rng, text, XML_TOKENS);
      }
      return { text };
    }
    return { text: `<domain>${Array.from({ length: rng.len(12) }, () => rng.pick(XML_TOKENS)).join("")}</domain>` };
  },
  check({ text, expect }) {
    let d: ReturnType<typeof parseLibvirtXml>;
    try {
      d = parseLibvirtXml(text);
    } catch (err) {
      if (expect) fail(`a well-formed domain was refused: ${String(err)}`);
      if (err instanceof XmlError) return "XmlError";
      if (err instanceof Error && err.constructor === Error && err.message.startsWith("not a libvirt domain")) return "not-a-domain";
      throw err;
    }
    const vm = HostVm.safeParse(d.vm);
    if (!vm.success) {
      fail(`the VM does not satisfy the HostVm schema: ${vm.error.message.slice(0, 300)}`);
    }
    if (d.monitor !== null && typeof d.monitor !== "string") fail("monitor is neither a string nor null");
    if (expect) {
      const got = d.vm.ports.map((p) => ({ name: p.name, kind: p.kind }));
      if (!sameData(got, expect)) fail(`ports ${JSON.stringify(expect)} parsed as ${JSON.stringify(got)}`);
      return "round-trip";
    }
    return "ok";
  },
};

export const targets = {
  address: addressTarget,
  splitArgv: splitArgvTarget,
  parseOptionString: optionsTarget,
  parseQemuArgv: qemuTarget,
  splitCmdline: splitCmdlineTarget,
  parseXml: xmlTarget,
  parseLibvirtXml: libvirtTarget,
} as const satisfies Record<string, Target<unknown>>;
export type TargetName = keyof typeof targets;
