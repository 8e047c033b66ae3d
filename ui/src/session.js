// The panel's session: sign in, sign out, and the refresh that renews the
// session cookie before its JWT expires (`[auth] jwt_ttl`), as long as the
// server's refresh window (`[auth] refresh_ttl`) is open.
//
// The cookie is HttpOnly, so when the JWT expires is kept in localStorage
// (`expires_at` is no secret), where a reloaded page and the other tabs find
// it, together with when to refresh. Tabs share the cookie: one tab refreshes
// (under a Web Lock, after checking that neither the stored time nor the CSRF
// cookie moved), the others see the new time (a `storage` event) and send the
// new cookie with their next request; a request that went out with the old
// one just before gets 401 and is sent once more (api.js).
//
// The server keeps no grace for a replaced JWT (its grace window is for a
// refresh token presented twice): the old cookie is refused from the moment
// of the refresh. A refresh refused (the refresh window is over, the session
// was logged out or revoked) shows the sign-in form, and nothing is retried.

import { ApiError, csrf, send, signedOut, withRefreshLock } from "./api.js";

const KEY = "heroctl.session";
const SHARE = 0.8; // refresh after this share of the time left...
const LEAD_MS = 5000; // ...or this long before expiry, whichever is sooner,
const FLOOR = 0.5; // but never before this share (a very short jwt_ttl)
const RETRY_MS = 10000; // a refresh that failed without an answer (no leader, network)
const MOVED_MS = 1000; // another tab refreshed: read its stored time after this
const MAX_TIMER_MS = 86400000; // setTimeout's delay must fit 32 bits: re-check daily

let timer = null;
let active = false;
let memo = null; // the last remembered times, for a browser without storage
// The CSRF cookie when this tab last scheduled: another value under the lock
// means another tab refreshed (or signed in) first. The cookie is the sure
// sign: localStorage reaches the other tabs a moment later, not at once.
let seen = "";

/** `{ expires, refreshAt }` in this browser's clock (ms), or null. */
function stored() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY));
    return Number.isFinite(v?.expires) && Number.isFinite(v?.refreshAt) ? v : null;
  } catch {
    return null;
  }
}

/** When to refresh a JWT that expires at `expires`, from `now` (both ms). */
export function refreshAt(expires, now) {
  const left = Math.max(0, expires - now);
  return now + Math.max(left * FLOOR, Math.min(left * SHARE, left - LEAD_MS));
}

/** Keep a login's or refresh's `expires_at`, moved into this browser's clock
 * by the answer's Date header (the browser's clock may be off the server's). */
function remember(data, r) {
  const expiresAt = Date.parse(data?.expires_at);
  if (!Number.isFinite(expiresAt)) return;
  const now = Date.now();
  const date = Date.parse(r.headers.get("Date") || "");
  // Date has whole seconds: +500 ms is the middle of the second it names.
  const skew = Number.isFinite(date) ? date + 500 - now : 0;
  const expires = expiresAt - skew;
  memo = { expires, refreshAt: refreshAt(expires, now) };
  try {
    localStorage.setItem(KEY, JSON.stringify(memo));
  } catch {
    /* no storage (a private mode): this tab still refreshes from its timer */
  }
}

function current() {
  return stored() || memo;
}

function forget() {
  memo = null;
  try {
    localStorage.removeItem(KEY);
  } catch {
    /* nothing kept */
  }
}

function arm(ms) {
  clearTimeout(timer);
  timer = setTimeout(tick, Math.max(0, Math.min(ms, MAX_TIMER_MS)));
}

/** Schedule the next refresh from the stored times; none stored (a session
 * from before this panel kept them): refresh now, to learn its expiry. */
function schedule() {
  if (!active) return;
  const s = current();
  seen = csrf();
  arm(s ? s.refreshAt - Date.now() : 0);
}

/** The refresh itself, under the lock: "done", "fresh" (another tab did
 * it), "moved" (another tab did it, its time not stored here yet), "refused"
 * (the session is over) or "failed" (no answer: try again). */
async function refreshOnce() {
  return withRefreshLock(async () => {
    const s = current();
    if (s && Date.now() < s.refreshAt) return "fresh";
    if (csrf() !== seen) return "moved";
    let answer;
    try {
      answer = await send("POST", "/v1/auth/refresh", {});
    } catch {
      return "failed";
    }
    const { r, data, sentWith } = answer;
    if (r.ok) {
      remember(data, r);
      return "done";
    }
    if (r.status !== 401 && r.status !== 403) return "failed";
    // Refused, but the cookie changed meanwhile: a tab without the lock (a
    // browser without Web Locks) refreshed first, with the same old cookie.
    return csrf() && csrf() !== sentWith ? "fresh" : "refused";
  });
}

async function tick() {
  timer = null;
  if (!active) return;
  const s = current();
  if (s && Date.now() < s.refreshAt) return schedule(); // moved by another tab, or a capped timer
  const outcome = await refreshOnce();
  if (!active) return;
  if (outcome === "refused") {
    // The refresh window is over, or the session was ended (signed out here
    // or elsewhere, revoked): the sign-in form, as for any other 401.
    stop();
    forget();
    signedOut();
  } else if (outcome === "moved") {
    seen = csrf();
    arm(MOVED_MS); // the other tab's stored time is on its way
  } else if (outcome === "failed") {
    // Again before expiry; once expired, the next request's 401 shows the
    // sign-in form. No stored expiry (a session from an older panel): later.
    const left = s ? s.expires - Date.now() : 2 * RETRY_MS;
    if (left > 1000) arm(Math.min(RETRY_MS, left / 2));
  } else {
    schedule();
  }
}

function onStorage(e) {
  if (e.key === KEY && active && stored()) schedule();
}

function onVisible() {
  // A sleeping computer delays timers: a tab shown again checks at once.
  if (document.visibilityState === "visible") schedule();
}

/** Keep the signed-in session renewed from now on (idempotent). */
export function start() {
  if (active) return;
  active = true;
  window.addEventListener("storage", onStorage);
  document.addEventListener("visibilitychange", onVisible);
  schedule();
}

/** No more refreshes from this tab (signed out, or the session is over). */
export function stop() {
  active = false;
  clearTimeout(timer);
  timer = null;
  window.removeEventListener("storage", onStorage);
  document.removeEventListener("visibilitychange", onVisible);
}

export async function signIn(creds) {
  const { r, data } = await send("POST", "/v1/auth/login", { ...creds, cookie: true });
  if (!r.ok) throw new ApiError(r.status, data);
  remember(data, r);
  return data;
}

export async function signOut() {
  stop();
  forget();
  const { r, data } = await send("POST", "/v1/auth/logout", {});
  if (!r.ok) throw new ApiError(r.status, data);
}
