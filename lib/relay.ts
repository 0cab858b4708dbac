import type { Sink, Source } from "./endpoint.ts";

export interface PumpOptions {
  /** Stop after this many bytes (the last chunk is cut). Default: no limit. */
  limit?: number;
  /** Called after each chunk is written, with the running total. */
  onProgress?: (total: number) => void;
  /** Checked before each read: true ends the pump without finish() (the session is being torn down). */
  shouldStop?: () => boolean;
}

/** Moves bytes from `src` to `dst` until end of stream or `limit`; returns the byte count. Memory: one chunk. */
export async function pump(src: Source, dst: Sink, options: PumpOptions = {}): Promise<number> {
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  let total = 0;
  while (total < limit) {
    if (options.shouldStop?.()) return total;
    const chunk = await src.read();
    if (chunk === null) break;
    const part = chunk.byteLength > limit - total ? chunk.subarray(0, limit - total) : chunk;
    if (part.byteLength === 0) continue;
    await dst.write(part);
    total += part.byteLength;
    options.onProgress?.(total);
  }
  await dst.finish?.();
  return total;
}
