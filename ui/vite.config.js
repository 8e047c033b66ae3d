// The web panel's build: Preact (JSX through esbuild) and uPlot, bundled into
// dist/ with content-hashed names under /ui/assets/ (heroctld serves them, api/ui.py).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/ui/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2020",
    chunkSizeWarningLimit: 300,
  },
});
