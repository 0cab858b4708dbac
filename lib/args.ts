import { UsageError } from "./errors.ts";

/** "2", "0.5", "1.5s" → milliseconds; anything else is a usage error naming the option. */
export function parseSeconds(text: string, option: string): number {
  const m = text.trim().match(/^(\d+(?:\.\d+)?)s?$/);
  if (!m) throw new UsageError(`${option} takes a number of seconds, not "${text}"`, `for example ${option} 2.5`);
  return Math.round(Number(m[1]) * 1000);
}

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** "100", "64k", "16M", "1G" (powers of 1024) → a byte count. */
export function parseByteCount(text: string, option: string): number {
  const m = text.trim().match(/^(\d+)([kmg]?)(i?b)?$/i);
  if (!m) throw new UsageError(`${option} takes a byte count like 4096, 64k or 16M, not "${text}"`);
  return Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
}
