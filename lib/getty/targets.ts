import { under } from "../context.ts";
import { UsageError, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { listGuestPorts, noPortsReason } from "../guest/ports.ts";
import { resolveGuestPort } from "../guest/resolve.ts";
import type { GuestPort } from "../schema.ts";

/** Where one getty runs: a console port's tty directly, or a serial port through a PTY. */
export type GettyTarget =
  | { kind: "console"; label: string; /** /dev/hvcN (under the context root). */ path: string; /** "hvcN", as getty names it. */ tty: string }
  | { kind: "serial"; label: string; /** /dev/vportNpM (under the context root). */ path: string };

/**
 * The ports `vmchan getty` serves: the ones named (a name, hvcN, vportNpM or a /dev path), or with
 * none named every console port. A console whose hvc is unknown (debugfs unreadable) is skipped with
 * a warning; with no console at all, or none usable, the error says why and what to do.
 */
export function gettyTargets(specs: readonly string[], root: string, warn: (line: string) => void): GettyTarget[] {
  const targets = specs.length > 0 ? specs.map((s) => named(s, root)) : allConsoles(root, warn);
  const seen = new Set<string>();
  for (const t of targets) {
    if (seen.has(t.path)) throw new UsageError(`"${t.label}" is given twice (${t.path}): one getty per port`, "see 'vmchan getty --help'");
    seen.add(t.path);
  }
  return targets;
}

function named(spec: string, root: string): GettyTarget {
  const ref = resolveGuestPort(spec, root);
  const hvc = ref.path.match(/\/(hvc\d+)$/);
  if (hvc) return { kind: "console", label: ref.label, path: ref.path, tty: hvc[1]! };
  return { kind: "serial", label: ref.label, path: ref.path };
}

function allConsoles(root: string, warn: (line: string) => void): GettyTarget[] {
  const ports = listGuestPorts(root);
  if (ports.length === 0) {
    const { reason, hint } = noPortsReason(root);
    throw new VmchanError(`no console port for a getty: ${reason}`, { code: ExitCode.noPorts, hint });
  }
  const consoles = ports.filter((p) => p.kind === "console");
  if (consoles.length === 0) {
    const names = ports.map((p) => p.name ?? p.port);
    throw new VmchanError(`no console port for a getty: this guest's ports are all serial ports (${names.map((n) => `"${n}"`).join(", ")})`, {
      code: ExitCode.notFound,
      hint: `name one to serve it through a PTY, e.g. 'vmchan getty ${names[0]}', or give the VM a '-device virtconsole'`,
    });
  }
  const known = consoles.filter((p): p is GuestPort & { console: string } => p.console !== null);
  for (const p of consoles)
    if (p.console === null) warn(`vmchan: skipping console port "${p.name ?? p.port}": its /dev/hvcN is unknown (debugfs is not readable)`);
  if (known.length === 0)
    throw new VmchanError(`no console port for a getty: the /dev/hvcN of ${consoles.map((p) => `"${p.name ?? p.port}"`).join(", ")} is unknown (debugfs is not readable)`, {
      code: ExitCode.notFound,
      hint: "mount debugfs (mount -t debugfs none /sys/kernel/debug) as root, or name the tty: 'vmchan getty hvc0'",
    });
  return known.map((p) => ({ kind: "console", label: p.name ?? p.port, path: under(root, p.console), tty: p.console.replace(/^\/dev\//, "") }));
}
