import * as fs from "node:fs";
import type { Context } from "../context.ts";
import { VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { PortDevice } from "../guest/port-device.ts";
import { openPortFd } from "../guest/port-open.ts";
import { findHolders } from "../proc.ts";
import { checkAutologin, writeAutologinProgram } from "./autologin.ts";
import type { RespawnPolicy } from "./backoff.ts";
import { spawnGetty } from "./process.ts";
import { findGetty, gettyArgv, programName, type ProgramProbe, systemProbe } from "./program.ts";
import { checkPty, servePortGetty } from "./pty-getty.ts";
import { supervise } from "./supervise.ts";
import { type GettyTarget, gettyTargets } from "./targets.ts";

export interface GettyOptions {
  /** Log this user in without a password. Default: ask for a name and password. */
  autologin?: string;
  /** Allow `autologin` to be root (uid 0). Default false. */
  allowRoot?: boolean;
  /** TERM for the sessions. Default "vt100". */
  term?: string;
  /** Respawn schedule. Default: see RespawnBackoff. */
  policy?: RespawnPolicy;
  /** How the getty program is found. Default: the real system. */
  probe?: ProgramProbe;
  /** Stops the gettys; default: SIGTERM, SIGINT or SIGHUP. */
  stop?: AbortSignal;
  /** Skip the check that we run as root (tests). Default false. */
  allowNonRoot?: boolean;
  /** Accept any file as a port, without the virtio-serial check (tests on a fixture tree). Default false. */
  anyDevice?: boolean;
}

/** A port ready to serve: a console tty checked free, or a serial port held open. */
type Prepared = { target: Extract<GettyTarget, { kind: "console" }> } | { target: Extract<GettyTarget, { kind: "serial" }>; dev: PortDevice };

/**
 * `vmchan getty [PORT...]`: a getty on each console port (or the ports named), respawned when it
 * exits, until SIGTERM, SIGINT or SIGHUP (exit 0). A serial port gets its getty on a PTY, one per
 * host session. Errors before anything runs (no ports, no getty, a busy port) fail at once.
 */
export async function getty(ctx: Context, specs: readonly string[], options: GettyOptions = {}): Promise<number> {
  const log = (line: string) => ctx.err(line + "\n");
  const term = options.term ?? "vt100";
  if (!/^[\w.+-]+$/.test(term)) throw new VmchanError(`--term "${term}" is not a terminal type name`, { code: ExitCode.usage });
  if (options.autologin !== undefined) checkAutologin(options.autologin, { allowRoot: options.allowRoot, root: ctx.root });
  const targets = gettyTargets(specs, ctx.root, log);
  const program = findGetty(options.probe ?? systemProbe(ctx.env));
  if (!options.allowNonRoot && process.getuid?.() !== 0)
    throw new VmchanError("cannot run a getty: it must run as root (login switches to the user who logs in)", {
      code: ExitCode.permission,
      hint: "run it as root, e.g. from init, a systemd unit or /etc/inittab",
    });

  const prepared: Prepared[] = [];
  let autologin: { path: string; remove: () => void } | null = null;
  const owned = new AbortController();
  const stop = options.stop ?? owned.signal;
  const onSignal = () => owned.abort();
  const signals = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
  if (!options.stop) for (const s of signals) process.on(s, onSignal);
  try {
    for (const target of targets) prepared.push(prepare(target, ctx.root, options.anyDevice ?? false));
    if (options.autologin !== undefined && program.kind === "busybox") autologin = writeAutologinProgram(options.autologin);
    const args = { term, autologin: options.autologin, loginProgram: autologin?.path };
    log(
      `vmchan: ${programName(program)} on ${prepared.map((p) => (p.target.kind === "console" ? p.target.tty : `"${p.target.label}" (through a PTY)`)).join(", ")}` +
        (options.autologin ? `, logging in "${options.autologin}" automatically` : ""),
    );
    const errors: unknown[] = [];
    await Promise.all(
      prepared.map(async (p) => {
        try {
          if ("dev" in p)
            await servePortGetty(p.dev, { label: p.target.label, argv: gettyArgv(program, { ...args, tty: "-" }), term, stop, policy: options.policy, log });
          else await supervise({ label: p.target.tty, start: () => spawnGetty(gettyArgv(program, { ...args, tty: p.target.tty })), stop, policy: options.policy, log });
        } catch (err) {
          errors.push(err);
          // The others keep serving; the error is reported when the last one ends.
          if (prepared.length > 1 && err instanceof VmchanError) log(`vmchan: ${err.message}`);
        }
      }),
    );
    if (errors.length > 0) throw errors[0];
    return ExitCode.ok;
  } finally {
    if (!options.stop) for (const s of signals) process.off(s, onSignal);
    for (const p of prepared) if ("dev" in p) p.dev.close();
    autologin?.remove();
  }
}

/** Opens a serial port for the whole run; checks a console tty exists and no one else uses it. */
function prepare(target: GettyTarget, root: string, anyDevice: boolean): Prepared {
  if (target.kind === "serial") {
    checkPty(target.label);
    return { target, dev: PortDevice.open(target.path, target.label, { root, follow: false, anyDevice, fileAddress: false }) };
  }
  // An hvc console only (never a file or another device), opened with O_NOCTTY: checking must not make it our controlling terminal.
  fs.closeSync(openPortFd(target.path, target.label, { root, anyDevice, fileAddress: false }));
  // /proc names the device as the guest sees it, without the root prefix.
  const device = `/dev/${target.tty}`;
  const holders = findHolders(root, [device]).holders.get(device) ?? [];
  if (holders.length > 0)
    throw new VmchanError(`cannot run a getty on ${target.tty}: it is in use by ${holders.map((h) => `pid ${h.pid} (${h.command})`).join(", ")}`, {
      code: ExitCode.busy,
      hint: "a console takes one getty; stop the other one first",
    });
  return { target };
}
