import * as fs from "node:fs";
import { under } from "../context.ts";
import { VmchanError } from "../errors.ts";
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

/**
 * Opens a guest port read-write, non-blocking, never as a controlling tty, never creating or
 * truncating anything. Unless `anyDevice`, the path must be a virtio-serial port or an hvc console:
 * checked before the open (so no other device is opened at all, since opening some has effects)
 * and again on the open fd, which must be the same device (a path swapped in between is refused).
 */
export function openPortFd(path: string, label: string, options: PortOpenOptions = {}): number {
  const root = options.root ?? "/";
  let before: fs.BigIntStats;
  try {
    before = fs.statSync(path, { bigint: true });
  } catch (err) {
    throw portOpenError(err, path, label, root);
  }
  const fileAddress = options.fileAddress ?? true;
  if (!options.anyDevice) checkPortDevice(before, path, label, root, fileAddress);
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (err) {
    throw portOpenError(err, path, label, root);
  }
  try {
    const after = fs.fstatSync(fd, { bigint: true });
    if (after.dev !== before.dev || after.ino !== before.ino || after.rdev !== before.rdev)
      throw new VmchanError(`cannot open port "${label}": ${path} was replaced while it was being opened`, {
        code: ExitCode.failure,
        hint: "someone changed the path under vmchan; check who can write to its directory",
      });
    if (!options.anyDevice) checkPortDevice(after, path, label, root, fileAddress);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  return fd;
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
