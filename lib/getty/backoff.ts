/** When a getty that exits is started again. */
export interface RespawnPolicy {
  /** A run shorter than this is a failure ("died at once"). Default 1000 ms. */
  quickMs?: number;
  /** A run at least this long forgets earlier failures. Default 10000 ms. */
  resetMs?: number;
  /** The delay after the first failure; it doubles with each further one. Default 1000 ms. */
  firstDelayMs?: number;
  /** The longest delay. Default 30000 ms. */
  maxDelayMs?: number;
}

/**
 * The respawn schedule of one getty. A getty that ran normally (a user logged out, a login timed
 * out) is started again at once; one that died within `quickMs` waits 1, 2, 4 ... 30 s, so a
 * broken setup does not spin. The count of failures is forgotten after a run of `resetMs`.
 */
export class RespawnBackoff {
  private failures = 0;
  private readonly quickMs: number;
  private readonly resetMs: number;
  private readonly firstDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(policy: RespawnPolicy = {}) {
    this.quickMs = policy.quickMs ?? 1000;
    this.resetMs = policy.resetMs ?? 10_000;
    this.firstDelayMs = policy.firstDelayMs ?? 1000;
    this.maxDelayMs = policy.maxDelayMs ?? 30_000;
  }

  /** The delay before the next start, given how long the last run lasted (ms). */
  next(ranMs: number): number {
    if (ranMs >= this.resetMs) this.failures = 0;
    if (ranMs >= this.quickMs) return 0;
    this.failures++;
    // 2 ** (failures - 1) overflows nothing: the exponent is capped once the delay reaches the maximum.
    const exp = Math.min(this.failures - 1, 30);
    return Math.min(this.maxDelayMs, this.firstDelayMs * 2 ** exp);
  }

  /** Failures in a row so far (for messages). */
  get failuresInARow(): number {
    return this.failures;
  }
}
