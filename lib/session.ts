import type { Endpoint } from "./endpoint.ts";

/** One side of one bridge session: a connection, a host session on a port, a process run. */
export interface Session extends Endpoint {
  readonly label: string;
  /** Whether end of data from this side ends the session (false for stdin: its EOF ends one direction only). */
  readonly endsSession: boolean;
  /** Makes a pending read() return null: the session is being torn down from the other side. */
  interrupt(): void;
}

/** Where sessions come from: a port (each host session), a listener (each client), a connect or a process (each attempt). */
export interface Connector {
  readonly label: string;
  /** Passive sides (port, listener, stdio) are waited for first; active ones (connect, exec) are opened after. */
  readonly passive: boolean;
  /** The next session; rejects with a VmchanError when it cannot be had. */
  open(): Promise<Session>;
  /** Takes what the connector holds for its whole life (a port, a listening socket), so that a busy or missing one fails at once instead of being retried. */
  prepare?(): Promise<void> | void;
  /** Releases the listener or device. */
  close(): Promise<void> | void;
}
