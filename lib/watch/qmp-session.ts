import { describeError } from "../host/describe-error.ts";
import type { QmpEvent } from "../host/qmp.ts";
import { type QmpLike, type QmpView, readQmpView } from "../host/qmp-state.ts";
import { withDeadline } from "../deadline.ts";

/** What a held QMP connection must offer: commands and events (QmpClient; tests pass a fake). */
export interface QmpEventClient extends QmpLike {
  onEvent(listener: (event: QmpEvent) => void): () => void;
}

/** Opens a QMP session (greeting and qmp_capabilities done) or rejects within about `timeoutMs`. */
export type QmpEventConnect = (path: string, opts: { timeoutMs: number }) => Promise<QmpEventClient>;

/**
 * One QMP connection held for a VM while it is watched: its events, and a poll of the VM's port devices
 * and chardevs that asks QOM for a device's properties only the first time the device is seen (they do
 * not change), so a poll of an unchanged VM costs four small commands.
 */
export class QmpWatchSession {
  /** The QMP socket this session holds. */
  readonly path: string;
  readonly #client: QmpEventClient;
  readonly #timeoutMs: number;
  /** qom-get answers by "path\0property"; a device's entries are dropped when it goes away. */
  readonly #props = new Map<string, Promise<unknown>>();
  #closed = false;

  private constructor(path: string, client: QmpEventClient, timeoutMs: number) {
    this.path = path;
    this.#client = client;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Connects to the first of `paths` that answers within `timeoutMs` (QMP serves one client at a time: a held
   * socket gives no greeting). Returns null and why each path failed when none does.
   */
  static async open(
    paths: readonly string[],
    connect: QmpEventConnect,
    timeoutMs: number,
  ): Promise<{ session: QmpWatchSession | null; failures: string[] }> {
    const failures: string[] = [];
    for (const path of paths) {
      const pending = connect(path, { timeoutMs });
      try {
        const client = await withDeadline(pending, timeoutMs * 2, `no answer within ${timeoutMs} ms`);
        return { session: new QmpWatchSession(path, client, timeoutMs), failures };
      } catch (err) {
        // A session that opens after we gave up must still be closed, or it would keep QMP's only slot.
        pending.then((c) => c.close(), () => {});
        const msg = describeError(err).replace(/^QMP connect to "[^"]*" failed: /, "");
        failures.push(
          /no greeting/.test(msg) ? `${path} is busy (no greeting within ${timeoutMs} ms: another client, such as libvirt, holds it)` : `${path}: ${msg}`,
        );
      }
    }
    return { session: null, failures };
  }

  /** Calls `listener` for every QMP event until the returned function is called. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    return this.#client.onEvent(listener);
  }

  /** The VM's run state, chardevs and port devices now; rejects when the connection is gone. */
  async view(): Promise<QmpView> {
    const seen = new Set<string>();
    const client: QmpLike = {
      execute: <T>(command: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<T> => {
        if (command !== "qom-get" || typeof args?.path !== "string") return this.#client.execute<T>(command, args, opts);
        seen.add(args.path);
        const key = `${args.path}\0${String(args.property)}`;
        let p = this.#props.get(key);
        if (!p) {
          p = this.#client.execute<unknown>(command, args, opts);
          this.#props.set(key, p);
          // A failed answer is not kept: the next poll asks again.
          p.catch(() => this.#props.delete(key));
        }
        return p as Promise<T>;
      },
      close: () => {},
    };
    const view = await readQmpView(client, this.#timeoutMs);
    if (view.devices !== null) {
      for (const key of [...this.#props.keys()]) if (!seen.has(key.slice(0, key.indexOf("\0")))) this.#props.delete(key);
    }
    return view;
  }

  /** Drops what is known about the device at QOM path `qomPath` (after DEVICE_DELETED: the path may be reused). */
  forget(qomPath: string): void {
    for (const key of [...this.#props.keys()]) if (key.startsWith(`${qomPath}\0`)) this.#props.delete(key);
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.close();
  }
}
