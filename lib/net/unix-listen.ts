import * as fs from "node:fs";
import { dirname, join } from "node:path";
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
 * Listens on `path` with a socket file made mode 0600, and never removes or replaces anything it did
 * not make. A stale socket (nothing listens: connect is refused) owned by this user is replaced; any
 * other thing at the path (a file, a directory, a live socket, another user's socket) is refused and
 * left alone. The socket is bound under a private temporary name and then hard-linked into place,
 * which fails rather than overwrites if something appeared at the path meanwhile; and Bun's own
 * unlink at stop() then only hits the temporary name, so close() alone decides what is removed.
 */
export async function listenUnix<T>(path: string, label: string, socket: SocketHandler<T>): Promise<UnixListening<T>> {
  checkUnixPath(path, label, "listen on");
  await removeStaleSocket(path, label);
  const dir = dirname(path);
  let tmp: string;
  try {
    tmp = fs.mkdtempSync(join(dir, ".vmchan-"));
  } catch (err) {
    throw directoryError(err, dir, label);
  }
  const tmpSock = join(tmp, "s");
  let dirFd = -1;
  let listener: UnixSocketListener<T> | null = null;
  let made: fs.Stats;
  try {
    // The temporary name is longer than the path: bind it through /proc when it does not fit.
    let bindPath = tmpSock;
    if (Buffer.byteLength(bindPath) > UNIX_PATH_MAX) {
      dirFd = fs.openSync(tmp, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      bindPath = `/proc/self/fd/${dirFd}/s`;
    }
    const mask = process.umask(0o177); // the socket is created 0600: only its owner may connect
    try {
      listener = Bun.listen<T>({ unix: bindPath, allowHalfOpen: true, socket });
    } catch (err) {
      throw listenError(err, path, label);
    } finally {
      process.umask(mask);
    }
    // The identity is taken from the private name, before the socket is visible at the path.
    made = fs.lstatSync(tmpSock);
    try {
      fs.linkSync(tmpSock, path);
    } catch (err) {
      if (errnoOf(err) === "EEXIST")
        throw new VmchanError(`cannot listen on "${label}": ${path} was created by another process meanwhile`, {
          code: ExitCode.busy,
          hint: "stop it, or choose another path",
        });
      throw directoryError(err, dir, label);
    }
  } catch (err) {
    listener?.stop(true);
    throw err;
  } finally {
    if (dirFd >= 0) fs.closeSync(dirFd);
    fs.rmSync(tmpSock, { force: true });
    try {
      fs.rmdirSync(tmp);
    } catch {
      // not empty or gone: it is ours and named .vmchan-*, and nothing else is touched
    }
  }
  const bound = listener!;
  let closed = false;
  return {
    listener: bound,
    close() {
      if (closed) return;
      closed = true;
      bound.stop(true);
      removeIfSame(path, made);
    },
  };
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
      return new VmchanError(`${what}: permission denied on ${where}`, {
        code: ExitCode.permission,
        hint: /^\d|^\[|:/.test(where) ? "TCP ports below 1024 need root or CAP_NET_BIND_SERVICE" : "choose a directory you may write to",
      });
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
