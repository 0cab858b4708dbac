import { hostPort, type HostPort, type HostVm } from "./model.ts";

/** What `parseQemuArgv` learns from one QEMU command line. */
export interface QemuCmdline {
  /** The VM as the command line describes it: pid null, sources ["cmdline"], no QMP-derived state. */
  vm: HostVm;
  /**
   * Sockets QEMU inherited as file descriptors (`fd=N`, as libvirt passes them), whose paths only /proc can
   * tell: `use` says whether the chardev backs a port (see `vm.ports[].chardev`) or a QMP monitor.
   */
  passedFds: { chardev: string; fd: number; use: "port" | "qmp" }[];
  /** Things on the command line discovery cannot follow (-readconfig, bad JSON). */
  notes: string[];
}

/** A chardev as far as discovery cares: how a host program reaches it. */
interface Chardev {
  qemuBackend: string;
  backend: HostPort["backend"];
  path: string | null;
  address: string | null;
  mode: HostPort["mode"];
  reconnectMs: number | null;
  fd: number | null;
}

/**
 * Parses QEMU's `key=value,key=value` option syntax (QemuOpts): `,,` is a literal comma inside a value,
 * a bare `key` means key=on and a bare `nokey` key=off (the old `server,nowait` form), and a first
 * element without `=` is the value of `implied` (`-name foo` = guest=foo, `-chardev socket,...` = backend=socket).
 * Later keys override earlier ones, as in QEMU.
 */
export function parseOptionString(s: string, opts: { implied?: string } = {}): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  let first = true;
  // The next "=" at or after i, searched again only once i has passed it: a string of many flags and no "="
  // must not be scanned to its end once per flag.
  let eq = s.indexOf("=");
  while (i < s.length) {
    if (eq >= 0 && eq < i) eq = s.indexOf("=", i);
    const comma = s.indexOf(",", i);
    if (eq < 0 || (comma >= 0 && comma < eq)) {
      // No "=" before the next ",": an implied first value, or a flag.
      if (first && opts.implied) {
        const { value, next } = _readValue(s, i);
        out.set(opts.implied, value);
        i = next;
      } else {
        const end = comma < 0 ? s.length : comma;
        const key = s.slice(i, end);
        if (key !== "") {
          if (key.startsWith("no")) out.set(key.slice(2), "off");
          else out.set(key, "on");
        }
        i = end + 1;
      }
    } else {
      const key = s.slice(i, eq);
      const { value, next } = _readValue(s, eq + 1);
      out.set(key, value);
      i = next;
    }
    first = false;
  }
  return out;
}

/**
 * Reads a value up to the next lone comma, turning `,,` into `,`; returns the index after that comma. Slices
 * between commas, not a character at a time: a string grown by single characters costs a heap node per
 * character, and a command line can be megabytes.
 */
function _readValue(s: string, start: number): { value: string; next: number } {
  const pieces: string[] = [];
  let i = start;
  for (;;) {
    const comma = s.indexOf(",", i);
    if (comma < 0) {
      pieces.push(s.slice(i));
      return { value: pieces.join(""), next: s.length };
    }
    pieces.push(s.slice(i, comma));
    if (s[comma + 1] !== ",") return { value: pieces.join(""), next: comma + 1 };
    pieces.push(",");
    i = comma + 2;
  }
}

/** QEMU's boolean spellings (on/off, yes/no, true/false, y/n); undefined for anything else. */
export function parseQemuBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (["on", "yes", "true", "y"].includes(v)) return true;
  if (["off", "no", "false", "n"].includes(v)) return false;
  return undefined;
}

/** Whether argv[0] names a QEMU system emulator (`qemu-system-x86_64`, `qemu-kvm`, a path to either). */
export function isQemuCommand(argv0: string): boolean {
  const base = argv0.slice(argv0.lastIndexOf("/") + 1);
  return base.startsWith("qemu-system-") || base === "qemu-kvm";
}

// QEMU options that take no argument. Knowing them matters because an unknown flag would otherwise
// swallow the next option (`-S -chardev ...` must not read "-chardev" as the value of -S).
const FLAGS = new Set([
  "S", "s", "nographic", "no-reboot", "no-shutdown", "nodefaults", "nodefconfig", "no-user-config",
  "enable-kvm", "snapshot", "daemonize", "no-hpet", "no-acpi", "full-screen", "win2k-hack", "no-fd-bootchk",
  "no-kvm", "no-kvm-irqchip", "no-kvm-pit", "no-kvm-pit-reinjection", "preconfig", "singlestep", "usb",
  "only-migratable", "semihosting", "old-param", "no-quit", "curses", "alt-grab", "ctrl-grab", "no-frame",
  "version", "help", "h", "enable-fips", "xen-attach", "xen-domid-restrict", "rtc-td-hack",
]);

/** Splits argv into (option, value) pairs; a value is null for flags. Unknown options take a value unless the next word looks like an option. */
function _options(argv: readonly string[]): { opt: string; value: string | null }[] {
  const out: { opt: string; value: string | null }[] = [];
  for (let i = 1; i < argv.length; i++) {
    const word = argv[i]!;
    if (!word.startsWith("-")) {
      out.push({ opt: "", value: word }); // a bare disk image, QEMU's "-hda" shorthand
      continue;
    }
    const opt = word.replace(/^--?/, "");
    const next = argv[i + 1];
    if (FLAGS.has(opt) || next === undefined || (next.startsWith("-") && !_knowsValue(opt))) {
      out.push({ opt, value: null });
    } else {
      out.push({ opt, value: next });
      i++;
    }
  }
  return out;
}

// Options whose value may itself start with "-" and that always take one.
function _knowsValue(opt: string): boolean {
  return ["name", "chardev", "device", "qmp", "qmp-pretty", "mon", "append", "uuid", "readconfig", "set", "global"].includes(opt);
}

/** Reads `-device` options, either QemuOpts (`virtserialport,chardev=c0`) or JSON (`{"driver":"virtserialport",...}`). */
function _deviceOptions(value: string, notes: string[]): Map<string, string> | null {
  if (!value.trimStart().startsWith("{")) return parseOptionString(value, { implied: "driver" });
  let obj: unknown;
  try {
    obj = JSON.parse(value);
  } catch {
    notes.push(`cannot parse -device ${value}: invalid JSON`);
    return null;
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return null;
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === "boolean") out.set(k, v ? "on" : "off");
    else if (typeof v === "string" || typeof v === "number") out.set(k, String(v));
  }
  return out;
}

/** The chardev a `-chardev` option string describes, keyed by its id. */
function _chardev(o: Map<string, string>): Chardev {
  const qemuBackend = o.get("backend") ?? "";
  const base = { qemuBackend, path: null, address: null, mode: null, reconnectMs: null, fd: null };
  if (qemuBackend === "pty") return { ...base, backend: "pty" };
  if (qemuBackend !== "socket") return { ...base, backend: "other" };
  const server = parseQemuBool(o.get("server")) ?? false;
  // reconnect-ms (QEMU 9.2+) supersedes reconnect=seconds; either only matters in client mode.
  const ms = o.has("reconnect-ms") ? Number(o.get("reconnect-ms")) : o.has("reconnect") ? Number(o.get("reconnect")) * 1000 : NaN;
  const common = {
    ...base,
    mode: server ? ("connect" as const) : ("listen" as const),
    reconnectMs: !server && Number.isFinite(ms) && ms > 0 ? ms : null,
  };
  if (o.has("fd")) {
    const fd = Number(o.get("fd"));
    return { ...common, backend: "fd", fd: Number.isInteger(fd) ? fd : null };
  }
  if (o.has("path")) {
    const abstract = parseQemuBool(o.get("abstract")) ?? false;
    return { ...common, backend: "unix", path: abstract ? `@${o.get("path")}` : o.get("path")! };
  }
  if (o.has("host") || o.has("port")) {
    return { ...common, backend: "tcp", address: `${o.get("host") ?? ""}:${o.get("port") ?? ""}` };
  }
  return { ...common, backend: "other" };
}

/** The chardev of a `-qmp`/`-monitor`-style legacy spec (`unix:PATH,server=on,wait=off`, `tcp:HOST:PORT,server`). */
function _legacyChardev(spec: string): Chardev {
  if (spec.startsWith("unix:")) {
    return _chardev(new Map([["backend", "socket"], ...parseOptionString(spec.slice(5), { implied: "path" })]));
  }
  if (spec.startsWith("tcp:")) {
    const o = parseOptionString(spec.slice(4), { implied: "hostport" });
    const hp = o.get("hostport") ?? "";
    const colon = hp.lastIndexOf(":");
    o.set("host", hp.slice(0, colon));
    o.set("port", hp.slice(colon + 1));
    return _chardev(new Map([["backend", "socket"], ...o]));
  }
  const colon = spec.indexOf(":");
  return _chardev(new Map([["backend", colon < 0 ? spec : spec.slice(0, colon)]]));
}

/** Parses a QEMU command line (argv as in /proc/PID/cmdline) into the VM it describes. */
export function parseQemuArgv(argv: readonly string[]): QemuCmdline {
  const notes: string[] = [];
  const chardevs = new Map<string, Chardev>();
  const devices: { kind: HostPort["kind"]; o: Map<string, string> }[] = [];
  // QMP monitors in command-line order: a path, or a chardev id to look up once every -chardev is read.
  const monitors: ({ chardev: string } | { spec: Chardev })[] = [];
  let name: string | null = null;
  let uuid: string | null = null;
  let startedPaused = false;

  for (const { opt, value } of _options(argv)) {
    if (opt === "S") startedPaused = true;
    if (value === null) continue;
    switch (opt) {
      case "name":
        name = parseOptionString(value, { implied: "guest" }).get("guest") ?? name;
        break;
      case "uuid":
        uuid = value.toLowerCase();
        break;
      case "chardev": {
        if (value.trimStart().startsWith("{")) {
          notes.push(`cannot follow -chardev ${value}: the JSON form is not read`);
          break;
        }
        const o = parseOptionString(value, { implied: "backend" });
        const id = o.get("id");
        if (id !== undefined) chardevs.set(id, _chardev(o));
        break;
      }
      case "device": {
        const o = _deviceOptions(value, notes);
        const driver = o?.get("driver");
        if (o && (driver === "virtserialport" || driver === "virtconsole")) {
          devices.push({ kind: driver === "virtconsole" ? "console" : "serial", o });
        }
        break;
      }
      case "qmp":
      case "qmp-pretty":
        monitors.push({ spec: _legacyChardev(value) });
        break;
      case "mon": {
        const o = parseOptionString(value, { implied: "chardev" });
        // mode defaults to readline (the human monitor), which is not QMP.
        if (o.get("mode") === "control" && o.has("chardev")) monitors.push({ chardev: o.get("chardev")! });
        break;
      }
      case "readconfig":
        notes.push(`cannot follow -readconfig ${value}: devices and chardevs in config files are not read`);
        break;
    }
  }

  const passedFds: QemuCmdline["passedFds"] = [];
  const qmp: string[] = [];
  for (const m of monitors) {
    const c = "spec" in m ? m.spec : chardevs.get(m.chardev);
    // Only a server-mode socket lets us connect; a client-mode monitor connects out to someone else.
    if (!c || c.mode !== "connect") continue;
    if (c.backend === "unix" && c.path !== null) qmp.push(c.path);
    else if (c.backend === "fd" && c.fd !== null && "chardev" in m) passedFds.push({ chardev: m.chardev, fd: c.fd, use: "qmp" });
  }

  const ports = devices.map(({ kind, o }) => {
    const chardevId = o.get("chardev") ?? null;
    const c = chardevId === null ? undefined : chardevs.get(chardevId);
    if (c?.backend === "fd" && c.fd !== null) passedFds.push({ chardev: chardevId!, fd: c.fd, use: "port" });
    // Digits only: Number("") is 0 and Number("1e3") is 1000, neither of which QEMU accepts.
    const nr = /^\d+$/.test(o.get("nr") ?? "") ? Number(o.get("nr")) : NaN;
    return hostPort({
      kind,
      name: o.get("name") ?? null,
      id: o.get("id") ?? null,
      chardev: chardevId,
      bus: o.get("bus") ?? null,
      nr: Number.isInteger(nr) ? nr : null,
      ...(c && {
        backend: c.backend,
        qemuBackend: c.qemuBackend,
        path: c.path,
        address: c.address,
        mode: c.mode,
        reconnectMs: c.reconnectMs,
      }),
    });
  });

  return {
    vm: { name, pid: null, uuid, sources: ["cmdline"], qmp, startedPaused, running: null, ports },
    passedFds,
    notes,
  };
}

/** Splits the NUL-separated contents of /proc/PID/cmdline into argv. */
export function splitCmdline(raw: string): string[] {
  const parts = raw.split("\0");
  if (parts.at(-1) === "") parts.pop();
  return parts;
}
