import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // temp-guard first: its teardown runs last, after everything else has stopped.
    globalSetup: ["tests/setup/temp-guard.ts", "tests/setup/build-bundle.ts"],
    pool: "forks",
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
