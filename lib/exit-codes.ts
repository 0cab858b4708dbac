/** Every exit code vmchan uses; README's table is generated from the comments' meaning and must match. */
export const ExitCode = {
  /** Success: the transfer completed or the listing was printed. */
  ok: 0,
  /** An environment failure with no more precise code (I/O error, unexpected errno). */
  failure: 1,
  /** Usage error: unknown option, bad address, wrong arity. */
  usage: 2,
  /** Not found: no such port, VM, file or socket. */
  notFound: 3,
  /** Busy: the port or socket is held by another process or client. */
  busy: 4,
  /** Permission denied opening a port, device or socket. */
  permission: 5,
  /** No peer: the other side is not connected and --no-wait was given. */
  noPeer: 6,
  /** Timed out waiting for the peer (--timeout). */
  timeout: 7,
  /** The port was hot-unplugged while in use. */
  unplugged: 8,
  /** The peer went away in the middle of a transfer; the message says how many bytes got through. */
  peerGone: 9,
  /** No virtio-serial ports on this machine (and, on a host, no VM with ports). */
  noPorts: 10,
  /** Refused to start: the environment sets a variable that changes the Bun runtime (BUN_OPTIONS, BUN_BE_BUN, BUN_INSPECT...). */
  unsafeEnvironment: 11,
  /** Refused: a VM's socket is not provably the VM's (another file at its path, another user's). */
  untrusted: 12,
  /** Interrupted by SIGINT or SIGTERM before completion (128 + signal number for SIGINT). */
  interrupted: 130,
  /** Our output was closed by its reader (`| head`): ended quietly, as SIGPIPE would (128 + 13). */
  brokenPipe: 141,
  /** A bug in vmchan: printed with a stack trace. */
  internal: 70,
} as const;

export type ExitCodeName = keyof typeof ExitCode;

/** One line per code, for `--help` and README: name, number, meaning. */
export const exitCodeTable: ReadonlyArray<readonly [number, string]> = [
  [ExitCode.ok, "success"],
  [ExitCode.failure, "I/O or system error not covered below"],
  [ExitCode.usage, "usage error (bad option, address or arity)"],
  [ExitCode.notFound, "port, VM, file or socket not found"],
  [ExitCode.busy, "port or socket held by another process or client"],
  [ExitCode.permission, "permission denied"],
  [ExitCode.noPeer, "peer not connected and --no-wait given"],
  [ExitCode.timeout, "timed out waiting (--timeout)"],
  [ExitCode.unplugged, "port hot-unplugged while in use"],
  [ExitCode.peerGone, "peer disconnected in the middle of a transfer"],
  [ExitCode.noPorts, "no virtio-serial ports found"],
  [ExitCode.unsafeEnvironment, "refused: BUN_OPTIONS, BUN_BE_BUN, BUN_INSPECT*, BUN_JSC_*, JSC_* or BUN_CONFIG_* set (VMCHAN_ALLOW_BUN_ENV=1 overrides)"],
  [ExitCode.untrusted, "refused: a VM's socket is not the VM's (replaced, or another user's)"],
  [ExitCode.internal, "internal error (a bug: please report the stack trace)"],
  [ExitCode.interrupted, "interrupted (Ctrl-C); other signals: 128 + signal number"],
  [ExitCode.brokenPipe, "output closed by its reader (broken pipe), ended quietly"],
];
