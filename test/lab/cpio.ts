/**
 * A writer for the cpio "newc" format the kernel unpacks as initramfs. Written here rather than with GNU cpio so
 * device nodes (/dev/console) need no root, no staging tree is copied, and the archive is byte-for-byte reproducible.
 */

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** Zero bytes that bring `size` up to a multiple of `align`. */
export function padding(size: number, align = 4): Buffer {
  return Buffer.alloc((align - (size % align)) % align);
}

interface HeaderFields {
  ino: number;
  mode: number;
  size: number;
  rdevMajor?: number;
  rdevMinor?: number;
}

/** The header and (padded) name of one entry; the entry's data and its padding follow it. */
export function header(name: string, f: HeaderFields): Buffer {
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  const nameBytes = Buffer.from(name + "\0");
  // Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check.
  const text =
    "070701" +
    [f.ino, f.mode, 0, 0, f.mode & S_IFDIR ? 2 : 1, 0, f.size, 0, 0, f.rdevMajor ?? 0, f.rdevMinor ?? 0, nameBytes.length, 0].map(hex).join("");
  const head = Buffer.concat([Buffer.from(text, "ascii"), nameBytes]);
  return Buffer.concat([head, padding(head.length)]);
}

/** Builds one archive in memory. Paths are relative ("bin/sh"); parents must be added before their children. */
export class CpioWriter {
  readonly #parts: Buffer[] = [];
  #size = 0;
  #ino: number;

  /** `firstIno` keeps inode numbers of concatenated archives apart (the kernel links entries that share one). */
  constructor(firstIno = 1) {
    this.#ino = firstIno;
  }

  #push(b: Buffer): void {
    this.#parts.push(b);
    this.#size += b.length;
  }

  dir(path: string, mode = 0o755): this {
    this.#push(header(path, { ino: this.#ino++, mode: S_IFDIR | mode, size: 0 }));
    return this;
  }

  file(path: string, content: Uint8Array | string, mode = 0o644): this {
    const data = Buffer.from(content);
    this.#push(header(path, { ino: this.#ino++, mode: S_IFREG | mode, size: data.length }));
    this.#push(data);
    this.#push(padding(data.length));
    return this;
  }

  /** Only the header of a regular file: the caller writes `size` bytes of data and `padding(size)` after it. */
  fileHeader(path: string, size: number, mode = 0o755): Buffer {
    return header(path, { ino: this.#ino++, mode: S_IFREG | mode, size });
  }

  symlink(path: string, target: string): this {
    const data = Buffer.from(target);
    this.#push(header(path, { ino: this.#ino++, mode: S_IFLNK | 0o777, size: data.length }));
    this.#push(data);
    this.#push(padding(data.length));
    return this;
  }

  charDevice(path: string, major: number, minor: number, mode = 0o600): this {
    this.#push(header(path, { ino: this.#ino++, mode: S_IFCHR | mode, size: 0, rdevMajor: major, rdevMinor: minor }));
    return this;
  }

  /** The archive so far; with `close` it ends with the trailer, so another archive can follow. */
  bytes(close = true): Buffer {
    return Buffer.concat(close ? [...this.#parts, trailer(this.#size)] : this.#parts);
  }
}

/** The end-of-archive entry for an archive of `size` bytes so far, padded to 512 bytes as cpio does. */
export function trailer(size: number): Buffer {
  const end = header("TRAILER!!!", { ino: 0, mode: 0, size: 0 });
  return Buffer.concat([end, padding(size + end.length, 512)]);
}
