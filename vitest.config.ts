import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Test files share one spawned redis-server, each in its own key prefix; two cores here.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
