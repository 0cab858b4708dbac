import * as fs from "node:fs";
import { errnoOf, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { findHolders } from "../proc.ts";

/** The error for a failed open of a port device: what failed, why, and what to do. */
export function portOpenError(err: unknown, path: string, label: string, root: string): VmchanError {
  const what = `cannot open port "${label}"`;
  switch (errnoOf(err)) {
    case "ENOENT":
      return new VmchanError(`${what}: ${path} does not exist`, {
        code: ExitCode.notFound,
        hint: "the port may have been unplugged; see 'vmchan ports list'",
      });
    case "EBUSY": {
      const held = findHolders(root, [path]).holders.get(path) ?? [];
      const by = held.length ? `, held by ${held.map((h) => `pid ${h.pid} (${h.command})`).join(", ")}` : "";
      return new VmchanError(`${what}: busy${by}`, {
        code: ExitCode.busy,
        hint: "only one process may open a port at a time; stop the holder first",
      });
    }
    case "EACCES":
    case "EPERM":
      return new VmchanError(`${what}: permission denied (${describeMode(path)})`, {
        code: ExitCode.permission,
        hint: permissionHint(path, label),
      });
    case "ENXIO":
      return new VmchanError(`${what}: ${path} is a console port, which is opened as /dev/hvcN`, {
        code: ExitCode.usage,
        hint: "use its hvc device (see the KIND column of 'vmchan ports list')",
      });
    case "ENODEV":
      return new VmchanError(`${what}: no console port is behind ${path}`, {
        code: ExitCode.notFound,
        hint: "see 'vmchan ports list' for the console ports and their hvc devices",
      });
    default:
      return new VmchanError(`${what}: ${(err as Error).message}`, { cause: err });
  }
}

function describeMode(path: string): string {
  try {
    const st = fs.statSync(path);
    return `${path} is owned by uid ${st.uid} gid ${st.gid}, mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}`;
  } catch {
    return path;
  }
}

function groupName(gid: number): string | null {
  try {
    for (const line of fs.readFileSync("/etc/group", "utf8").split("\n")) {
      const [name, , id] = line.split(":");
      if (name && Number(id) === gid) return name;
    }
  } catch {
    // no /etc/group in a minimal guest
  }
  return null;
}

function permissionHint(path: string, label: string): string {
  try {
    const st = fs.statSync(path);
    const group = st.gid === 0 ? null : groupName(st.gid);
    if (group && st.mode & 0o060) return `add yourself to group "${group}" (usermod -aG ${group} $USER), then log in again`;
  } catch {
    // fall through to the udev rule
  }
  const name = /^[\w.-]+$/.test(label) ? label : "NAME";
  return `run as root, or grant a group with a udev rule: SUBSYSTEM=="virtio-ports", ATTR{name}=="${name}", GROUP="vmchan", MODE="0660"`;
}
