import { defineConfig } from 'vitest/config';

// One run covers every package. Tests import sibling packages through their built `dist/`
// (what a user gets), so `npm test` builds first.
export default defineConfig({
  test: {
    projects: ['protocol', 'broker', 'sdk-web', 'sdk-node', 'e2e'].map((name) => ({
      test: {
        name,
        root: `./${name}`,
        include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
        testTimeout: 20_000,
        hookTimeout: 20_000,
      },
    })),
  },
});
