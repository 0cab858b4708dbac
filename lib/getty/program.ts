import * as fs from "node:fs";
import { basename } from "node:path";
import { VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { childEnv } from "../runtime-env.ts";

/** The getty vmchan runs: util-linux agetty, or busybox's getty applet. */
export type GettyProgram =
  | { kind: "agetty"; path: string; /** util-linux or busybox `setsid`, to give agetty the PTY as its controlling tty. */ setsid: string | null }
  | { kind: "busybox"; /** How to run the applet: a `getty` link to busybox, or `busybox getty`. */ argv: string[] };

/** What program detection looks at; tests pass a fake. */
export interface ProgramProbe {
  /** The path of the executable `name` in the search path, or null. */
  which(name: string): string | null;
  /** The path with symlinks resolved (the path itself when it cannot be resolved). */
  realpath(path: string): string;
  /** Whether the busybox at `path` has the applet `name`. */
  hasApplet(path: string, name: string): boolean;
  exists(path: string): boolean;
}

/** The program busybox getty and agetty run to log a user in. */
export const LOGIN_PROGRAM = "/bin/login";

/** Where getty programs live, after $PATH (they are often in sbin, which a user's PATH may lack). */
const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Probes the real system. */
export function systemProbe(env: Readonly<Record<string, string | undefined>> = process.env): ProgramProbe {
  const dirs = [...new Set([...(env.PATH ?? "").split(":").filter((d) => d.startsWith("/")), ...SYSTEM_DIRS])];
  const applets = new Map<string, Set<string>>();
  return {
    which(name) {
      for (const dir of dirs) {
        const path = `${dir}/${name}`;
        try {
          fs.accessSync(path, fs.constants.X_OK);
          if (fs.statSync(path).isFile()) return path;
        } catch {
          // not here
        }
      }
      return null;
    },
    realpath(path) {
      try {
        return fs.realpathSync(path);
      } catch {
        return path;
      }
    },
    hasApplet(path, name) {
      let list = applets.get(path);
      if (!list) {
        const r = Bun.spawnSync([path, "--list"], { stdout: "pipe", stderr: "ignore", stdin: "ignore", env: childEnv() });
        list = new Set(r.success ? r.stdout.toString().split("\n").map((s) => s.trim()) : []);
        applets.set(path, list);
      }
      return list.has(name);
    },
    exists(path) {
      try {
        fs.statSync(path);
        return true;
      } catch {
        return false;
      }
    },
  };
}

/**
 * Picks the getty: agetty when present, else busybox getty (a `getty` that is busybox, or the busybox
 * binary's applet). Fails with ExitCode.notFound, saying what to install, when there is none or no
 * /bin/login for it to run.
 */
export function findGetty(probe: ProgramProbe): GettyProgram {
  let program: GettyProgram | null = null;
  const agetty = probe.which("agetty");
  if (agetty) program = { kind: "agetty", path: agetty, setsid: probe.which("setsid") };
  if (!program) {
    const getty = probe.which("getty");
    if (getty && basename(probe.realpath(getty)) === "busybox") program = { kind: "busybox", argv: [getty] };
  }
  if (!program) {
    const busybox = probe.which("busybox");
    if (busybox && probe.hasApplet(busybox, "getty")) program = { kind: "busybox", argv: [busybox, "getty"] };
  }
  if (!program)
    throw new VmchanError("cannot start a getty: neither agetty nor busybox getty is installed", {
      code: ExitCode.notFound,
      hint: "install util-linux (agetty), e.g. 'apt-get install util-linux' or 'apk add agetty', or busybox",
    });
  if (!probe.exists(LOGIN_PROGRAM))
    throw new VmchanError(`cannot start a getty: ${LOGIN_PROGRAM}, which it runs to log users in, is missing`, {
      code: ExitCode.notFound,
      hint: "install login (the 'login' or 'shadow' package), or link busybox's login applet there",
    });
  return program;
}

/** The getty's name for messages. */
export function programName(program: GettyProgram): string {
  return program.kind === "agetty" ? "agetty" : "busybox getty";
}

/** What one getty is asked to do. */
export interface GettyArgs {
  /** The tty, relative to /dev ("hvc0"), or "-" for the PTY already on stdin. */
  tty: string;
  /** TERM for the session. */
  term: string;
  /** agetty: log this user in without asking (`-a USER`). */
  autologin?: string;
  /** busybox: run this program instead of asking for a name (`-n -l PROGRAM`); it runs `login -f USER`. */
  loginProgram?: string;
}

/** Baud rates agetty cycles through on BREAK; meaningless on a virtio tty but part of its usual command line. */
const AGETTY_BAUDS = "115200,57600,38400,9600";

/**
 * The getty's command line. agetty: `agetty -L --noclear --keep-baud [-a USER] TTY BAUDS TERM`, and on a
 * PTY (`-`) under `setsid -c`, because agetty does not make stdin its controlling tty itself.
 * busybox: `getty -L [-n -l PROGRAM] 0 TTY TERM` (baud 0 keeps the speed; on `-` it takes the
 * controlling tty itself).
 */
export function gettyArgv(program: GettyProgram, args: GettyArgs): string[] {
  if (program.kind === "agetty") {
    const wrap = args.tty === "-" && program.setsid ? [program.setsid, "-c"] : [];
    const auto = args.autologin ? ["-a", args.autologin] : [];
    return [...wrap, program.path, "-L", "--noclear", "--keep-baud", ...auto, args.tty, AGETTY_BAUDS, args.term];
  }
  const auto = args.loginProgram ? ["-n", "-l", args.loginProgram] : [];
  return [...program.argv, "-L", ...auto, "0", args.tty, args.term];
}
