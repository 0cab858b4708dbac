/**
 * The one shape every data endpoint has (port, socket, stdio, process): pull chunks from a Source,
 * push chunks into a Sink. Back-pressure is structural: the relay holds one chunk per direction and
 * does not read again until the sink has taken the previous one.
 */
export interface Source {
  /** The next chunk, or null at end of stream. The chunk is only valid until the next read(). */
  read(): Promise<Uint8Array | null>;
}

export interface Sink {
  /** Resolves once every byte of `chunk` has been handed to the kernel; the caller may then reuse it. */
  write(chunk: Uint8Array): Promise<void>;
  /** No more data will come: flush what the sink still holds (for a host socket: until QEMU has read it). */
  finish?(): Promise<void>;
}

export interface Endpoint extends Source, Sink {
  /** Releases the handle; safe to call twice, and on error or cancel. */
  close(): Promise<void> | void;
}

/** Read and relay buffer size per direction: large enough for throughput, small enough to bound memory. */
export const CHUNK_SIZE = 256 * 1024;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
