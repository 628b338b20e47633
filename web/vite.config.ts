import path from 'node:path';
import { defineConfig } from 'vite';

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
  server: {
    host: '127.0.0.1',
    // The block view imports node/chain/signature-rule.ts from outside web/.
    fs: { allow: [path.resolve(import.meta.dirname, '..')] },
  },
});
