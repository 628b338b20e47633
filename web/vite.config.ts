import path from 'node:path';
import { defineConfig } from 'vite';
import { consoleCsp } from './csp.ts';

// The console is a static bundle: `vite build` writes web/dist, which the demo's console server
// (e2e/demo/serve-console.ts) or any static host serves next to a config.json naming the gateway.
export default defineConfig({
  root: import.meta.dirname,
  base: './',
  build: {
    outDir: path.join(import.meta.dirname, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 800,
  },
  // `vite preview` serves the built bundle as the console server does: under its CSP, talking to
  // the default gateway (npm run gateway) or VITE_GATEWAY_URL.
  preview: {
    host: '127.0.0.1',
    headers: {
      'content-security-policy': consoleCsp({
        gateways: [process.env.VITE_GATEWAY_URL ?? 'http://127.0.0.1:4000/graphql'],
      }),
    },
  },
  server: {
    host: '127.0.0.1',
    // The block view imports node/chain/signature-rule.ts from outside web/.
    fs: { allow: [path.resolve(import.meta.dirname, '..')] },
  },
});
