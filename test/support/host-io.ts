import { createHash } from "node:crypto";
import type * as net from "node:net";

/** sha256 hex of bytes. */
export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Deterministic pseudo-random bytes (xorshift), so a failure can be reproduced. */
export function randomBytes(n: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    if ((i & 3) === 0) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
    }
    out[i] = (x >>> ((i & 3) * 8)) & 0xff;
  }
  return out;
}

/** Reads exactly `n` bytes from `sock`, hashing as it goes (no growing buffer); rejects on timeout or close. */
export function readHashed(sock: net.Socket, n: number, timeoutMs = 60_000): Promise<{ bytes: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let bytes = 0;
    const done = (err: Error | null) => {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("close", onClose);
      if (err) reject(err);
      else resolve({ bytes, sha: hash.digest("hex") });
    };
    const onData = (chunk: Buffer) => {
      const take = Math.min(chunk.length, n - bytes);
      hash.update(chunk.subarray(0, take));
      bytes += take;
      if (bytes >= n) done(null);
    };
    const onClose = () => done(new Error(`connection closed after ${bytes} of ${n} bytes`));
    const timer = setTimeout(() => done(new Error(`only ${bytes} of ${n} bytes within ${timeoutMs} ms`)), timeoutMs);
    sock.on("data", onData);
    sock.on("close", onClose);
  });
}
