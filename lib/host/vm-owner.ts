import * as fs from "node:fs";
import { readPasswdFile } from "../passwd.ts";
import type { VmOwner } from "./model.ts";
import { sameSocketFile, socketFileAt, type ProcSockets } from "./proc-sockets.ts";

const passwdCache = new Map<string, Map<number, string>>();

/** uid -> user name from a passwd file (first entry wins, as getpwuid does); empty when unreadable or too large. */
export function readPasswd(file: string): Map<number, string> {
  const cached = passwdCache.get(file);
  if (cached) return cached;
  const users = new Map<number, string>();
  try {
    for (const e of readPasswdFile(file)) if (!users.has(e.uid)) users.set(e.uid, e.name);
  } catch {
    // No passwd file (a container, a fixture), or a hostile one: owners are shown by uid only.
  }
  passwdCache.set(file, users);
  return users;
}

/** The effective uid QEMU runs as (from /proc/PID/status) and its user name; null when unreadable. */
export function readOwner(procRoot: string, pid: number, passwdFile = "/etc/passwd"): VmOwner | null {
  let status: string;
  try {
    status = fs.readFileSync(`${procRoot}/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  // "Uid:\treal\teffective\tsaved\tfs": the effective uid is whose rights QEMU has.
  const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
  if (!m) return null;
  const uid = Number(m[2]);
  return { uid, user: readPasswd(passwdFile).get(uid) ?? null };
}

/** "user "NAME" (uid N)" or "uid N". */
export function ownerLabel(owner: VmOwner): string {
  return owner.user !== null ? `user "${owner.user}" (uid ${owner.uid})` : `uid ${owner.uid}`;
}

/**
 * Accounts that run VMs for a system service (libvirt, distribution QEMU packages). Sending to a VM
 * owned by anyone else but ourselves gets a warning: that user could have started any process under
 * that name.
 */
export const SERVICE_ACCOUNTS: ReadonlySet<string> = new Set(["qemu", "libvirt-qemu", "kvm", "libvirt"]);

/** Whether a VM with this owner deserves a warning before `euid` sends to it: not ours, not root's, not a service account's. */
export function ownerSurprises(owner: VmOwner | null, euid: number): boolean {
  if (owner === null) return false;
  return owner.uid !== euid && owner.uid !== 0 && !(owner.user !== null && SERVICE_ACCOUNTS.has(owner.user));
}

/**
 * Why the socket file at `path` is not to be trusted as the VM's, or null. The rule: when QEMU's own
 * sockets could be read, `path` must be a name one of QEMU's listening sockets is bound to, and with
 * sock_diag the file itself must be the one it is bound to (same device and inode); in every case its
 * owner must be the VM's user or root. `fromQmp`: the path came from QMP alone, that is from the
 * VM's QEMU, which a guest that broke out of it controls; such a path needs QEMU's fds to confirm it.
 * A missing file says nothing (connecting will say "no socket").
 */
export function socketDistrust(
  path: string,
  owner: VmOwner | null,
  options: { sockets?: ProcSockets; passwdFile?: string; fromQmp?: boolean } = {},
): string | null {
  const { sockets } = options;
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return null;
  }
  if (!st.isSocket()) return `${path} is not a socket`;
  if (sockets && sockets.source === "sock_diag") {
    const file = socketFileAt(path);
    const bound = file !== null && [...sockets.listeningFiles.values()].some((f) => sameSocketFile(f, file));
    if (!bound) return `the socket file at ${path} is not one QEMU listens on (it was replaced, or another process made it)`;
  } else if (sockets && !sockets.listening.has(path) && (sockets.forgedFds.length === 0 || options.fromQmp)) {
    // From the text, a forged fd might be the listener: then only the connection itself can tell.
    return `no socket of QEMU's listens on ${path} (it was replaced, or another process made it)`;
  } else if (!sockets && options.fromQmp) {
    return `${path} was reported by QMP alone, which the VM's QEMU controls, and QEMU's own sockets could not be read to confirm it`;
  }
  if (owner !== null && st.uid !== owner.uid && st.uid !== 0) {
    const users = readPasswd(options.passwdFile ?? "/etc/passwd");
    const who = users.get(st.uid);
    return `the socket file at ${path} belongs to ${who !== undefined ? `user "${who}" (uid ${st.uid})` : `uid ${st.uid}`}, not to the VM's ${ownerLabel(owner)} or root`;
  }
  return null;
}
