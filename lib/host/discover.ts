import * as fs from "node:fs";
import { isAbsolute, join } from "node:path";
import { parseQemuArgv, type QemuCmdline } from "./cmdline.ts";
import { describeError } from "./describe-error.ts";
import { defaultLibvirtDirs, readLibvirtDomains, type LibvirtDomain } from "./libvirt.ts";
import type { HostDiscovery, HostPort, HostVm } from "./model.ts";
import { diagLookup, forgedNote, readProcSockets, type ProcSockets, type SocketLookup, type UnixSocketTable } from "./proc-sockets.ts";
import { readOwner, socketDistrust } from "./vm-owner.ts";
import { findQemuProcesses } from "./qemu-processes.ts";
import { QmpClient } from "./qmp.ts";
import { applyQmpView, readQmpView, type QmpConnect } from "./qmp-state.ts";
import { withDeadline } from "../deadline.ts";

/** Options of `discoverHosts`. */
export interface DiscoverOptions {
  /** Where /proc is. Default "/proc". */
  procRoot?: string;
  /** Directories of libvirt's live domain XML. Default: /run/libvirt/qemu and $XDG_RUNTIME_DIR/libvirt/qemu/run. */
  libvirtDirs?: string[];
  /** Whether to ask each VM's QMP socket for live state. Default true. */
  useQmp?: boolean;
  /** Limit for connecting to a QMP socket and for each QMP command. Default 500 ms. */
  timeoutMs?: number;
  /** How to open a QMP session. Default `QmpClient.connect`; tests pass a fake. */
  qmpConnect?: QmpConnect;
  /**
   * Keeps only the VMs it returns true for, before QMP is asked: resolving one `VM:PORT` need not take
   * every other VM's single QMP slot. Default: keep all.
   */
  filter?: (vm: HostVm) => boolean;
  /** The passwd file that names VM owners. Default "/etc/passwd". */
  passwdFile?: string;
  /**
   * Looks up one unix socket of this network namespace by inode, binary-safe (sock_diag), for QEMUs
   * that share it; throwing means "unavailable". Default: the kernel's sock_diag when `procRoot` is
   * "/proc", else none (/proc/PID/net/unix is parsed).
   */
  socketLookup?: SocketLookup;
}

const defaultConnect: QmpConnect = (path, opts) => QmpClient.connect(path, opts);

/**
 * Finds the running QEMU VMs and their virtio-serial ports: command lines in /proc, libvirt's live XML,
 * then QMP for live state. Never throws for an unreadable source and never waits on a busy QMP socket
 * longer than `timeoutMs`: what could not be read is listed in `notes`.
 */
export async function discoverHosts(opts: DiscoverOptions = {}): Promise<HostDiscovery> {
  const procRoot = opts.procRoot ?? "/proc";
  const timeoutMs = opts.timeoutMs ?? 500;
  const notes: string[] = [];
  const found = findQemuProcesses(procRoot);
  notes.push(...found.notes);
  const sockets = new Map<number, ProcSockets>();
  const sc: SocketContext = { lookup: opts.socketLookup ?? (procRoot === "/proc" ? diagLookup : undefined), sockets, textCache: new Map() };
  let vms: HostVm[] = found.processes.map(({ pid, argv }) => {
    const vm = _fromCmdline(procRoot, pid, parseQemuArgv(argv), notes, sc);
    return { ...vm, owner: readOwner(procRoot, pid, opts.passwdFile ?? "/etc/passwd") };
  });

  const libvirt = readLibvirtDomains(opts.libvirtDirs ?? defaultLibvirtDirs());
  notes.push(...libvirt.notes);
  vms = _mergeLibvirt(vms, libvirt.domains);
  if (opts.filter) vms = vms.filter(opts.filter);
  vms = vms.map((vm) => ({ ...vm, owner: vm.owner ?? null }));
  // What /proc and libvirt said, before QMP: a path QMP adds or changes comes from QEMU alone.
  const before = vms.map((vm) => new Map(vm.ports.map((p) => [p.chardev, p.path])));

  if (opts.useQmp ?? true) {
    const connect = opts.qmpConnect ?? defaultConnect;
    // In parallel, so the wait for busy sockets does not add up; notes are kept in VM order.
    const results = await Promise.all(
      vms.map(async (vm) => {
        const own: string[] = [];
        return { vm: await _withQmp(vm, connect, timeoutMs, own), own };
      }),
    );
    vms = results.map((r) => r.vm);
    notes.push(...results.flatMap((r) => r.own));
  }
  // Only now, after libvirt and QMP filled in paths: every socket path is checked against QEMU's own sockets and owner.
  vms = vms.map((vm, i) => {
    const own = vm.pid === null ? undefined : sockets.get(vm.pid);
    const fromQmp = (p: HostPort) => p.chardev === null || before[i]!.get(p.chardev) !== p.path;
    return { ...vm, ports: _checkTrust(vm, { sockets: own, passwdFile: opts.passwdFile, fromQmp }, notes) };
  });
  vms.sort((a, b) => (a.name ?? "").localeCompare(b.name ?? "") || (a.pid ?? 0) - (b.pid ?? 0));
  return { vms, notes };
}

/** How notes name a VM; a name longer than 80 characters is cut there with an ellipsis (`--json` has it whole). */
export function vmLabel(vm: Pick<HostVm, "name" | "pid">): string {
  const name = vm.name !== null && vm.name.length > 80 ? `${vm.name.slice(0, 79)}…` : vm.name;
  if (name !== null && vm.pid !== null) return `VM "${name}" (pid ${vm.pid})`;
  return name !== null ? `VM "${name}"` : `VM with pid ${vm.pid}`;
}

/** The ports with `untrusted` set where the socket file at a port's path is not this VM's; a note for each. */
function _checkTrust(
  vm: HostVm,
  how: { sockets?: ProcSockets; passwdFile?: string; fromQmp: (p: HostPort) => boolean },
  notes: string[],
): HostPort[] {
  return vm.ports.map((p) => {
    if (p.backend !== "unix" || p.mode !== "connect" || p.path === null || p.path.startsWith("@")) return p;
    const why = socketDistrust(p.path, vm.owner ?? null, { sockets: how.sockets, passwdFile: how.passwdFile, fromQmp: how.fromQmp(p) });
    if (why === null) return p;
    notes.push(`${vmLabel(vm)}: port "${p.name ?? p.id ?? p.chardev}" is not trusted: ${why}`);
    return { ...p, untrusted: why };
  });
}

interface SocketContext {
  lookup: SocketLookup | undefined;
  /** /proc/PID/net/unix tables by network namespace, so QEMUs that share one are parsed once. */
  textCache: Map<string, UnixSocketTable>;
  /** Filled with what each pid's fds said. */
  sockets: Map<number, ProcSockets>;
}

/** The command line's VM with its pid, relative paths made absolute, fd-passed sockets resolved and held state from /proc. */
function _fromCmdline(procRoot: string, pid: number, cmd: QemuCmdline, notes: string[], sc: SocketContext): HostVm {
  const vm: HostVm = { ...cmd.vm, pid };
  notes.push(...cmd.notes.map((n) => `${vmLabel(vm)}: ${n}`));

  // QEMU resolves relative socket paths against its own working directory, not ours.
  const relative = (p: string | null) => p !== null && !isAbsolute(p) && !p.startsWith("@");
  if (vm.ports.some((p) => relative(p.path)) || vm.qmp.some(relative)) {
    let cwd: string | null = null;
    try {
      cwd = fs.readlinkSync(`${procRoot}/${pid}/cwd`);
    } catch (err) {
      notes.push(`cannot read ${procRoot}/${pid}/cwd: ${describeError(err)} (relative socket paths of ${vmLabel(vm)} left as given)`);
    }
    if (cwd !== null) {
      const abs = (p: string) => (relative(p) ? join(cwd, p) : p);
      vm.ports = vm.ports.map((p) => (p.path === null || p.backend === "pty" ? p : { ...p, path: abs(p.path) }));
      vm.qmp = vm.qmp.map(abs);
    }
  }

  // With QMP, paths of hot-plugged ports come later from QEMU itself: its fds are what confirms them.
  const wantsSockets = cmd.passedFds.length > 0 || vm.qmp.length > 0 || vm.ports.some((p) => p.backend === "unix" && p.mode === "connect");
  if (!wantsSockets) return vm;
  let sockets: ReturnType<typeof readProcSockets>;
  try {
    sockets = readProcSockets(procRoot, pid, { lookup: sc.lookup, textCache: sc.textCache });
  } catch (err) {
    // Without /proc/PID/fd the paths of inherited sockets stay unknown, which is worth saying; held can still come from QMP.
    if (cmd.passedFds.length > 0) {
      notes.push(`cannot read ${procRoot}/${pid}/fd: ${describeError(err)} (socket paths of ${vmLabel(vm)} passed as fds unknown)`);
    }
    return vm;
  }
  sc.sockets.set(pid, sockets);
  const forged = forgedNote(vmLabel(vm), sockets);
  if (forged !== null) notes.push(forged);
  for (const { chardev, fd, use } of cmd.passedFds) {
    const path = sockets.pathByFd.get(fd);
    if (path === undefined) continue;
    if (use === "qmp") vm.qmp.push(path);
    else vm.ports = vm.ports.map((p) => (p.chardev === chardev ? { ...p, backend: "unix", path } : p));
  }
  vm.ports = vm.ports.map((p) =>
    // A forged fd may be the accepted connection: then "not held" cannot be told, only "held".
    p.backend === "unix" && p.mode === "connect" && p.path !== null
      ? { ...p, held: sockets.connected.has(p.path) ? true : sockets.forgedFds.length > 0 ? null : false }
      : p,
  );
  return vm;
}

/**
 * Joins libvirt domains to command-line VMs; domains with no process are kept as they are. A domain
 * whose status XML gives a pid joins only the process with that pid: any user can start a QEMU with
 * the domain's name or uuid, and must not inherit the domain's identity. A pid-less domain joins by
 * name, else uuid, and only a process that alone matches.
 */
function _mergeLibvirt(vms: HostVm[], domains: LibvirtDomain[]): HostVm[] {
  const out = [...vms];
  const only = (test: (v: HostVm) => boolean) => {
    const hits = out.flatMap((v, i) => (test(v) ? [i] : []));
    return hits.length === 1 ? hits[0]! : -1;
  };
  for (const d of domains) {
    const i =
      d.vm.pid !== null
        ? [out.findIndex((v) => v.pid === d.vm.pid)].find((n) => n >= 0)
        : [
            only((v) => d.vm.name !== null && v.name === d.vm.name && !v.sources.includes("libvirt")),
            only((v) => d.vm.uuid !== null && v.uuid === d.vm.uuid && !v.sources.includes("libvirt")),
          ].find((n) => n >= 0);
    const qmp = (v: HostVm) => v.qmp.filter((p) => p !== d.monitor);
    if (i === undefined) {
      out.push({ ...d.vm, qmp: qmp(d.vm) });
      continue;
    }
    const v = out[i]!;
    out[i] = {
      ...v,
      name: v.name ?? d.vm.name,
      pid: v.pid ?? d.vm.pid,
      uuid: v.uuid ?? d.vm.uuid,
      sources: [...v.sources, "libvirt"],
      qmp: qmp(v),
      ports: _mergePorts(v.ports, d.vm.ports),
    };
  }
  return out;
}

/** Fills what the command line could not know (paths of fd-passed sockets, guest state) from libvirt, matching by device id, then name. */
function _mergePorts(ports: HostPort[], fromLibvirt: HostPort[]): HostPort[] {
  const used = new Set<HostPort>();
  // Indexed, first one wins as find() would: thousands of ports on both sides must not cost their product.
  const byId = new Map<string, HostPort>();
  const byName = new Map<string, HostPort>();
  for (const x of fromLibvirt) {
    if (x.id !== null && !byId.has(x.id)) byId.set(x.id, x);
    if (x.name !== null && !byName.has(x.name)) byName.set(x.name, x);
  }
  const merged = ports.map((p) => {
    const l = (p.id !== null ? byId.get(p.id) : undefined) ?? (p.name !== null ? byName.get(p.name) : undefined);
    if (!l) return p;
    used.add(l);
    const unknownPath = p.backend === null || p.backend === "fd" || (p.path === null && p.address === null);
    return {
      ...p,
      name: p.name ?? l.name,
      nr: p.nr ?? l.nr,
      bus: p.bus ?? l.bus,
      ...(unknownPath && { backend: l.backend, path: l.path ?? p.path, address: l.address ?? p.address }),
      qemuBackend: p.qemuBackend ?? l.qemuBackend,
      mode: p.mode ?? l.mode,
      reconnectMs: p.reconnectMs ?? l.reconnectMs,
      guestOpen: p.guestOpen ?? l.guestOpen,
    };
  });
  // A port libvirt lists but the command line does not: hot-plugged through libvirt.
  return [...merged, ...fromLibvirt.filter((l) => !used.has(l))];
}

/** The VM with QMP's live state folded in, from the first QMP socket that answers; notes for those that do not. */
async function _withQmp(vm: HostVm, connect: QmpConnect, timeoutMs: number, notes: string[]): Promise<HostVm> {
  for (const path of vm.qmp) {
    let client: Awaited<ReturnType<QmpConnect>>;
    const pending = connect(path, { timeoutMs });
    try {
      client = await withDeadline(pending, timeoutMs * 2, `no answer within ${timeoutMs} ms`);
    } catch (err) {
      // A session that opens after we gave up must still be closed, or it would hold QMP's only slot.
      pending.then((c) => c.close(), () => {});
      notes.push(`cannot query QMP of ${vmLabel(vm)} at ${path}: ${_qmpReason(err, timeoutMs)}`);
      continue;
    }
    try {
      // A whole session gets a bounded budget too: a QEMU that answers the greeting and then stalls must not hang us.
      const view = await withDeadline(readQmpView(client, timeoutMs), timeoutMs * 20, `QMP session took over ${timeoutMs * 20} ms`);
      return applyQmpView(vm, view);
    } catch (err) {
      notes.push(`cannot query QMP of ${vmLabel(vm)} at ${path}: ${_qmpReason(err, timeoutMs)}`);
    } finally {
      client.close();
    }
  }
  return vm;
}

/** A QMP failure in a note's words; a missing greeting nearly always means another client holds the socket. */
function _qmpReason(err: unknown, timeoutMs: number): string {
  const msg = describeError(err);
  if (/no greeting/.test(msg)) return `no greeting within ${timeoutMs} ms (QMP serves one client at a time: another one, such as libvirt, holds it)`;
  return msg.replace(/^QMP connect to "[^"]*" failed: /, "");
}
