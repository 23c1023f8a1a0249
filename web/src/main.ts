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
const resendButton = $<HTMLButtonElement>("resend");

let client: Client<typeof AuthService>;
let phone = "";
let maxAttempts = 5;
let wrongTries = 0;
let refreshToken = "";
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

function sentence(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".");
}

function waitText(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return `${m} min ${s.toString().padStart(2, "0")} s`;
}

function show(id: string, text: string | null) {
  const el = $<HTMLElement>(id);
  el.hidden = text === null;
  el.textContent = text ?? "";
}

/** Shows `render(secondsLeft)` in `id`, ticking down; `done` runs at zero. */
function countdown(id: string, seconds: number, render: (s: number) => string, done?: () => void) {
  clearInterval(timers.get(id));
  let left = seconds;
  const el = $<HTMLElement>(id);
  const tick = () => {
    if (left <= 0) {
      clearInterval(timers.get(id));
      timers.delete(id);
      done?.();
      return;
    }
    el.textContent = render(left);
    el.dataset.secondsLeft = String(left);
    left -= 1;
  };
  tick();
  timers.set(id, window.setInterval(tick, 1000));
}

function stopCountdown(id: string) {
  clearInterval(timers.get(id));
  timers.delete(id);
}

/** The message a person should see for a refusal, and what to do next. */
function explain(r: Refusal, where: "phone" | "code" | "session"): string {
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
    case "TOKEN_INVALID":
    case "TOKEN_MISSING":
    case "SESSION_ENDED":
    case "REFRESH_TOKEN_REUSED":
      return "Your session has ended. Sign in again.";
  }
  if (r.code === Code.Unknown || r.code === Code.Unavailable || r.code === Code.Internal) {
    return "Cannot reach the sign-in service. Check your connection and try again.";
  }
  return where === "session" ? "Something went wrong. Sign in again." : "Something went wrong. Try again.";
}

/** Cooldowns and rate limits: a live countdown from RetryInfo. */
function showWait(id: string, r: Refusal, onDone: () => void) {
  const seconds = r.retryAfter ?? 60;
  const what =
    r.reason === "OTP_RESEND_COOLDOWN"
      ? "A code was sent recently. You can ask for a new one in"
      : "Too many tries. Try again in";
  $<HTMLElement>(id).hidden = false;
  countdown(id, seconds, (s) => `${what} ${waitText(s)}.`, () => {
    show(id, null);
    onDone();
  });
}

function step(which: "phone" | "code" | "signed-in") {
  phoneStep.hidden = which !== "phone";
  codeStep.hidden = which !== "code";
  signedIn.hidden = which !== "signed-in";
  show("notice", null);
  (which === "phone" ? phoneInput : which === "code" ? otpInput : $("refresh")).focus();
}

function busy(button: string, on: boolean) {
  $<HTMLButtonElement>(button).disabled = on;
}

function codeSent(sentPhone: string, res: { resendAfterSeconds: number; maxAttempts: number; devOtp: string }) {
  phone = sentPhone;
  maxAttempts = res.maxAttempts || 5;
  wrongTries = 0;
  otpInput.value = "";
  show("code-error", null);
  show("sent-to", `We sent a code by SMS to +91 ${sentPhone.replace(/\D/g, "").slice(-10)}.`);
  show("dev-otp", res.devOtp ? `Development server: your code is ${res.devOtp}` : null);
  resendAfter(res.resendAfterSeconds);
  step("code");
}

function resendAfter(seconds: number) {
  resendButton.disabled = true;
  countdown("resend", seconds, (s) => `Send a new code in ${waitText(s)}`, () => {
    resendButton.disabled = false;
    resendButton.textContent = "Send a new code";
  });
}

phoneStep.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show("phone-error", null);
  stopCountdown("phone-error");
  $("have-code").hidden = true;
  busy("send", true);
  const typed = phoneInput.value.trim();
  try {
    codeSent(typed, await client.requestOtp({ phoneNumber: typed }));
  } catch (err) {
    const r = refusal(err);
    if (r.reason === "OTP_RESEND_COOLDOWN" || r.reason === "RATE_LIMITED") {
      phone = typed;
      // A code already on its way: let the person type it.
      $("have-code").hidden = r.reason !== "OTP_RESEND_COOLDOWN";
      showWait("phone-error", r, () => {});
    } else {
      show("phone-error", explain(r, "phone"));
    }
  } finally {
    busy("send", false);
  }
});

$("have-code").addEventListener("click", () => {
  stopCountdown("phone-error");
  show("phone-error", null);
  $("have-code").hidden = true;
  codeSent(phone, { resendAfterSeconds: 0, maxAttempts, devOtp: "" });
});

codeStep.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show("code-error", null);
  busy("verify", true);
  try {
    const res = await client.verifyOtp({ phoneNumber: phone, otp: otpInput.value.trim() });
    refreshToken = res.refreshToken;
    show("user-phone", res.user?.phoneNumber ?? "");
    show("user-id", res.user?.id ?? "");
    show("session-id", res.sessionId);
    sessionTimes(res.refreshTokenExpiresAt, res.accessTokenExpiresAt);
    show("session-note", res.newUser ? "Welcome! Your account is ready." : null);
    show("session-error", null);
    step("signed-in");
  } catch (err) {
    const r = refusal(err);
    if (r.reason === "OTP_INVALID") wrongTries += 1;
    if (r.reason === "OTP_ATTEMPTS_EXHAUSTED") {
      stopCountdown("resend");
      resendButton.disabled = false;
      resendButton.textContent = "Send a new code";
    }
    if (r.reason === "RATE_LIMITED") showWait("code-error", r, () => {});
    else show("code-error", explain(r, "code"));
    otpInput.select();
  } finally {
    busy("verify", false);
  }
});

resendButton.addEventListener("click", async () => {
  show("code-error", null);
  resendButton.disabled = true;
  try {
    codeSent(phone, await client.resendOtp({ phoneNumber: phone }));
    show("code-error", null);
  } catch (err) {
    const r = refusal(err);
    if (r.reason === "OTP_RESEND_COOLDOWN" || r.reason === "RATE_LIMITED") {
      resendAfter(r.retryAfter ?? 60);
      showWait("code-error", r, () => {});
    } else {
      resendButton.disabled = false;
      show("code-error", explain(r, "code"));
    }
  }
});

$("change-number").addEventListener("click", () => {
  stopCountdown("resend");
  step("phone");
});

function sessionTimes(session?: Timestamp, access?: Timestamp) {
  for (const [id, ts] of [["session-expiry", session], ["access-expiry", access]] as const) {
    const el = $<HTMLElement>(id);
    const when = ts ? timestampDate(ts) : undefined;
    el.textContent = when ? when.toLocaleString() : "";
    el.dataset.ms = when ? String(when.getTime()) : "";
  }
}

$("refresh").addEventListener("click", async () => {
  show("session-error", null);
  busy("refresh", true);
  try {
    const res = await client.refreshSession({ refreshToken });
    refreshToken = res.refreshToken;
    sessionTimes(res.refreshTokenExpiresAt, res.accessTokenExpiresAt);
    show("session-note", `Session refreshed at ${new Date().toLocaleTimeString()}.`);
  } catch (err) {
    signOut(explain(refusal(err), "session"), "error");
  } finally {
    busy("refresh", false);
  }
});

$("logout").addEventListener("click", async () => {
  busy("logout", true);
  try {
    await client.logout({ refreshToken, allSessions: false });
    signOut("You are signed out.", "ok");
  } catch (err) {
    // Already ended or not: either way this browser forgets the session.
    signOut(explain(refusal(err), "session"), "error");
  } finally {
    busy("logout", false);
  }
});

function signOut(message: string, kind: "ok" | "error") {
  refreshToken = "";
  step("phone");
  const notice = $<HTMLElement>("notice");
  notice.className = kind;
  show("notice", message);
}

/** Where the service is: this page's own origin, unless `/config.json` names another. */
async function serverUrl(): Promise<string> {
  try {
    const res = await fetch("/config.json", { cache: "no-store" });
    if (res.ok) {
      const cfg = (await res.json()) as { server?: string };
      if (cfg.server) return cfg.server;
    }
  } catch {
    // No config: same origin.
  }
  return window.location.origin;
}

client = createClient(AuthService, createGrpcWebTransport({ baseUrl: await serverUrl() }));
phoneStep.dataset.ready = "true";
phoneInput.focus();
