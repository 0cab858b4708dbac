/** Runs a fuzz target in a worker under a watchdog: a case that makes no progress for `stallMs` is a hang. */
import { caseRng, DEFAULT_SEED, show } from "./kit.ts";
import { type TargetName, targets } from "./targets.ts";
import type { FuzzReport, FuzzRequest } from "./worker.ts";

export const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : DEFAULT_SEED;
/** Cases per target: at least 100,000 unless FUZZ_CASES says otherwise. */
export const CASES = process.env.FUZZ_CASES ? Number(process.env.FUZZ_CASES) : 100_000;

export interface FuzzResult extends FuzzReport {
  /** The case the watchdog stopped, if one hung. */
  hung: { index: number; input: string } | null;
}

export function fuzz(target: TargetName, opts: { seed?: number; cases?: number; stallMs?: number } = {}): Promise<FuzzResult> {
  const seed = opts.seed ?? SEED;
  const cases = opts.cases ?? CASES;
  const stallMs = opts.stallMs ?? 5000;
  const progress = new SharedArrayBuffer(4);
  const current = new Int32Array(progress);
  Atomics.store(current, 0, -2);
  const worker = new Worker(new URL("./worker.ts", import.meta.url).href);
  return new Promise<FuzzResult>((resolve, reject) => {
    let seen = -2;
    let since = performance.now();
    const watchdog = setInterval(() => {
      const now = Atomics.load(current, 0);
      if (now !== seen) {
        seen = now;
        since = performance.now();
        return;
      }
      if (now < 0 || performance.now() - since < stallMs) return;
      clearInterval(watchdog);
      worker.terminate();
      const input = (targets[target] as { generate(rng: ReturnType<typeof caseRng>): unknown }).generate(caseRng(seed, now));
      resolve({ cases: now, ms: NaN, outcomes: {}, failures: [], known: {}, slowest: { index: now, ms: NaN }, hung: { index: now, input: show(input) } });
    }, 50);
    worker.onmessage = (event: MessageEvent<FuzzReport>) => {
      clearInterval(watchdog);
      worker.terminate();
      resolve({ ...event.data, hung: null });
    };
    worker.onerror = (event) => {
      clearInterval(watchdog);
      worker.terminate();
      reject(new Error(`fuzz worker for ${target} failed: ${event.message}`));
    };
    const request: FuzzRequest = { target, seed, cases, progress };
    worker.postMessage(request);
  });
}

/** One line per outcome, for the test log. */
export function summary(target: string, r: FuzzResult, seed = SEED): string {
  const outcomes = Object.entries(r.outcomes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  return `fuzz ${target}: ${r.cases} cases in ${(r.ms / 1000).toFixed(1)} s (seed ${seed}; slowest case ${r.slowest.ms.toFixed(1)} ms): ${outcomes}`;
}
