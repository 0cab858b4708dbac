/**
 * Deterministic fuzzing helpers: a seeded PRNG, one independent stream per case (so any case can be
 * regenerated from its seed and index alone, e.g. to name the input a watchdog caught hanging), and
 * string mutators.
 */

/** The fixed default seed; FUZZ_SEED overrides it to explore, FUZZ_CASES the case count. */
export const DEFAULT_SEED = 0x5eed_2026;

/** mulberry32: small, fast, good enough to drive a fuzzer. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** A length biased towards short (most bugs need few characters), up to `max`. */
  len(max: number): number {
    const r = this.next();
    return Math.floor(r * r * r * (max + 1));
  }
  /** A string of `n` characters (or units) drawn from `alphabet`. */
  string(alphabet: readonly string[] | string, n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)]!;
    return s;
  }
}

/** The PRNG of case `index` under `seed`: independent of every other case. */
export function caseRng(seed: number, index: number): Rng {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return new Rng((h ^ (h >>> 16)) >>> 0);
}

/** Characters that tend to matter to parsers: separators, quotes, escapes, controls, non-ASCII, lone surrogates. */
export const NASTY = [
  ":", "/", "-", "=", ",", ";", " ", "\t", "\n", "\r", "\0", "'", '"', "\\", "$", "`", "[", "]", "{", "}", "<", ">", "&", "#",
  "@", ".", "_", "~", "%", "?", "!", "*", "\u00a0", "\u2028", "\ufeff", "é", "ß", "€", "😀", "\ud800", "\udc00", "\u0085", "\x7f",
];
export const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/** Mostly ordinary characters, some nasty ones. */
export const MIXED: readonly string[] = [...ALNUM, ...ALNUM, ...NASTY];

/** Numbers as text, the ones number parsers get wrong. */
export const NUMBERISH = [
  "0", "1", "22", "65535", "65536", "-1", "+1", "1.5", "1e3", "1e999", "-1e999", "0x10", "0b1", "0o7", "010", " 5", "5 ", "",
  "NaN", "Infinity", "-0", "99999999999999999999", "٣", "１２", "4294967296", "2147483648",
];

/** Applies 1 to 4 random edits to `s`: insert, delete, replace, duplicate a slice, swap, truncate, splice a token, flip case. */
export function mutate(rng: Rng, s: string, tokens: readonly string[] = NASTY): string {
  const edits = rng.range(1, 4);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(s.length + 1);
    switch (rng.int(8)) {
      case 0:
        s = s.slice(0, at) + rng.pick(MIXED) + s.slice(at);
        break;
      case 1:
        s = s.slice(0, at) + s.slice(at + rng.range(1, 8));
        break;
      case 2:
        s = s.slice(0, at) + rng.pick(MIXED) + s.slice(at + 1);
        break;
      case 3: {
        const end = Math.min(s.length, at + rng.range(1, 64));
        s = s.slice(0, end) + s.slice(at, end) + s.slice(end);
        break;
      }
      case 4:
        if (at + 1 < s.length) s = s.slice(0, at) + s[at + 1] + s[at] + s.slice(at + 2);
        break;
      case 5:
        s = s.slice(0, at);
        break;
      case 6:
        s = s.slice(0, at) + rng.pick(tokens) + s.slice(at);
        break;
      default:
        s = s.slice(0, at) + (rng.chance(0.5) ? s.slice(at, at + 8).toUpperCase() : s.slice(at, at + 8).toLowerCase()) + s.slice(at + 8);
    }
  }
  return s;
}

/** A short, printable rendering of a fuzz input for failure messages. */
export function show(input: unknown, max = 300): string {
  const text = JSON.stringify(input) ?? String(input);
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}

/** The message of a thrown value, with its class. */
export function describeThrown(err: unknown): string {
  if (err instanceof Error) return `${err.constructor.name}: ${err.message}`;
  return `non-Error thrown: ${String(err)}`;
}

/** Deep equality for the plain data the parsers return (objects, arrays, Maps, primitives). */
export function sameData(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Map && b instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !sameData(v, b.get(k))) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => sameData(x, b[i]));
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && sameData((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}
