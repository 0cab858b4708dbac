/**
 * Runs one fuzz target in a worker thread, so that fuzz.ts can stop a case that hangs (a synchronous
 * parser cannot be interrupted from its own thread). The index of the case in progress is kept in a
 * shared Int32Array for the watchdog; it is -1 once every case is done.
 */
import { caseRng, describeThrown, show } from "./kit.ts";
import { type TargetName, targets } from "./targets.ts";

export interface FuzzRequest {
  target: TargetName;
  seed: number;
  cases: number;
  progress: SharedArrayBuffer;
}

export interface FuzzReport {
  cases: number;
  ms: number;
  /** How many cases ended with each outcome ("ok:unix", "UsageError", "known:xml-deep-nesting"...). */
  outcomes: Record<string, number>;
  /** Broken properties and unexpected exceptions (at most 20), with the case index to regenerate them. */
  failures: Array<{ index: number; input: string; error: string }>;
  /** The first case of each known bug. */
  known: Record<string, { index: number; input: string }>;
  slowest: { index: number; ms: number };
}

declare const self: Worker;

self.onmessage = (event: MessageEvent<FuzzRequest>) => {
  const { target: name, seed, cases, progress } = event.data;
  const current = new Int32Array(progress);
  const target = targets[name] as { generate(rng: ReturnType<typeof caseRng>): unknown; check(input: unknown): string };
  const report: FuzzReport = { cases: 0, ms: 0, outcomes: {}, failures: [], known: {}, slowest: { index: -1, ms: 0 } };
  const started = performance.now();
  for (let i = 0; i < cases; i++) {
    Atomics.store(current, 0, i);
    const input = target.generate(caseRng(seed, i));
    const t = performance.now();
    let outcome: string;
    try {
      outcome = target.check(input);
    } catch (err) {
      outcome = "FAILED";
      report.failures.push({ index: i, input: show(input), error: describeThrown(err) });
    }
    const ms = performance.now() - t;
    if (ms > report.slowest.ms) report.slowest = { index: i, ms };
    report.outcomes[outcome] = (report.outcomes[outcome] ?? 0) + 1;
    if (outcome.startsWith("known:") && !report.known[outcome]) report.known[outcome] = { index: i, input: show(input, 120) };
    report.cases++;
    if (report.failures.length >= 20) break;
  }
  report.ms = performance.now() - started;
  Atomics.store(current, 0, -1);
  postMessage(report);
};
