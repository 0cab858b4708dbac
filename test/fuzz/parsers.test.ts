/**
 * Fuzzing the address, QEMU command-line and libvirt XML parsers: at least 100,000 deterministic cases
 * each (seed in kit.ts; FUZZ_SEED and FUZZ_CASES override), each target in a worker under a watchdog
 * that calls a case hung after 5 s without progress. The properties are described in targets.ts.
 *
 * Known bugs found here are counted, not failed, in the fuzz runs; each has a test.failing case below
 * with its minimal input, which passes while the bug is there and fails once it is fixed (then turn it
 * into an ordinary test and drop the entry from KNOWN_BUGS).
 */
import { describe, expect, test } from "bun:test";
import { parseAddress } from "../../lib/address.ts";
import { parseLibvirtXml } from "../../lib/host/libvirt.ts";
import { HostVm } from "../../lib/host/model.ts";
import { parseXml, XmlError } from "../../lib/host/xml.ts";
import { CASES, fuzz, summary } from "./fuzz.ts";
import { KNOWN_BUGS, type KnownBug, type TargetName } from "./targets.ts";

/** Which known bugs each target may report; any other "known:" outcome is a failure. */
const EXPECTED_KNOWN: Record<TargetName, readonly KnownBug[]> = {
  address: ["address-prototype-keyword"],
  splitArgv: [],
  parseOptionString: [],
  parseQemuArgv: [],
  splitCmdline: [],
  parseXml: ["xml-deep-nesting", "xml-prototype-attribute"],
  parseLibvirtXml: ["xml-deep-nesting", "libvirt-infinite-reconnect"],
};

describe("fuzzing the parsers", () => {
  for (const target of Object.keys(EXPECTED_KNOWN) as TargetName[]) {
    test(`${target}: ${CASES} cases, no unexpected exception, no hang, properties hold`, async () => {
      const r = await fuzz(target);
      console.log(summary(target, r));
      for (const [bug, example] of Object.entries(r.known))
        console.warn(`fuzz ${target}: KNOWN BUG ${bug} (${KNOWN_BUGS[bug.slice(6) as KnownBug]?.summary}), first at case ${example.index}: ${example.input}`);
      expect(r.hung).toBeNull();
      expect(r.failures).toEqual([]);
      expect(r.cases).toBe(CASES);
      const unexpectedKnown = Object.keys(r.known).filter((k) => !EXPECTED_KNOWN[target].includes(k.slice(6) as KnownBug));
      expect(unexpectedKnown).toEqual([]);
    }, 120_000);
  }
});

describe("known bugs found by fuzzing (each passes while the bug is there; see KNOWN_BUGS in targets.ts)", () => {
  test.failing(`parseAddress: ${KNOWN_BUGS["address-prototype-keyword"].summary}`, () => {
    expect(parseAddress(KNOWN_BUGS["address-prototype-keyword"].minimal())).toEqual({ kind: "vm-port", vm: "constructor", port: "org.example.port" });
  });

  test.failing(`parseXml: ${KNOWN_BUGS["xml-deep-nesting"].summary}`, () => {
    const deep = KNOWN_BUGS["xml-deep-nesting"].minimal();
    let thrown: unknown;
    try {
      parseXml(deep);
    } catch (err) {
      thrown = err;
    }
    // Fixed means: an unclosed deep document is refused with XmlError like any other bad input.
    expect(thrown).toBeInstanceOf(XmlError);
  });

  test.failing(`parseXml: ${KNOWN_BUGS["xml-prototype-attribute"].summary}`, () => {
    expect(parseXml(KNOWN_BUGS["xml-prototype-attribute"].minimal()).attrs).toEqual({ constructor: "1" });
  });

  test.failing(`parseLibvirtXml: ${KNOWN_BUGS["libvirt-infinite-reconnect"].summary}`, () => {
    const d = parseLibvirtXml(KNOWN_BUGS["libvirt-infinite-reconnect"].minimal());
    expect(HostVm.safeParse(d.vm).success).toBe(true);
  });
});
