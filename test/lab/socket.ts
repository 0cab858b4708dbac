/** Host-side socket helpers for lab tests, written with QEMU's chardev quirks in mind (virtio-serial-facts.md (k), (l)). */
import * as net from "node:net";

/** Connects to the unix socket at `path`; rejects after `timeoutMs`. */
export function connectUnix(path: string, timeoutMs = 10_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`connecting to ${path} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.removeAllListeners("error");
      // Errors after connecting surface through the caller's reads; an unhandled 'error' would crash the test run.
      sock.on("error", () => {});
      resolve(sock);
    });
    sock.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`connecting to ${path} failed: ${err.message}`));
    });
  });
}

/**
 * Writes `data`, keeps the connection open `lingerMs` after the write completed, then closes it fully.
 * Never `end()`: QEMU takes a half-close for a disconnect, and closing at once drops the tail QEMU has not yet
 * passed to the guest. A fixed linger is enough for tests; the product waits on SIOCOUTQ instead.
 */
export async function writeAndClose(sock: net.Socket, data: Uint8Array | string, lingerMs = 1000): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => sock.write(data, (err) => (err ? reject(err) : resolve())));
    await Bun.sleep(lingerMs);
  } finally {
    sock.destroy();
  }
}

/** Collects data from `sock` until `done(all bytes so far)` is true; rejects after `timeoutMs` with what arrived. */
export function readUntil(sock: net.Socket, done: (data: Buffer) => boolean, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const finish = (err: Error | null) => {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("close", onClose);
      if (err) reject(err);
      else resolve(data);
    };
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (done(data)) finish(null);
    };
    const onClose = () => finish(new Error(`the connection closed before the expected data arrived; got ${JSON.stringify(data.toString())}`));
    const timer = setTimeout(() => finish(new Error(`expected data did not arrive within ${timeoutMs} ms; got ${JSON.stringify(data.toString())}`)), timeoutMs);
    sock.on("data", onData);
    sock.on("close", onClose);
    if (done(data)) finish(null);
  });
}
