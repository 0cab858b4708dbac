import { type Context, under } from "../context.ts";
import { clipText, escapeText } from "../escape.ts";
import { FdSink } from "../fd-stream.ts";
import { ExitCode } from "../exit-codes.ts";
import { defaultLibvirtDirs } from "../host/libvirt.ts";
import { vmSelectorOf, vmsMatching } from "../host/resolve-vm-port.ts";
import type { HostVm } from "../host/model.ts";
import { formatHumanLine, formatJsonLine, type UntimedEvent, type WatchEvent } from "./event.ts";
import { GuestWatcher } from "./guest-watcher.ts";
import { HostWatcher, type HostWatcherOptions } from "./host-watcher.ts";

/** Options of `portsWatch`. */
export interface PortsWatchOptions {
  /** One JSON object per line (schema WatchEvent) instead of human lines. Default false. */
  json?: boolean;
  /** Host side: only the VM with this name or pid (it may start later); the guest side is not watched then. */
  vm?: string;
  /** Write events to this file descriptor (a closed pipe ends quietly, code 141). Default: `ctx.out`. */
  outFd?: number;
  /** How often sysfs and debugfs are read in a guest. Default 500 ms. */
  guestIntervalMs?: number;
  /** How often /proc, libvirt and each held QMP session are polled on a host. Default 1000 ms. */
  hostIntervalMs?: number;
  /** Ends the watch with exit 0 when aborted. Default: SIGINT and SIGTERM do. */
  signal?: AbortSignal;
  /** Milliseconds clock for event times. Default Date.now. */
  now?: () => number;
  /** Host discovery and QMP hooks for tests. Default: the real ones. */
  host?: Pick<HostWatcherOptions, "discover" | "qmpConnect" | "timeoutMs" | "qmpRetryMs">;
}

/**
 * `vmchan ports watch`: reports, one line each as they happen, ports added and removed and host connects and
 * disconnects in this guest, and VMs starting and stopping, their ports, and guests opening and closing them on
 * this host. Runs until SIGINT or SIGTERM (exit 0); never opens a port.
 */
export async function portsWatch(ctx: Context, options: PortsWatchOptions = {}): Promise<number> {
  const now = options.now ?? Date.now;
  const guestMs = options.guestIntervalMs ?? 500;
  const hostMs = options.hostIntervalMs ?? 1000;
  let finish!: (outcome: { code: number } | { error: unknown }) => void;
  const finished = new Promise<{ code: number } | { error: unknown }>((resolve) => (finish = resolve));
  let done = false;
  const end = (outcome: { code: number } | { error: unknown }) => {
    if (done) return;
    done = true;
    finish(outcome);
  };

  // Each line is written as soon as it is known, in order; a reader that went away ends the watch.
  const sink = options.outFd === undefined ? null : new FdSink(options.outFd, "standard output");
  let writing: Promise<void> = Promise.resolve();
  const write = (text: string) => {
    if (done) return;
    if (!sink) return ctx.out(text);
    writing = writing.then(() => (done ? undefined : sink.write(Buffer.from(text)))).catch((error: unknown) => {
      end(error instanceof Error && "code" in error && error.code === ExitCode.brokenPipe ? { code: ExitCode.brokenPipe } : { error });
    });
  };
  const format = options.json ? formatJsonLine : formatHumanLine;
  const emit = (change: UntimedEvent) => write(format({ time: new Date(now()).toISOString(), ...change } as WatchEvent));
  const note = (text: string) => ctx.err(`vmchan: note: ${clipText(text)}\n`);

  const guest = options.vm === undefined ? new GuestWatcher(ctx.root, { now }) : null;
  const matches = (vm: HostVm) => options.vm === undefined || vmsMatching([vm], vmSelectorOf(options.vm)).length > 0;
  const host = new HostWatcher({
    ...options.host,
    emit,
    note,
    now,
    procRoot: under(ctx.root, "/proc"),
    libvirtDirs: defaultLibvirtDirs(ctx.env).map((d) => under(ctx.root, d)),
    filter: matches,
  });

  const onSignal = () => end({ code: ExitCode.ok });
  const signal = options.signal;
  if (signal) signal.addEventListener("abort", onSignal, { once: true });
  else {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    if (signal?.aborted) return ExitCode.ok;
    const pollGuest = () => {
      if (!guest || done) return;
      const { changes, notes } = guest.poll();
      notes.forEach(note);
      changes.forEach(emit);
    };
    pollGuest();
    await host.tick();
    if (!done) ctx.err(`vmchan: ${escapeText(_watching(guest, host, options.vm, guestMs, hostMs))}\n`);

    // One timer for both sides: under TCG each wake-up of the runtime costs about as much as a poll, so the host
    // round rides on every n-th guest poll instead of waking the process on its own.
    const stepMs = guest ? Math.min(guestMs, hostMs) : hostMs;
    const hostEvery = Math.max(1, Math.round(hostMs / stepMs));
    let step = 0;
    let hostBusy = false;
    const loop = () => {
      step++;
      pollGuest();
      if (step % hostEvery === 0 && !hostBusy && !done) {
        hostBusy = true;
        host.tick().then(
          () => void (hostBusy = false),
          (error: unknown) => end({ error }),
        );
      }
      if (!done) timer = setTimeout(loop, stepMs);
    };
    timer = setTimeout(loop, stepMs);

    const outcome = await finished;
    if ("error" in outcome) throw outcome.error;
    return outcome.code;
  } finally {
    done = true;
    clearTimeout(timer);
    host.close();
    guest?.close();
    if (signal) signal.removeEventListener("abort", onSignal);
    else {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    await writing;
  }
}

/** The one line that says what is watched, and what cannot be. */
function _watching(guest: GuestWatcher | null, host: HostWatcher, vm: string | undefined, guestMs: number, hostMs: number): string {
  const secs = (ms: number) => `${ms / 1000} s`;
  const parts: string[] = [];
  if (guest) {
    if (guest.isGuest) {
      const n = guest.portCount;
      const conn = guest.debugfsProblem === null ? "host connections from debugfs" : "host connections not watchable";
      parts.push(`${n} guest port${n === 1 ? "" : "s"} (sysfs every ${secs(guestMs)}, ${conn})`);
    } else {
      parts.push(`guest ports (none: /sys/class/virtio-ports is absent, checked every ${secs(guestMs)})`);
    }
  }
  const vms = host.vms.length;
  const how = `/proc every ${secs(hostMs)}, QMP events where a socket answers`;
  if (vm !== undefined) parts.push(`VM "${vm}" (${vms > 0 ? "running" : "not running yet"}; ${how})`);
  else parts.push(`${vms} QEMU VM${vms === 1 ? "" : "s"} on this host (${how})`);
  return `watching ${parts.join(" and ")}; Ctrl-C or SIGTERM ends it`;
}
