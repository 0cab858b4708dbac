import { describe, expect, test } from "bun:test";
import { VmchanError } from "../../lib/errors.ts";
import { ExitCode } from "../../lib/exit-codes.ts";
import { spawnOrThrow } from "../../lib/getty/process.ts";
import { checkRuntimeEnv, childEnv, isRuntimeVariable, runtimeVariables } from "../../lib/runtime-env.ts";

describe("runtime environment guard", () => {
  test("names the variables the Bun runtime acts on, and no others", () => {
    for (const name of ["BUN_OPTIONS", "BUN_BE_BUN", "BUN_INSPECT", "BUN_INSPECT_CONNECT_TO", "BUN_INSPECT_NOTIFY", "BUN_INSPECT_PRELOAD", "BUN_JSC_useJIT", "JSC_useJIT", "JSC_SIGNAL_FOR_GC", "BUN_CONFIG_VERBOSE_FETCH"])
      expect(isRuntimeVariable(name), name).toBe(true);
    for (const name of ["BUN_INSTALL", "NODE_OPTIONS", "PATH", "bun_options", "XBUN_OPTIONS", "BUN_OPTIONSX", "VMCHAN_ALLOW_BUN_ENV"])
      expect(isRuntimeVariable(name), name).toBe(false);
    expect(runtimeVariables({ BUN_OPTIONS: "", PATH: "/bin", BUN_BE_BUN: undefined, BUN_JSC_a: "1" })).toEqual(["BUN_JSC_a", "BUN_OPTIONS"]);
  });

  test("refuses with exit 11 unless VMCHAN_ALLOW_BUN_ENV is exactly 1", () => {
    const refused = (env: Record<string, string>) => {
      try {
        checkRuntimeEnv(env);
        return null;
      } catch (err) {
        return err as VmchanError;
      }
    };
    expect(refused({ PATH: "/bin" })).toBeNull();
    const err = refused({ BUN_OPTIONS: "--preload x" });
    expect(err?.code).toBe(ExitCode.unsafeEnvironment);
    expect(err?.message).toBe("refusing to start: the environment sets BUN_OPTIONS, a variable that changes the Bun runtime vmchan is built on");
    expect(err?.message, "the value is not echoed").not.toContain("--preload");
    for (const allow of ["0", "yes", "true", ""]) expect(refused({ BUN_OPTIONS: "x", VMCHAN_ALLOW_BUN_ENV: allow }), `allow=${allow}`).not.toBeNull();
    expect(refused({ BUN_OPTIONS: "x", VMCHAN_ALLOW_BUN_ENV: "1" })).toBeNull();
    const many = refused(Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`BUN_CONFIG_${i}`, "1"])));
    expect(many?.message).toContain("and 4 more");
  });

  test("children (getty programs) get the environment without those variables", async () => {
    const proc = spawnOrThrow(["env"], {
      stdin: "ignore",
      stdout: "pipe",
      env: { PATH: "/usr/bin:/bin", BUN_OPTIONS: "--preload x", BUN_BE_BUN: "1", BUN_INSPECT: "1", BUN_JSC_x: "1", JSC_SIGNAL_FOR_GC: "15", BUN_CONFIG_y: "1", KEEP: "kept" },
    });
    const out = await new Response(proc.stdout as ReadableStream).text();
    await proc.exited;
    expect(out, "what the child saw: " + out).toContain("KEEP=kept\n");
    expect(out, "what the child saw: " + out).not.toMatch(/^(BUN_|JSC_)/m);
    expect(childEnv({ A: "1", BUN_OPTIONS: "x", B: undefined })).toEqual({ A: "1" });
  });
});
