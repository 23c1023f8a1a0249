// The sign-in page: gRPC-Web straight from the browser through Connect, reading grpc-status
// and the google.rpc error details (ErrorInfo, RetryInfo, BadRequest) of every refusal.
// Tokens live in memory only: a reload signs out.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AuthService } from "./gen/arogya/auth/v1/auth_pb";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb";
import "./style.css";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const phoneStep = $<HTMLFormElement>("phone-step");
const codeStep = $<HTMLFormElement>("code-step");
const signedIn = $<HTMLElement>("signed-in");
const phoneInput = $<HTMLInputElement>("phone");
const otpInput = $<HTMLInputElement>("otp");
const sendButton = $<HTMLButtonElement>("send");
const resendButton = $<HTMLButtonElement>("resend");
const haveCode = $<HTMLButtonElement>("have-code");

let client: Client<typeof AuthService>;
/** The number the current code belongs to. */
let phone = "";
let maxAttempts = 5;
/** Wrong codes typed on this page since the current code was issued. */
let wrongTries = 0;
/** When the server allows the next code for `phone` (ms since the epoch). */
let cooldownUntil = 0;
let refreshToken = "";
/** One call at a time; a reply is dropped if the page moved to another step meanwhile. */
let pending = false;
let stepNumber = 0;
const timers = new Map<string, number>();

/** What a refusal says, from its status and rich details. */
interface Refusal {
  code: Code;
  reason: string;
  retryAfter: number | undefined;
  violation: string | undefined;
}

function refusal(err: unknown): Refusal {
  const e = ConnectError.from(err);
  const retry = e.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return {
    code: e.code,
    reason: e.findDetails(ErrorInfoSchema)[0]?.reason ?? "",
    retryAfter: retry ? Number(retry.seconds) + Math.ceil(retry.nanos / 1e9) : undefined,
    violation: e.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.description,
  };
}

const SESSION_OVER = new Set(["TOKEN_INVALID", "TOKEN_MISSING", "SESSION_ENDED", "REFRESH_TOKEN_REUSED"]);

function sentence(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".");
}

function waitText(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return `${m} min ${s.toString().padStart(2, "0")} s`;
}

function stopCountdown(id: string) {
  clearInterval(timers.get(id));
  timers.delete(id);
}

/** Sets (or, with null, hides) a message; any countdown running in it stops. */
function show(id: string, text: string | null) {
  stopCountdown(id);
  const el = $<HTMLElement>(id);
  el.hidden = text === null;
  el.textContent = text ?? "";
  delete el.dataset.secondsLeft;
}

/**
 * A live countdown to `deadline` in `id`: `prefix` is said once (screen readers hear the
 * first wait, not every tick), the ticking number is for the eyes. `done` runs once, at zero.
 */
function countdown(id: string, deadline: number, prefix: string, suffix: string, done: () => void) {
  show(id, null);
  const el = $<HTMLElement>(id);
  const left = () => Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  if (left() === 0) {
    done();
    return;
  }
  const spoken = document.createElement("span");
  spoken.className = "sr-only";
  spoken.textContent = `${prefix} ${waitText(left())}${suffix}`;
  const ticking = document.createElement("span");
  ticking.setAttribute("aria-hidden", "true");
  el.replaceChildren(spoken, ticking);
  el.hidden = false;
  const tick = () => {
    const s = left();
    if (s === 0) {
      stopCountdown(id);
      done();
      return;
    }
    ticking.textContent = `${prefix} ${waitText(s)}${suffix}`;
    el.dataset.secondsLeft = String(s);
  };
  tick();
  timers.set(id, window.setInterval(tick, 250));
}

/** The message a person should see for a refusal. */
function explain(r: Refusal): string {
  switch (r.reason) {
    case "INVALID_PHONE_NUMBER":
    case "INVALID_OTP":
      return sentence(r.violation ?? "check what you typed");
    case "OTP_INVALID": {
      const left = Math.max(maxAttempts - wrongTries, 0);
      return `That code is wrong or has expired. ${left} ${left === 1 ? "attempt" : "attempts"} left.`;
    }
    case "OTP_ATTEMPTS_EXHAUSTED":
      return "Too many wrong codes. Ask for a new code.";
    case "SMS_UNAVAILABLE":
      return "We could not send the SMS. Try again in a moment.";
    case "BACKEND_UNAVAILABLE":
      return "The sign-in service is busy. Try again in a moment.";
  }
  if (SESSION_OVER.has(r.reason)) return "Your session has ended. Sign in again.";
  if (r.code === Code.Unknown || r.code === Code.Unavailable || r.code === Code.Internal) {
    return "Cannot reach the sign-in service. Check your connection and try again.";
  }
  return "Something went wrong. Try again.";
}

/** Marks `input` as the thing to fix and puts the cursor there. */
function invalid(input: HTMLInputElement) {
  input.setAttribute("aria-invalid", "true");
  input.focus();
  input.select();
}
for (const input of [phoneInput, otpInput]) {
  input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
}
phoneInput.addEventListener("input", () => {
  haveCode.hidden = true;
  sendButton.disabled = false;
  show("phone-error", null);
});

function step(which: "phone" | "code" | "signed-in") {
  stepNumber += 1;
  for (const id of [...timers.keys()]) stopCountdown(id);
  phoneStep.hidden = which !== "phone";
  codeStep.hidden = which !== "code";
  signedIn.hidden = which !== "signed-in";
  show("notice", null);
  (which === "phone" ? phoneInput : which === "code" ? otpInput : $("refresh")).focus();
}

/** Runs one call unless another is running; the reply is dropped if the step changed. */
async function call<T>(
  buttons: HTMLElement[],
  run: () => Promise<T>,
  apply: (r: T) => void,
  fail: (r: Refusal) => void,
) {
  if (pending) return;
  pending = true;
  const at = stepNumber;
  const controls = buttons as HTMLButtonElement[];
  const was = controls.map((b) => b.disabled);
  controls.forEach((b) => (b.disabled = true));
  let outcome: { ok: true; res: T } | { ok: false; r: Refusal };
  try {
    outcome = { ok: true, res: await run() };
  } catch (err) {
    outcome = { ok: false, r: refusal(err) };
  }
  controls.forEach((b, i) => (b.disabled = was[i]));
  pending = false;
  if (stepNumber !== at) return;
  if (outcome.ok) apply(outcome.res);
  else fail(outcome.r);
}

/** The resend button waits for the server's cooldown. */
function resendWhenAllowed() {
  resendButton.disabled = true;
  countdown("resend", cooldownUntil, "Send a new code in", "", () => {
    resendButton.disabled = false;
    resendButton.textContent = "Send a new code";
  });
}

function codeIssued(number: string, res: { resendAfterSeconds: number; maxAttempts: number; devOtp: string }) {
  phone = number;
  maxAttempts = res.maxAttempts || 5;
  wrongTries = 0;
  cooldownUntil = Date.now() + res.resendAfterSeconds * 1000;
  enterCode(res.devOtp);
}

function enterCode(devOtp: string) {
  step("code");
  otpInput.value = "";
  show("code-error", null);
  show("sent-to", `We sent a code by SMS to +91 ${phone.replace(/\D/g, "").slice(-10)}.`);
  show("dev-otp", devOtp ? `Development server: your code is ${devOtp}` : null);
  resendWhenAllowed();
}

/** RESOURCE_EXHAUSTED with RetryInfo: a live countdown, the way out closed until it ends. */
function wait(id: string, r: Refusal, button: HTMLButtonElement) {
  const seconds = r.retryAfter ?? 60;
  const cooldown = r.reason === "OTP_RESEND_COOLDOWN";
  button.disabled = true;
  countdown(
    id,
    Date.now() + seconds * 1000,
    cooldown ? "A code was sent recently. You can ask for a new one in" : "Too many tries. Try again in",
    ".",
    () => {
      button.disabled = false;
    },
  );
  return cooldown;
}

phoneStep.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const typed = phoneInput.value.trim();
  haveCode.hidden = true;
  void call(
    [sendButton],
    () => client.requestOtp({ phoneNumber: typed }),
    (res) => codeIssued(typed, res),
    (r) => {
      if (r.reason === "OTP_RESEND_COOLDOWN" || r.reason === "RATE_LIMITED") {
        // Whichever it is, asking again now only spends the budget; the button waits.
        if (wait("phone-error", r, sendButton)) {
          // A code is on its way to this number: let the person type it.
          phone = typed;
          cooldownUntil = Date.now() + (r.retryAfter ?? 60) * 1000;
          haveCode.hidden = false;
        }
        return;
      }
      show("phone-error", explain(r));
      invalid(phoneInput);
    },
  );
});

haveCode.addEventListener("click", () => enterCode(""));

codeStep.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const verify = $<HTMLButtonElement>("verify");
  void call(
    [verify, resendButton],
    () => client.verifyOtp({ phoneNumber: phone, otp: otpInput.value.trim() }),
    (res) => {
      refreshToken = res.refreshToken;
      step("signed-in");
      show("user-phone", res.user?.phoneNumber ?? "");
      show("user-id", res.user?.id ?? "");
      show("session-id", res.sessionId);
      sessionTimes(res.refreshTokenExpiresAt, res.accessTokenExpiresAt);
      show("session-note", res.newUser ? "Welcome! Your account is ready." : null);
      show("session-error", null);
    },
    (r) => {
      if (r.reason === "OTP_INVALID") wrongTries += 1;
      if (r.reason === "RATE_LIMITED") {
        wait("code-error", r, verify);
        return;
      }
      show("code-error", explain(r));
      invalid(otpInput);
    },
  );
});

resendButton.addEventListener("click", () => {
  void call(
    [resendButton],
    () => client.resendOtp({ phoneNumber: phone }),
    (res) => codeIssued(phone, res),
    (r) => {
      if (r.reason === "OTP_RESEND_COOLDOWN" || r.reason === "RATE_LIMITED") {
        wait("code-error", r, resendButton);
        return;
      }
      show("code-error", explain(r));
    },
  );
});

$("change-number").addEventListener("click", () => step("phone"));

function sessionTimes(session?: Timestamp, access?: Timestamp) {
  for (const [id, ts] of [["session-expiry", session], ["access-expiry", access]] as const) {
    const el = $<HTMLElement>(id);
    const when = ts ? timestampDate(ts) : undefined;
    el.textContent = when ? when.toLocaleString() : "";
    el.dataset.ms = when ? String(when.getTime()) : "";
  }
}

/** Session calls: an ended session signs out; anything else keeps the session and says why. */
function sessionFailed(r: Refusal) {
  if (SESSION_OVER.has(r.reason)) {
    signOut(explain(r), "error");
  } else {
    show("session-note", null);
    show("session-error", explain(r));
  }
}

$("refresh").addEventListener("click", () => {
  show("session-error", null);
  void call(
    [$("refresh"), $("logout")],
    () => client.refreshSession({ refreshToken }),
    (res) => {
      refreshToken = res.refreshToken;
      sessionTimes(res.refreshTokenExpiresAt, res.accessTokenExpiresAt);
      show("session-note", `Session refreshed at ${new Date().toLocaleTimeString()}.`);
    },
    sessionFailed,
  );
});

$("logout").addEventListener("click", () => {
  show("session-error", null);
  void call(
    [$("refresh"), $("logout")],
    () => client.logout({ refreshToken, allSessions: false }),
    () => signOut("You are signed out.", "ok"),
    sessionFailed,
  );
});

function signOut(message: string, kind: "ok" | "error") {
  refreshToken = "";
  step("phone");
  const notice = $<HTMLElement>("notice");
  notice.className = kind;
  show("notice", message);
}

/**
 * Where the service is: this page's own origin, unless a `/config.json` beside the page (on
 * a static server other than the service) names another http(s) origin.
 */
async function serverUrl(): Promise<string> {
  try {
    const res = await fetch("/config.json", { cache: "no-store", signal: AbortSignal.timeout(3000) });
    if (res.ok) {
      const { server } = (await res.json()) as { server?: string };
      if (server) {
        const url = new URL(server);
        if (url.protocol === "https:" || url.protocol === "http:") return url.origin;
      }
    }
  } catch {
    // No (valid) config: same origin.
  }
  return window.location.origin;
}

client = createClient(AuthService, createGrpcWebTransport({ baseUrl: await serverUrl() }));
$<HTMLFieldSetElement>("phone-fields").disabled = false;
phoneStep.dataset.ready = "true";
phoneInput.focus();
