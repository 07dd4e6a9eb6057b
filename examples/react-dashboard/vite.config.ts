// vite.config.ts
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const shopstream = process.env.SHOPSTREAM_URL ?? 'http://localhost:3000'; // the service

export default defineConfig({
  plugins: [react()],
  // One React and one TanStack Query, also for a package linked from a checkout.
  resolve: { dedupe: ['react', 'react-dom', '@tanstack/react-query'] },
  server: {
    // No changeOrigin: the service sees the dev server's Host, the same as the Origin.
    proxy: {
      '/api': { target: shopstream },
      '/ws': { target: shopstream, ws: true },
    },
  },
});
