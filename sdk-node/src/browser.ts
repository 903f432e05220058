// `@crier/sdk-node` as a bundler for a browser resolves it (the `browser` condition of its
// exports): the same names as `./index.js`, all of them `@crier/sdk-web`'s, whose `connect` uses
// the page's own WebSocket. Nothing here imports `ws`, which does not run in a browser.
// Prefer importing `@crier/sdk-web` directly in browser code.
export * from '@crier/sdk-web/full';
export type { CrierClientFull as CrierClient, IterableSubscription as Subscription } from '@crier/sdk-web/full';
