import { discoverHosts, type DiscoverOptions, vmLabel } from "../host/discover.ts";
import { defaultLibvirtDirs } from "../host/libvirt.ts";
import type { HostDiscovery, HostPort, HostVm } from "../host/model.ts";
import type { QmpEvent } from "../host/qmp.ts";
import { QmpClient, QmpPeerError } from "../host/qmp.ts";
import { applyQmpView, type QmpView } from "../host/qmp-state.ts";
import { DiscoveryProbe } from "./discovery-probe.ts";
import type { HostWatchEvent } from "./event.ts";
import { type QmpEventConnect, QmpWatchSession } from "./qmp-session.ts";

/** A host event before it is stamped with the time. */
export type HostChange = Omit<HostWatchEvent, "time">;
type Via = HostChange["via"];

/** Options of HostWatcher. */
export interface HostWatcherOptions {
  /** Called for every change, in order. */
  emit: (change: HostChange) => void;
  /** Called once per distinct note (a source that cannot be read or used), without the "vmchan: note: " prefix. */
  note: (text: string) => void;
  /** Where /proc is. Default "/proc". */
  procRoot?: string;
  /** Directories of libvirt's live domain XML. Default: discovery's default. */
  libvirtDirs?: string[];
  /** Watch only the VMs it returns true for (`--vm`). Default: all. */
  filter?: (vm: HostVm) => boolean;
  /** Host discovery without QMP (/proc, libvirt). Default `discoverHosts`; tests pass a fake. */
  discover?: (opts: DiscoverOptions) => Promise<HostDiscovery>;
  /** How to open a QMP session with events. Default `QmpClient.connect`. */
  qmpConnect?: QmpEventConnect;
  /** Limit for a QMP connect (a busy socket gives no greeting) and each QMP command. Default 500 ms. */
  timeoutMs?: number;
  /** How long to wait before trying a VM's QMP sockets again after none answered. Default 10000 ms. */
  qmpRetryMs?: number;
  /** Milliseconds clock. Default Date.now. */
  now?: () => number;
  /**
   * Says whether a discovery could find something new; rounds it answers false for skip the discovery (QMP
   * sessions are still polled). Default: a DiscoveryProbe of `procRoot` and the libvirt dirs. Tests of a fake
   * `discover` pass `{ changed: () => true }`.
   */
  probe?: { changed(): boolean };
  /** A full discovery runs at least this often, whatever the probe says. Default 10000 ms. */
  fullEveryMs?: number;
}

/** A port as last reported, with who last set its open state. */
type TrackedPort = HostPort & {
  /** The source of the last guestOpen value, to tell a coalesced VSERPORT_CHANGE from the late event of a change a poll saw first. */
  openVia: Via | null;
  /** Reported as added while its open state was unknown: the first state learned, if open, is reported. */
  fresh: boolean;
};

interface VmState {
  key: string;
  vm: HostVm;
  ports: Map<string, TrackedPort>;
  /** False until the state of a VM that was running when watching began is known: until then changes are only recorded. */
  primed: boolean;
  session: QmpWatchSession | null;
  connecting: boolean;
  retryAt: number;
  gone: boolean;
  /** Port updates of this VM run one at a time, in arrival order. */
  queue: Promise<void>;
  /**
   * Device ids with a VSERPORT_CHANGE received but not yet handled, and the latest state received: a poll queued
   * before it must not learn their state silently. Only the latest state per id is kept, so a peer sending events
   * faster than they are handled costs one entry per port, not one per event.
   */
  eventsPending: Map<string, boolean>;
  /** Start of the current one-second event window and the events counted in it (flood detection). */
  eventWindow: { start: number; count: number };
  noted: boolean;
  /** Whether a QMP view was ever applied: its port list (hot-plugged ports included) then outranks the command line's. */
  hadView: boolean;
}

const defaultConnect: QmpEventConnect = (path, opts) => QmpClient.connect(path, opts);

/**
 * Watches the QEMU VMs of this host: /proc (and libvirt's live XML) every tick for VMs starting and stopping,
 * and per VM one held QMP connection for VSERPORT_CHANGE and DEVICE_DELETED events plus a cheap poll for
 * hot-plugged ports and ports without an id (which get no events). A VM whose QMP sockets are all busy
 * falls back to libvirt's live XML for the guest's open state, or to /proc alone, and says so once.
 */
export class HostWatcher {
  readonly #o: Required<Omit<HostWatcherOptions, "libvirtDirs" | "filter" | "probe">> & Pick<HostWatcherOptions, "libvirtDirs" | "filter">;
  readonly #probe: { changed(): boolean };
  #lastFull = -Infinity;
  readonly #vms = new Map<string, VmState>();
  readonly #notes = new Set<string>();
  #started = false;
  #closed = false;

  constructor(options: HostWatcherOptions) {
    this.#o = {
      procRoot: "/proc",
      discover: discoverHosts,
      qmpConnect: defaultConnect,
      timeoutMs: 500,
      qmpRetryMs: 10_000,
      now: Date.now,
      fullEveryMs: 10_000,
      ...options,
    };
    this.#probe =
      options.probe ?? new DiscoveryProbe(this.#o.procRoot, this.#o.libvirtDirs ?? defaultLibvirtDirs(), { now: this.#o.now });
  }

  /** The VMs watched now. */
  get vms(): HostVm[] {
    return [...this.#vms.values()].map((s) => s.vm);
  }

  /**
   * One round: rescans /proc and libvirt when the probe says something changed (or the last full look is
   * `fullEveryMs` old), reports VMs that started or stopped, polls each held QMP session. The first round only
   * records what is there.
   */
  async tick(): Promise<void> {
    if (this.#closed) return;
    const changed = this.#probe.changed();
    if (changed || this.#o.now() - this.#lastFull >= this.#o.fullEveryMs) {
      this.#lastFull = this.#o.now();
      await this.#discover();
    } else {
      for (const st of this.#vms.values()) this.#maybeConnect(st);
    }
    if (this.#closed) return;
    await Promise.all(
      [...this.#vms.values()].filter((s) => s.session).map((s) => this.#enqueue(s, () => this.#refresh(s, null))),
    );
    this.#started = true;
  }

  /** Rescans /proc and libvirt: VMs started and stopped, and the ports of VMs without a QMP session. */
  async #discover(): Promise<void> {
    const found = await this.#o.discover({
      procRoot: this.#o.procRoot,
      ...(this.#o.libvirtDirs && { libvirtDirs: this.#o.libvirtDirs }),
      useQmp: false,
      ...(this.#o.filter && { filter: this.#o.filter }),
    });
    if (this.#closed) return;
    for (const n of found.notes) this.#noteOnce(n);
    const seen = new Set<string>();
    for (const vm of found.vms) {
      const key = _vmKey(vm);
      if (seen.has(key)) continue;
      seen.add(key);
      let st = this.#vms.get(key);
      if (!st) {
        st = { key, vm, ports: new Map(), primed: this.#started, session: null, connecting: false, retryAt: 0, gone: false, queue: Promise.resolve(), eventsPending: new Map(), eventWindow: { start: 0, count: 0 }, noted: false, hadView: false };
        this.#vms.set(key, st);
        if (this.#started) this.#emitVm(st, "vm-started", vm.sources.includes("cmdline") ? "proc" : "libvirt");
      } else {
        st.vm = vm;
      }
      if (!st.session) {
        const s = st;
        this.#enqueue(s, async () => {
          if (s.session) return;
          // After a lost QMP session the command line would forget hot-plugged ports: keep the list, take libvirt's state.
          const ports = s.hadView
            ? [...s.ports.values()].map((p) => ({ ...p, guestOpen: vm.ports.find((l) => _portKey(l) === _portKey(p))?.guestOpen ?? null }))
            : vm.ports;
          this.#applyPorts(s, ports, vm.sources.includes("cmdline") ? "proc" : "libvirt", "libvirt", () => true);
          // With no QMP to ask, this first look is all there is to know.
          if (vm.qmp.length === 0) s.primed = true;
        });
      }
      this.#maybeConnect(st);
    }
    for (const st of [...this.#vms.values()]) if (!seen.has(st.key)) this.#stopped(st);
  }

  /** Closes every QMP session; no change is reported after this. */
  close(): void {
    this.#closed = true;
    for (const st of this.#vms.values()) {
      st.session?.close();
      st.session = null;
    }
  }

  #enqueue(st: VmState, fn: () => Promise<void> | void): Promise<void> {
    const next = st.queue.then(async () => {
      if (!this.#closed && !st.gone) await fn();
    });
    st.queue = next.catch(() => {});
    return st.queue;
  }

  #maybeConnect(st: VmState): void {
    if (st.session || st.connecting || st.vm.qmp.length === 0 || this.#o.now() < st.retryAt) return;
    st.connecting = true;
    void QmpWatchSession.open(st.vm.qmp, this.#o.qmpConnect, this.#o.timeoutMs).then(({ session, failures }) => {
      st.connecting = false;
      if (this.#closed || st.gone) {
        session?.close();
        return;
      }
      if (!session) {
        st.retryAt = this.#o.now() + this.#o.qmpRetryMs;
        // What /proc and libvirt showed is the state, as far as anything can tell.
        this.#enqueue(st, () => void (st.primed = true));
        if (!st.noted) {
          st.noted = true;
          const fallback = st.vm.sources.includes("libvirt")
            ? "guest open/close comes from libvirt's live XML instead"
            : "guest open/close of its ports cannot be watched (VMs starting and stopping and their ports still are)";
          this.#noteOnce(`${vmLabel(st.vm)}: no QMP socket answered (${failures.join("; ")}); ${fallback}; retrying every ${Math.round(this.#o.qmpRetryMs / 1000)} s`);
        }
        return;
      }
      st.session = session;
      session.onEvent((ev) => this.#onQmpEvent(st, session, ev));
      this.#enqueue(st, () => this.#refresh(st, null));
    });
  }

  /** Polls the VM's QMP view and applies it; a failed poll drops the session (QEMU gone, or the socket closed). */
  async #refresh(st: VmState, eventOwned: string | null): Promise<void> {
    const session = st.session;
    if (!session) return;
    let view: QmpView;
    try {
      view = await session.view();
    } catch (err) {
      session.close();
      if (st.session === session) {
        st.session = null;
        st.retryAt = this.#o.now() + this.#o.qmpRetryMs;
        if (err instanceof QmpPeerError) {
          // Not QEMU, or not behaving like it: asking again would only repeat this.
          st.retryAt = Infinity;
          for (const [key, p] of st.ports) st.ports.set(key, { ...p, guestOpen: null, openVia: null });
          this.#noteOnce(`${vmLabel(st.vm)}: QMP peer at ${session.path} dropped: ${err.message}; the guest open/close state of its ports is unknown from now on`);
        }
      }
      return;
    }
    if (st.session !== session || st.gone || this.#closed) return;
    // Without QOM's device list (an old QEMU), the ports known so far stand and only their chardev state is new.
    const known = view.devices === null ? { ...st.vm, ports: [...st.ports.values()] } : st.vm;
    const ports = applyQmpView(known, view).ports;
    // Ports with an id get VSERPORT_CHANGE: once their open state is known it follows the events, not the poll,
    // so a change is reported once, by its event. `eventOwned` is the port whose event is being handled.
    const pollOwns = (p: HostPort) =>
      p.id === null || (p.id !== eventOwned && !st.eventsPending.has(p.id) && (st.ports.get(_portKey(p))?.guestOpen ?? null) === null);
    this.#applyPorts(st, ports, "qmp-poll", "qmp-poll", pollOwns);
    st.primed = true;
    if (view.devices !== null) st.hadView = true;
  }

  /**
   * Makes `next` the VM's port list: ports missing are reported removed, new ones added (and opened, when the
   * guest has them open already); open-state changes of the ports `pollOwns` accepts are reported with `openVia`.
   */
  #applyPorts(st: VmState, next: readonly HostPort[], via: Via, openVia: Via, pollOwns: (p: HostPort) => boolean): void {
    const quiet = !st.primed;
    const byKey = new Map(next.map((p) => [_portKey(p), p]));
    for (const [key, old] of [...st.ports]) {
      if (byKey.has(key)) continue;
      st.ports.delete(key);
      if (!quiet) this.#emitPort(st, "port-removed", old, via);
    }
    for (const [key, p] of byKey) {
      const old = st.ports.get(key);
      const owned = pollOwns(p);
      if (!old) {
        const open = owned ? p.guestOpen : null;
        st.ports.set(key, { ...p, guestOpen: open, openVia: open === null ? null : openVia, fresh: !quiet && open === null });
        if (quiet) continue;
        this.#emitPort(st, "port-added", p, via);
        if (open === true) this.#emitPort(st, "guest-opened", p, openVia);
        continue;
      }
      const open = owned ? p.guestOpen : null;
      const t: TrackedPort = { ...p, guestOpen: old.guestOpen, openVia: old.openVia, fresh: old.fresh };
      if (open !== null && open !== old.guestOpen) {
        // A state learned for the first time is not a change, except for a port just reported as added.
        if (!quiet && (old.guestOpen !== null || (old.fresh && open))) this.#emitPort(st, open ? "guest-opened" : "guest-closed", p, openVia);
        t.guestOpen = open;
        t.openVia = openVia;
      }
      if (open !== null) t.fresh = false;
      st.ports.set(key, t);
    }
  }

  #onQmpEvent(st: VmState, session: QmpWatchSession, ev: QmpEvent): void {
    if (st.session !== session) return;
    if (this.#flooded(st, session)) return;
    if (ev.event === "DEVICE_DELETED") {
      const id = _short(ev.data.device);
      const path = _short(ev.data.path);
      if (path !== null) session.forget(path);
      this.#enqueue(st, () => {
        // An id-less port's QOM path is /machine/peripheral-anon/device[N]: only a poll can tell which it was.
        const port = id === null ? undefined : _entryById(st.ports, id);
        if (port) {
          st.ports.delete(port[0]);
          this.#emitPort(st, "port-removed", port[1], "qmp-event");
        } else if (path?.startsWith("/machine/peripheral-anon/")) {
          return this.#refresh(st, null);
        }
      });
      return;
    }
    if (ev.event !== "VSERPORT_CHANGE") return;
    const id = _short(ev.data.id);
    const open = ev.data.open;
    if (id === null || typeof open !== "boolean") return;
    // One queued handler per id: a later event only updates the state it will handle.
    const queued = st.eventsPending.has(id);
    if (!queued && st.eventsPending.size >= maxPendingIds(st.ports.size)) {
      // Events for ever more ids that are not ports (each asks for a poll) pile up faster than they are handled.
      this.#drop(st, session, `events for over ${maxPendingIds(st.ports.size)} unhandled device ids at once`);
      return;
    }
    st.eventsPending.set(id, open);
    if (queued) return;
    this.#enqueue(st, async () => {
      const open = st.eventsPending.get(id);
      st.eventsPending.delete(id);
      if (open === undefined) return;
      let entry = _entryById(st.ports, id);
      // A port hot-plugged since the last poll: learn its name first.
      if (!entry) {
        await this.#refresh(st, id);
        entry = _entryById(st.ports, id);
      }
      const port: TrackedPort = entry?.[1] ?? { ...hostPortWithId(id), openVia: null, fresh: false };
      if (port.kind === "console") return; // a virtconsole is "open" whenever the driver is loaded
      if (port.guestOpen === open) {
        // The late event of a change a poll already reported says nothing new; a repeat of an event does.
        if (port.openVia === "qmp-event") this.#emitPort(st, open ? "guest-opened" : "guest-closed", port, "qmp-event", true);
      } else {
        this.#emitPort(st, open ? "guest-opened" : "guest-closed", port, "qmp-event");
      }
      if (entry) st.ports.set(entry[0], { ...port, guestOpen: open, openVia: "qmp-event", fresh: false });
    });
  }

  /**
   * Counts the event in the VM's one-second window; a peer over the limit is dropped: its session closed and not
   * retried, one note, and the guest state of the VM's ports unknown from then on.
   */
  #flooded(st: VmState, session: QmpWatchSession): boolean {
    const now = this.#o.now();
    const w = st.eventWindow;
    if (now - w.start >= 1000 || now < w.start) {
      w.start = now;
      w.count = 0;
    }
    w.count++;
    const limit = maxEventsPerSecond(st.ports.size);
    if (w.count <= limit) return false;
    this.#drop(st, session, `over ${limit} events within 1 s (QEMU sends at most one VSERPORT_CHANGE per port per second)`);
    return true;
  }

  /** Drops a misbehaving QMP peer for good: session closed and not retried, one note, guest state unknown. */
  #drop(st: VmState, session: QmpWatchSession, why: string): void {
    session.close();
    st.session = null;
    st.retryAt = Infinity;
    st.eventsPending.clear();
    for (const [key, p] of st.ports) st.ports.set(key, { ...p, guestOpen: null, openVia: null });
    this.#noteOnce(
      `${vmLabel(st.vm)}: dropped the QMP peer at ${session.path}: it floods (${why}); the guest open/close state of its ports is unknown from now on`,
    );
  }

  #stopped(st: VmState): void {
    st.gone = true;
    this.#vms.delete(st.key);
    st.session?.close();
    st.session = null;
    for (const p of st.ports.values()) this.#emitPort(st, "port-removed", p, "proc");
    this.#emitVm(st, "vm-stopped", st.vm.sources.includes("cmdline") ? "proc" : "libvirt");
  }

  #emitVm(st: VmState, event: "vm-started" | "vm-stopped", via: Via): void {
    if (this.#closed) return;
    this.#o.emit({ side: "host", event, vm: st.vm.name, pid: st.vm.pid, port: null, id: null, path: null, via });
  }

  #emitPort(st: VmState, event: HostChange["event"], p: HostPort, via: Via, coalesced = false): void {
    if (this.#closed) return;
    const path = p.backend === "unix" ? p.path : null;
    this.#o.emit({ side: "host", event, vm: st.vm.name, pid: st.vm.pid, port: p.name, id: p.id, path, via, ...(coalesced && { coalesced }) });
  }

  #noteOnce(text: string): void {
    if (this.#notes.has(text)) return;
    this.#notes.add(text);
    this.#o.note(text);
  }
}

/**
 * Events per second a QMP peer may send before it is dropped as flooding. QEMU rate-limits the events a guest can
 * trigger (VSERPORT_CHANGE among them) to one per second per source, so a real QEMU stays far below this even
 * while every port of a large VM changes and devices are unplugged in bulk.
 */
export function maxEventsPerSecond(ports: number): number {
  return 1000 + 4 * ports;
}

/**
 * Device ids with an event waiting to be handled, at most. Events for a real VM's ports are one entry per port;
 * ids it does not have come only from hot-plug, a few at a time.
 */
export function maxPendingIds(ports: number): number {
  return 256 + 2 * ports;
}

function hostPortWithId(id: string): HostPort {
  return { name: null, kind: "serial", id, chardev: null, bus: null, nr: null, backend: null, qemuBackend: null, path: null, address: null, mode: null, reconnectMs: null, guestOpen: null, held: null };
}

/**
 * A device id or QOM path from an event, or null: QEMU's are short, and one of megabytes (up to the QMP line
 * bound) must not be kept per pending event or printed per line.
 */
function _short(v: unknown): string | null {
  return typeof v === "string" && v.length <= 4096 ? v : null;
}

/** The tracked port with device id `id`: a port with an id is keyed by it (see _portKey), so no scan is needed. */
function _entryById(ports: Map<string, TrackedPort>, id: string): [string, TrackedPort] | undefined {
  const key = `id:${id}`;
  const p = ports.get(key);
  return p === undefined ? undefined : [key, p];
}

/** A VM's identity across rounds: its pid, else (libvirt without a pid) its name or uuid. */
function _vmKey(vm: HostVm): string {
  if (vm.pid !== null) return `pid:${vm.pid}`;
  return vm.name !== null ? `name:${vm.name}` : `uuid:${vm.uuid ?? "?"}`;
}

/** A port's identity across rounds and sources: its device id, else its name, else its chardev. */
function _portKey(p: HostPort): string {
  if (p.id !== null) return `id:${p.id}`;
  if (p.name !== null) return `name:${p.name}`;
  return `chardev:${p.chardev ?? "?"}:${p.nr ?? "?"}`;
}
