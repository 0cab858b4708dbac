import * as fs from "node:fs";

/** A file was larger than the bound it is read with. */
export class TooLargeError extends Error {
  readonly code = "ETOOLARGE";
  constructor(
    readonly path: string,
    readonly limit: number,
  ) {
    super(`${path} is larger than ${_size(limit)}`);
    this.name = "TooLargeError";
  }
}

function _size(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / 1024 / 1024} MiB` : `${n} bytes`;
}

/**
 * Reads a whole file as UTF-8, but never more than `limit` bytes: a bigger one throws TooLargeError after reading
 * `limit + 1` bytes. Reads in chunks rather than trusting the size stat gives, which /proc files report as 0 and
 * a file being written can outgrow. Other errors are those of fs.
 */
export function readFileBounded(path: string, limit: number): string {
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(64 * 1024, limit + 1 - total));
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
      if (total > limit) throw new TooLargeError(path, limit);
    }
    return Buffer.concat(chunks, total).toString("utf8");
  } finally {
    fs.closeSync(fd);
  }
}

/** The first `max` bytes of a file (fewer if it is shorter), as UTF-8; for when only the beginning matters. */
export function readFilePrefix(path: string, max: number): string {
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  try {
    const buf = Buffer.allocUnsafe(max);
    let total = 0;
    while (total < max) {
      const n = fs.readSync(fd, buf, total, max - total, null);
      if (n === 0) break;
      total += n;
    }
    return buf.subarray(0, total).toString("utf8");
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Most of a sysfs or debugfs attribute read (a port name, host_connected...). The kernel gives at most a page;
 * under --root the tree may be a mounted image or a fixture, where a "file" could be endless or a FIFO.
 */
export const MAX_ATTRIBUTE = 64 * 1024;
