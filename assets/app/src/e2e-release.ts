// Written and removed by tests/e2e/cluster.test.ts: a release that differs from main.
export const E2E_RELEASE = 1;
