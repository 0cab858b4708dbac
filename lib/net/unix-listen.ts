import * as fs from "node:fs";
import { dirname } from "node:path";
import type { SocketHandler, UnixSocketListener } from "bun";
import { errnoOf, UsageError, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";

/** sockaddr_un.sun_path holds 108 bytes including the final NUL. */
export const UNIX_PATH_MAX = 107;

/** Refuses a socket path the kernel cannot bind or connect to (too long, or with a NUL byte), before trying. */
export function checkUnixPath(path: string, label: string, action: "listen on" | "connect to"): void {
  if (path.includes("\0")) throw new UsageError(`cannot ${action} "${label}": the socket path contains a NUL byte`);
  const bytes = Buffer.byteLength(path);
  if (bytes > UNIX_PATH_MAX)
    throw new UsageError(
      `cannot ${action} "${label}": the socket path is ${bytes} bytes long, the limit is ${UNIX_PATH_MAX}`,
      "use a shorter path, for example under /run or /tmp",
    );
}

/** A listening unix socket at a path, and the identity (device, inode) of the file it made there. */
export interface UnixListening<T> {
  readonly listener: UnixSocketListener<T>;
  /** Stops listening and removes the socket file, but only if the path still names the socket this process bound. */
  close(): void;
}

/**
 * Listeners never let go of: the runtime's finalizer of a collected listener, like its stop(), unlinks whatever
 * is at the path by then. They are stopped only while the path is still theirs, and otherwise live to the exit.
 */
const held = new Set<UnixSocketListener<unknown>>();

/**
 * Listens on `path` with a socket file made mode 0600, and never removes or replaces anything it did not make.
 * A stale socket (nothing listens: connect is refused) owned by this user is replaced; any other thing at the
 * path (a file, a directory, a live socket, another user's socket) is refused and left alone. The directory must
 * not let other users replace what is bound there (world-writable without the sticky bit is refused), so the
 * socket file found at the path right after binding is this process's, and close() removes the path only while
 * it is still that file (the runtime's stop() unlinks the path by name: it is called only then).
 */
export async function listenUnix<T>(path: string, label: string, socket: SocketHandler<T>): Promise<UnixListening<T>> {
  checkUnixPath(path, label, "listen on");
  if (path.endsWith("/"))
    throw new UsageError(`cannot listen on "${label}": the socket path ends in "/"`, "name the socket file in the directory, for example DIR/vm.sock");
  const dir = dirname(path);
  checkDirectory(dir, label);
  await removeStaleSocket(path, label);
  let listener: UnixSocketListener<T>;
  const mask = process.umask(0o177); // the socket is created 0600: only its owner may connect
  try {
    listener = Bun.listen<T>({ unix: path, allowHalfOpen: true, socket });
  } catch (err) {
    throw listenError(err, path, label);
  } finally {
    process.umask(mask);
  }
  held.add(listener as UnixSocketListener<unknown>);
  const made = fs.lstatSync(path, { throwIfNoEntry: false });
  if (!made?.isSocket()) {
    // Something replaced the socket between bind and now (the directory check makes this another process of
    // this user, or root): leave it, and do not stop the listener, whose stop would unlink it.
    listener.unref?.();
    throw new VmchanError(`cannot listen on "${label}": ${path} was replaced by another process as it was bound; it is left alone`, {
      code: ExitCode.busy,
      hint: "stop what else uses this path, or choose another one",
    });
  }
  let closed = false;
  return {
    listener,
    close() {
      if (closed) return;
      closed = true;
      if (isSameSocket(path, made)) listener.stop(true); // unlinks the path, which is still our socket
      else listener.unref?.(); // the path names something else now: stop() would unlink it
    },
  };
}

/** Refuses a directory any user may write to without the sticky bit: anyone could replace the socket there. */
function checkDirectory(dir: string, label: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    throw directoryError(err, dir, label);
  }
  if (!st.isDirectory()) throw directoryError(Object.assign(new Error("not a directory"), { code: "ENOTDIR" }), dir, label);
  if ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0)
    throw new VmchanError(`cannot listen on "${label}": any user may write to ${dir} and it has no sticky bit, so another user could replace the socket`, {
      code: ExitCode.permission,
      hint: "use a directory only you (or your group) may write to, or a sticky one such as /tmp",
    });
}

/** Whether `path` is still the socket file described by `st` (same device and inode). */
function isSameSocket(path: string, st: fs.Stats): boolean {
  const now = fs.lstatSync(path, { throwIfNoEntry: false });
  return now !== undefined && now.isSocket() && now.dev === st.dev && now.ino === st.ino;
}

/** Unlinks `path` only if it is still the socket described by `st` (same device and inode). */
export function removeIfSame(path: string, st: fs.Stats): boolean {
  try {
    const now = fs.lstatSync(path);
    if (!now.isSocket() || now.dev !== st.dev || now.ino !== st.ino) return false;
    fs.unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}

const KIND = (st: fs.Stats) =>
  st.isDirectory() ? "a directory" : st.isFile() ? "a regular file" : st.isSymbolicLink() ? "a symbolic link" : st.isFIFO() ? "a fifo" : "a device or other file";

/** Clears `path` for a new socket: only a stale socket this user owns is removed. */
async function removeStaleSocket(path: string, label: string): Promise<void> {
  const what = `cannot listen on "${label}"`;
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (err) {
    const code = errnoOf(err);
    if (code === "ENOENT") return; // nothing there (a missing directory is reported when binding)
    if (code === "ENOTDIR") throw directoryError(err, dirname(path), label);
    if (code === "EACCES" || code === "EPERM")
      throw new VmchanError(`${what}: permission denied looking at ${path}`, { code: ExitCode.permission, hint: "choose a path in a directory you may use" });
    throw new VmchanError(`${what}: cannot look at ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isSocket())
    throw new VmchanError(`${what}: ${path} exists and is not a socket (it is ${KIND(st)}; it is left alone)`, {
      code: ExitCode.usage,
      hint: "choose another path",
    });
  const probe = await Bun.connect({ unix: path, socket: { data() {} } }).then(
    (s) => (s.terminate(), "alive" as const),
    (err: unknown) => errnoOf(err) ?? "failed",
  );
  if (probe === "alive")
    throw new VmchanError(`${what}: another process listens on ${path}`, { code: ExitCode.busy, hint: "stop it, or choose another path" });
  const owner = `owned by uid ${st.uid}, mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}`;
  if (probe === "EACCES" || probe === "EPERM")
    throw new VmchanError(`${what}: ${path} is a socket this user may not use (${owner}); it is left alone`, {
      code: ExitCode.permission,
      hint: "choose another path, or ask its owner to remove it",
    });
  if (probe !== "ECONNREFUSED")
    throw new VmchanError(`${what}: ${path} is a socket that answered neither yes nor no (${probe}); it is left alone`, {
      code: ExitCode.busy,
      hint: "choose another path",
    });
  // Stale: nothing listens. Only this user's own leftover is replaced.
  if (st.uid !== process.geteuid?.())
    throw new VmchanError(`${what}: ${path} is a stale socket ${owner}, not by this user; it is left alone`, {
      code: ExitCode.permission,
      hint: "its owner (or root, by hand) may remove it; or choose another path",
    });
  const now = fs.lstatSync(path, { throwIfNoEntry: false });
  if (!now) return;
  if (!now.isSocket() || now.dev !== st.dev || now.ino !== st.ino)
    throw new VmchanError(`${what}: ${path} changed while it was being replaced; it is left alone`, { code: ExitCode.busy, hint: "try again, or choose another path" });
  try {
    fs.unlinkSync(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return;
    throw directoryError(err, dirname(path), label);
  }
}

/** The error for a directory that cannot hold the socket (missing, not a directory, not writable). */
function directoryError(err: unknown, dir: string, label: string): VmchanError {
  const what = `cannot listen on "${label}"`;
  switch (errnoOf(err)) {
    case "ENOENT":
      return new VmchanError(`${what}: directory ${dir} does not exist`, { code: ExitCode.notFound, hint: "create it first, or choose another path" });
    case "ENOTDIR":
      return new VmchanError(`${what}: ${dir} is not a directory`, { code: ExitCode.notFound, hint: "choose another path" });
    case "EACCES":
    case "EPERM":
      return new VmchanError(`${what}: permission denied creating a socket in ${dir}`, {
        code: ExitCode.permission,
        hint: "choose a directory you may write to, or run as its owner",
      });
    case "EROFS":
      return new VmchanError(`${what}: ${dir} is on a read-only file system`, { code: ExitCode.permission, hint: "choose another path" });
    default:
      return new VmchanError(`${what}: cannot create a socket in ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** The error for a failed bind/listen (unix or TCP). */
export function listenError(err: unknown, where: string, label: string): VmchanError {
  const what = `cannot listen on "${label}"`;
  switch (errnoOf(err)) {
    case "EADDRINUSE":
      return new VmchanError(`${what}: ${where} is in use`, { code: ExitCode.busy, hint: "stop what listens there, or choose another port or path" });
    case "EACCES":
    case "EPERM":
      if (!/:\d+$/.test(where) || where.includes("/")) return directoryError(err, dirname(where), label); // a socket path, not HOST:PORT
      return new VmchanError(`${what}: permission denied on ${where}`, { code: ExitCode.permission, hint: "TCP ports below 1024 need root or CAP_NET_BIND_SERVICE" });
    case "EADDRNOTAVAIL":
      return new VmchanError(`${what}: ${where.replace(/:\d+$/, "")} is not an address of this host`, {
        code: ExitCode.notFound,
        hint: "listen on 127.0.0.1, on 0.0.0.0 for every address, or on one that 'ip addr' shows",
      });
    case "ENOENT":
    case "ENOTDIR":
      return directoryError(err, dirname(where), label);
    default:
      if (errnoOf(err) === undefined && /^Failed to listen/.test((err as Error).message ?? ""))
        return new VmchanError(`${what}: cannot resolve or use ${where}`, {
          code: ExitCode.notFound,
          hint: "give an IP address or a host name this host can resolve",
        });
      return new VmchanError(`${what}: ${(err as Error).message ?? String(err)}`, { cause: err });
  }
}
