// Vite builds the client into dist/ (served by pigeond at /). `npm run dev` serves it with
// hot reload and forwards the API and the WebSocket to a running pigeond, so the page is
// same-origin as in production. PIGEON_URL picks the pigeond (default http://127.0.0.1:8080).
import { defineConfig } from 'vite';

const target = process.env.PIGEON_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    chunkSizeWarningLimit: 200,
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy: {
      '/api': { target, changeOrigin: true },
      '/healthz': { target, changeOrigin: true },
      '/ws': { target: target.replace(/^http/, 'ws'), ws: true, changeOrigin: true },
    },
  },
});
