import { defineConfig } from "vite";

// The page is served at `/` by arogya-auth (AROGYA_WEB__DIR=web/dist) or any static server.
// `npm run dev` serves it on :5173 and forwards the gRPC-Web calls to a local `cargo run`, so
// the page talks to its own origin there too.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: {
    proxy: {
      "/arogya.auth.v1.AuthService": { target: "http://127.0.0.1:50051" },
    },
  },
});
