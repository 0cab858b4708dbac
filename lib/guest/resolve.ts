import * as fs from "node:fs";
import { MAX_ATTRIBUTE, readFileBounded } from "../bounded-read.ts";
import { under } from "../context.ts";
import { didYouMean, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { listGuestPorts } from "./ports.ts";

/** A guest port ready to open: the device path and the label errors use. */
export interface GuestPortRef {
  path: string;
  label: string;
}

/**
 * Resolves a guest port spec: a name from sysfs (`org.example.log.0`), `vportNpM`, `hvcN`, or a `/dev/...` path.
 * Unknown names fail with the list of names and a did-you-mean.
 */
export function resolveGuestPort(spec: string, root = "/"): GuestPortRef {
  if (spec.startsWith("/")) {
    let label = spec;
    try {
      const real = fs.realpathSync(under(root, spec));
      const m = real.match(/\/(vport\d+p\d+)$/);
      const name = m ? readName(root, m[1]!) : null;
      if (name) label = name;
    } catch {
      // a missing path is reported by open(), with its errno
    }
    return { path: under(root, spec), label };
  }
  if (/^hvc\d+$/.test(spec)) return { path: under(root, `/dev/${spec}`), label: spec };
  if (/^vport\d+p\d+$/.test(spec)) return { path: under(root, `/dev/${spec}`), label: readName(root, spec) ?? spec };

  const ports = listGuestPorts(root);
  const port = ports.find((p) => p.name === spec);
  if (!port) {
    const names = ports.map((p) => p.name).filter((n): n is string => n !== null);
    const close = didYouMean(spec, names);
    const suggestion = close.length ? `did you mean "${close[0]}"? ` : "";
    throw new VmchanError(
      names.length
        ? `no port named "${spec}": this guest has ${names.map((n) => `"${n}"`).join(", ")}`
        : `no port named "${spec}": this guest has no named virtio-serial ports`,
      { code: ExitCode.notFound, hint: `${suggestion}see 'vmchan ports list'` },
    );
  }
  if (port.kind === "console") {
    if (!port.console)
      throw new VmchanError(`port "${spec}" is a console, and its /dev/hvcN is unknown (debugfs is not readable)`, {
        code: ExitCode.notFound,
        hint: "mount debugfs (mount -t debugfs none /sys/kernel/debug) as root, or give /dev/hvcN directly",
      });
    return { path: under(root, port.console), label: spec };
  }
  return { path: under(root, port.device), label: spec };
}

function readName(root: string, port: string): string | null {
  try {
    return readFileBounded(under(root, `/sys/class/virtio-ports/${port}/name`), MAX_ATTRIBUTE).trim() || null;
  } catch {
    return null;
  }
}
