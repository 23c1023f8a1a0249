// The sign-in page in a real browser against a real server, as the vault's web app will use
// the service: gRPC-Web through Connect, errors from grpc-status and google.rpc details.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, staticServer, browser, phonePage, shot } from "./harness.mjs";

let server;
let chrome;
before(async () => {
  server = await startServer();
  chrome = await browser();
});
after(async () => {
  await chrome?.close();
  await server?.stop();
});

const errorOf = (page, id) => page.locator(`#${id}`);

test("a whole sign-in: code, wrong code, cooldown, sign-in, refresh, logout", async () => {
  const page = await phonePage(chrome);
  await page.goto(server.origin + "/");
  await page.waitForSelector("#phone-step[data-ready=true]");

  // Accessibility: labelled inputs, the code field autofills from SMS and opens the keypad.
  assert.equal(await page.getByLabel("Mobile number").getAttribute("type"), "tel");
  const otp = page.getByLabel("6-digit code");
  assert.equal(await otp.getAttribute("autocomplete"), "one-time-code");
  assert.equal(await otp.getAttribute("inputmode"), "numeric");

  // An invalid number: the BadRequest violation, in words.
  await page.getByLabel("Mobile number").fill("12345");
  await page.getByRole("button", { name: "Send code" }).click();
  await errorOf(page, "phone-error").getByText("10 digits and starts with 6, 7, 8 or 9").waitFor();
  assert.equal(await page.getByLabel("Mobile number").getAttribute("aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "phone", "focus back on the field");
  await shot(page, "1-invalid-number");

  // The code is sent; development shows it.
  await page.getByLabel("Mobile number").fill("98765 43210");
  await page.getByRole("button", { name: "Send code" }).click();
  await page.locator("#dev-otp").getByText(/your code is \d{6}/).waitFor();
  const dev = await page.locator("#dev-otp").textContent();
  const code = /(\d{6})/.exec(dev)[1];
  assert.match(await page.locator("#sent-to").textContent(), /9876543210/);
  assert.ok(await page.locator("#resend").isDisabled(), "resend waits for the cooldown");
  await shot(page, "2-code-sent");

  // A wrong code: how many attempts are left.
  const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, "0");
  await otp.fill(wrong);
  await page.getByRole("button", { name: "Sign in" }).click();
  await errorOf(page, "code-error").getByText("That code is wrong or has expired. 4 attempts left.").waitFor();
  await shot(page, "3-wrong-code");

  // Asking again at once: the server's RetryInfo drives a live countdown.
  await page.getByRole("button", { name: "Use a different number" }).click();
  await page.getByLabel("Mobile number").fill("9876543210");
  await page.getByRole("button", { name: "Send code" }).click();
  const wait = errorOf(page, "phone-error");
  await wait.getByText(/A code was sent recently\. You can ask for a new one in \d+ s\./).first().waitFor();
  const first = Number(await wait.getAttribute("data-seconds-left"));
  // The server's cooldown is 45 s here (the page's own fallback would be 60).
  assert.ok(first >= 35 && first <= 45, `countdown starts from RetryInfo: ${first}`);
  assert.ok(await page.getByRole("button", { name: "Send code" }).isDisabled(), "asking again waits");
  await page.waitForFunction(
    (n) => Number(document.getElementById("phone-error").dataset.secondsLeft) < n,
    first,
    { timeout: 5_000 },
  );
  await shot(page, "4-cooldown");

  // The code already sent still works.
  await page.getByRole("button", { name: "I already have a code" }).click();
  await otp.fill(code);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#signed-in").getByText("You are signed in").waitFor();
  assert.equal(await page.locator("#user-phone").textContent(), "+919876543210");
  assert.match(await page.locator("#user-id").textContent(), /^[0-9a-f-]{36}$/);
  const expiry = Number(await page.locator("#session-expiry").getAttribute("data-ms"));
  assert.ok(expiry > Date.now() + 29 * 24 * 3600 * 1000, "a 30-day session");
  await shot(page, "5-signed-in");

  // Refresh: the sliding expiry moves on (the wire has whole seconds: wait for the next one).
  await page.waitForFunction((ms) => Date.now() >= ms, expiry - 30 * 24 * 3600 * 1000 + 1000);
  await page.getByRole("button", { name: "Refresh session" }).click();
  await page.locator("#session-note").getByText("Session refreshed").waitFor();
  const after = Number(await page.locator("#session-expiry").getAttribute("data-ms"));
  assert.ok(after > expiry, `expiry moved: ${expiry} -> ${after}`);
  await shot(page, "6-refreshed");

  // Log out.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.locator("#notice").getByText("You are signed out.").waitFor();
  assert.ok(await page.locator("#phone-step").isVisible());
  await shot(page, "7-signed-out");
  await page.context().close();
});

test("too many wrong codes: the person is told to ask for a new code", async () => {
  const page = await phonePage(chrome);
  await page.goto(server.origin + "/");
  await page.waitForSelector("#phone-step[data-ready=true]");
  await page.getByLabel("Mobile number").fill("9123456789");
  await page.getByRole("button", { name: "Send code" }).click();
  await page.locator("#dev-otp").getByText(/your code is \d{6}/).waitFor();
  const code = /(\d{6})/.exec(await page.locator("#dev-otp").textContent())[1];
  const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, "0");
  for (let left = 4; left >= 1; left -= 1) {
    await page.getByLabel("6-digit code").fill(wrong);
    await page.getByRole("button", { name: "Sign in" }).click();
    await errorOf(page, "code-error").getByText(`${left} ${left === 1 ? "attempt" : "attempts"} left.`).waitFor();
  }
  await page.getByLabel("6-digit code").fill(wrong);
  await page.getByRole("button", { name: "Sign in" }).click();
  await errorOf(page, "code-error").getByText("Too many wrong codes. Ask for a new code.").waitFor();
  // The server keeps the resend cooldown: the button says when, rather than inviting a refusal.
  assert.ok(await page.locator("#resend").isDisabled());
  assert.match(await page.locator("#resend").textContent(), /Send a new code in \d+ s/);
  await shot(page, "8-too-many-attempts");
  await page.context().close();
});

test("the per-IP limit: a live countdown from RetryInfo, the button waiting", async () => {
  const limited = await startServer({ AROGYA_RATE_LIMIT__IP_OTP_REQUESTS__LIMIT: "1" });
  try {
    const page = await phonePage(chrome);
    await page.goto(limited.origin + "/");
    await page.waitForSelector("#phone-step[data-ready=true]");
    await page.getByLabel("Mobile number").fill("9876500003");
    await page.getByRole("button", { name: "Send code" }).click();
    await page.locator("#dev-otp").getByText(/your code is \d{6}/).waitFor();
    await page.getByRole("button", { name: "Use a different number" }).click();
    await page.getByLabel("Mobile number").fill("9876500004");
    await page.getByRole("button", { name: "Send code" }).click();
    const wait = errorOf(page, "phone-error");
    await wait.getByText(/Too many tries\. Try again in 1[45] min \d\d s\./).first().waitFor();
    assert.ok(await page.getByRole("button", { name: "Send code" }).isDisabled());
    assert.ok(await page.locator("#have-code").isHidden(), "no code is on its way to this number");
    await shot(page, "10-rate-limited");
    await page.context().close();
  } finally {
    await limited.stop();
  }
});

test("a page on an origin outside the CORS allow-list is refused by the browser", async () => {
  // The same page from another origin, pointed at the service (allow-list: localhost:5173).
  const elsewhere = await staticServer(server.origin);
  try {
    const page = await phonePage(chrome);
    await page.goto(elsewhere.origin + "/");
    await page.waitForSelector("#phone-step[data-ready=true]");
    await page.getByLabel("Mobile number").fill("9876500001");
    await page.getByRole("button", { name: "Send code" }).click();
    await errorOf(page, "phone-error").getByText("Cannot reach the sign-in service").waitFor();
    assert.ok(
      page.console.some((m) => /blocked by CORS policy/.test(m)),
      `the browser refused it: ${page.console.join("\n")}`,
    );
    await shot(page, "9-cors-refused");
    await page.context().close();
  } finally {
    elsewhere.close();
  }
});

test("the same page on an allowed origin works across origins", async () => {
  const elsewhere = await staticServer("");
  const allowed = await startServer({ AROGYA_CORS__ALLOWED_ORIGINS: elsewhere.origin });
  try {
    const page = await phonePage(chrome);
    await page.route("**/config.json", (route) =>
      route.fulfill({ contentType: "application/json", body: JSON.stringify({ server: allowed.origin }) }),
    );
    await page.goto(elsewhere.origin + "/");
    await page.waitForSelector("#phone-step[data-ready=true]");
    await page.getByLabel("Mobile number").fill("9876500002");
    await page.getByRole("button", { name: "Send code" }).click();
    await page.locator("#dev-otp").getByText(/your code is \d{6}/).waitFor();
    assert.ok(!page.console.some((m) => /CORS/.test(m)), page.console.join("\n"));
    await page.context().close();
  } finally {
    await allowed.stop();
    elsewhere.close();
  }
});
