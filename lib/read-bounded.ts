import * as fs from "node:fs";

/**
 * Reads a file in pieces (so /proc files, whose size reads as 0, work too), at most `limit` bytes:
 * memory grows with what is there, up to the bound, and a bigger file throws instead of being read whole.
 */
export function readFileBounded(path: string, limit: number): string {
  const fd = fs.openSync(path, "r");
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(256 * 1024, limit + 1 - total));
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > limit) throw new Error(`${path} is larger than ${limit} bytes`);
    }
    return Buffer.concat(chunks, total).toString("utf8");
  } finally {
    fs.closeSync(fd);
  }
}
