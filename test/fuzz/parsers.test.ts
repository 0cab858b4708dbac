/**
 * Fuzzing the address, QEMU command-line and libvirt XML parsers: at least 100,000 deterministic cases
 * each (seed in kit.ts; FUZZ_SEED and FUZZ_CASES override), each target in a worker under a watchdog
 * that calls a case hung after 5 s without progress. The properties are described in targets.ts.
 *
 * The bugs found here were fixed; each keeps a regression test below with its minimal input.
 */
import { describe, expect, test } from "bun:test";
import { parseAddress } from "../../lib/address.ts";
import { parseLibvirtXml } from "../../lib/host/libvirt.ts";
import { HostVm } from "../../lib/host/model.ts";
import { parseXml, XmlError } from "../../lib/host/xml.ts";
import { CASES, fuzz, summary } from "./fuzz.ts";
import { REGRESSIONS, type TargetName } from "./targets.ts";

const TARGETS: readonly TargetName[] = ["address", "splitArgv", "parseOptionString", "parseQemuArgv", "splitCmdline", "parseXml", "parseLibvirtXml"];

describe("fuzzing the parsers", () => {
  for (const target of TARGETS) {
    test(`${target}: ${CASES} cases, no unexpected exception, no hang, properties hold`, async () => {
      const r = await fuzz(target);
      console.log(summary(target, r));
      expect(r.hung).toBeNull();
      expect(r.failures).toEqual([]);
      expect(r.cases).toBe(CASES);
      expect(Object.keys(r.known)).toEqual([]);
    }, 120_000);
  }
});

describe("regressions: bugs found by fuzzing, fixed (minimal inputs in REGRESSIONS)", () => {
  test(`parseAddress: ${REGRESSIONS["address-prototype-keyword"].summary}`, () => {
    expect(parseAddress(REGRESSIONS["address-prototype-keyword"].minimal())).toEqual({ kind: "vm-port", vm: "constructor", port: "org.example.port" });
  });

  test(`parseXml: ${REGRESSIONS["xml-deep-nesting"].summary}`, () => {
    const deep = REGRESSIONS["xml-deep-nesting"].minimal();
    let thrown: unknown;
    try {
      parseXml(deep);
    } catch (err) {
      thrown = err;
    }
    // Fixed means: an unclosed deep document is refused with XmlError like any other bad input.
    expect(thrown).toBeInstanceOf(XmlError);
  });

  test(`parseXml: ${REGRESSIONS["xml-prototype-attribute"].summary}`, () => {
    expect(parseXml(REGRESSIONS["xml-prototype-attribute"].minimal()).attrs).toEqual({ constructor: "1" });
  });

  test(`parseLibvirtXml: ${REGRESSIONS["libvirt-infinite-reconnect"].summary}`, () => {
    const d = parseLibvirtXml(REGRESSIONS["libvirt-infinite-reconnect"].minimal());
    expect(HostVm.safeParse(d.vm).success).toBe(true);
  });
});
