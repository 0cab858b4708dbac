import * as fs from "node:fs";
import { under } from "../context.ts";
import { errnoOf, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { portOpenError } from "./port-errors.ts";

export interface PortOpenOptions {
  /** Root /proc and /sys are read under (and holders named from). Default "/". */
  root?: string;
  /** Open any existing file or device, without the virtio-serial check (`file:PATH`). Default false. */
  anyDevice?: boolean;
  /** Whether the caller accepts `file:PATH`, so the refusal may suggest it. Default true. */
  fileAddress?: boolean;
}

/** /proc/devices is a few hundred bytes; more than this is not the kernel's. */
const MAX_PROC_DEVICES = 64 * 1024;

/** O_PATH: a descriptor that names an inode without opening the file itself (no device open, no FIFO wake-up). */
const O_PATH = 0o10000000;

/**
 * Opens a guest port read-write, non-blocking, never as a controlling tty, never creating or
 * truncating anything. Unless `anyDevice`, the path must be a virtio-serial port or an hvc console,
 * and no other file is opened at all (opening some devices has effects: a watchdog, a FIFO's
 * writer woken): the path is resolved once with O_PATH, which opens nothing; that descriptor is
 * checked with fstat, and only then is the very same inode opened through /proc/self/fd/N. A path
 * swapped after the check changes nothing: the descriptor already names the checked inode.
 */
export function openPortFd(path: string, label: string, options: PortOpenOptions = {}): number {
  const root = options.root ?? "/";
  const fileAddress = options.fileAddress ?? true;
  const flags = fs.constants.O_RDWR | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;
  if (options.anyDevice) return openAny(path, label, root, flags);
  let pathFd: number;
  try {
    pathFd = fs.openSync(path, O_PATH); // the runtime adds O_CLOEXEC
  } catch (err) {
    throw portOpenError(err, path, label, root);
  }
  try {
    const checked = fs.fstatSync(pathFd, { bigint: true });
    checkPortDevice(checked, path, label, root, fileAddress);
    let fd: number;
    try {
      fd = fs.openSync(`/proc/self/fd/${pathFd}`, flags);
    } catch (err) {
      if (errnoOf(err) === "ENOENT" && !fs.existsSync("/proc/self/fd"))
        throw new VmchanError(`cannot open port "${label}": /proc is not mounted, so ${path} cannot be opened safely`, {
          code: ExitCode.failure,
          hint: "mount /proc (mount -t proc proc /proc)",
        });
      throw portOpenError(err, path, label, root);
    }
    try {
      const opened = fs.fstatSync(fd, { bigint: true });
      if (opened.dev !== checked.dev || opened.ino !== checked.ino || opened.rdev !== checked.rdev)
        throw new VmchanError(`cannot open port "${label}": ${path} was replaced while it was being opened`, {
          code: ExitCode.failure,
          hint: "someone changed the path under vmchan; check who can write to its directory",
        });
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return fd;
  } finally {
    fs.closeSync(pathFd);
  }
}

/** `file:PATH`: any existing file or device, opened on purpose (never created or truncated). */
function openAny(path: string, label: string, root: string, flags: number): number {
  try {
    return fs.openSync(path, flags);
  } catch (err) {
    throw portOpenError(err, path, label, root);
  }
}

/** Throws unless `st` is a virtio-serial port or an hvc console (a character device the kernel says is one). */
export function checkPortDevice(st: fs.BigIntStats, path: string, label: string, root: string, fileAddress = true): void {
  const link = isSymlink(path) ? " (through a symbolic link)" : "";
  const notPort = (what: string) =>
    new VmchanError(`cannot open port "${label}": ${path}${link} is ${what}, not a virtio-serial port or hvc console`, {
      code: ExitCode.usage,
      hint:
        "give a port name, /dev/vportNpM, /dev/virtio-ports/NAME or /dev/hvcN, see 'vmchan ports list'" +
        (fileAddress ? "; to use another file or device anyway, write file:PATH" : ""),
    });
  if (!st.isCharacterDevice()) throw notPort(fileKind(st));
  const { major, minor } = splitDev(st.rdev);
  const drivers = charDrivers(root).get(major) ?? [];
  if (drivers.some((d) => d === "virtio-portsdev" || d === "hvc")) return;
  if (sysfsIsPort(root, major, minor)) return;
  const driver = drivers.length ? ` of "${drivers.join(", ").replace(/[^\x20-\x7e]/g, "?")}"` : "";
  throw notPort(`a character device (${major}:${minor}${driver})`);
}

function isSymlink(path: string): boolean {
  try {
    return fs.lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function fileKind(st: fs.BigIntStats): string {
  if (st.isFile()) return "a regular file";
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a fifo";
  if (st.isSocket()) return "a socket";
  if (st.isBlockDevice()) return "a block device";
  return "not a device";
}

/** Linux's dev_t encoding (MAJOR/MINOR of glibc's sysmacros). */
export function splitDev(dev: bigint): { major: number; minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

/** The "Character devices:" section of /proc/devices: major → driver names. */
export function parseCharDevices(text: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  let inChar = false;
  for (const line of text.split("\n")) {
    if (/^Character devices:/.test(line)) inChar = true;
    else if (/^\S.*:\s*$/.test(line)) inChar = false;
    else if (inChar) {
      const m = line.match(/^\s*(\d+)\s+(\S+)\s*$/);
      if (m) out.set(Number(m[1]), [...(out.get(Number(m[1])) ?? []), m[2]!]);
    }
  }
  return out;
}

function charDrivers(root: string): Map<number, string[]> {
  let fd: number | undefined;
  try {
    fd = fs.openSync(under(root, "/proc/devices"), "r");
    const buf = Buffer.alloc(MAX_PROC_DEVICES);
    let n = 0;
    for (let got = 1; got > 0 && n < buf.length; n += got) got = fs.readSync(fd, buf, n, buf.length - n, null);
    return parseCharDevices(buf.subarray(0, n).toString("latin1"));
  } catch {
    return new Map();
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Whether sysfs places MAJ:MIN under the virtio-ports class (a port) or among the hvc ttys. */
function sysfsIsPort(root: string, major: number, minor: number): boolean {
  try {
    const real = fs.realpathSync(under(root, `/sys/dev/char/${major}:${minor}`));
    return /\/virtio-ports\/vport\d+p\d+$/.test(real) || /\/tty\/hvc\d+$/.test(real);
  } catch {
    return false;
  }
}
