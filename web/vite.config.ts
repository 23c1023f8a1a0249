import { defineConfig } from "vite";

// The page is served at `/` by arogya-auth (AROGYA_WEB__DIR=web/dist) or any static server.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
});
