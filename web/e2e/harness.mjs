// Shared pieces of the browser tests: a real arogya-auth process, Debian's Chromium through
// playwright-core, a static server for the page on another origin, screenshots.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync, readFileSync, existsSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join, extname, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const dist = join(here, "..", "dist");
export const shots = join(here, "out");
mkdirSync(shots, { recursive: true });

const bin =
  process.env.AROGYA_BIN ??
  join(process.env.CARGO_TARGET_DIR ?? "/var/tmp/arogya-auth-target", "debug", "arogya-auth");

/**
 * Starts the service on a free port with the page; resolves with its origin and a stop().
 * Rate limits and the cooldown are set here, so each test knows its budget.
 */
export function startServer(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), "arogya-web-"));
  const child = spawn(bin, [], {
    env: {
      PATH: process.env.PATH,
      AROGYA_LISTEN_ADDR: "127.0.0.1:0",
      AROGYA_ADMIN_ADDR: "127.0.0.1:0",
      AROGYA_DATABASE__SQLITE_PATH: join(dir, "users.db"),
      AROGYA_WEB__DIR: dist,
      AROGYA_LOG__FILTER: "info",
      AROGYA_LOG__FORMAT: "json",
      AROGYA_OTP__RESEND_COOLDOWN_SECONDS: "45",
      AROGYA_RATE_LIMIT__IP_OTP_REQUESTS__LIMIT: "20",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log.join("\n")}`)), 30_000);
    const onLine = (line) => {
      log.push(line);
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      if (/serving gRPC/.test(event.fields?.message ?? "") && event.fields.addr) {
        clearTimeout(timer);
        resolve({
          origin: `http://${event.fields.addr}`,
          log,
          stop: () =>
            new Promise((done) => {
              child.once("exit", () => {
                rmSync(dir, { recursive: true, force: true });
                done();
              });
              child.kill("SIGTERM");
            }),
        });
      }
    };
    createInterface({ input: child.stdout }).on("line", onLine);
    createInterface({ input: child.stderr }).on("line", onLine);
    child.once("exit", (code) => reject(new Error(`server exited (${code}):\n${log.join("\n")}`)));
  });
}

const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json" };

/** The built page from another origin, with /config.json pointing at `server`. */
export function staticServer(server) {
  const http = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/config.json") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ server }));
      return;
    }
    const file = join(dist, path === "/" ? "index.html" : path);
    if (!file.startsWith(dist) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) =>
    http.listen(0, "127.0.0.1", () =>
      resolve({ origin: `http://127.0.0.1:${http.address().port}`, close: () => http.close() }),
    ),
  );
}

/** Headless Debian Chromium, as this machine allows it (no sandbox as root, no background traffic). */
export function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A phone-sized page that records console messages. */
export async function phonePage(b) {
  const context = await b.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.console = [];
  page.on("console", (m) => page.console.push(m.text()));
  return page;
}

export async function shot(page, name) {
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`  screenshot: ${path}`);
}
