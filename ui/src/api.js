// The panel's only way to the cluster: the public /v1 API, same origin, the
// session in an HttpOnly cookie (never readable here) and its CSRF token,
// which the server derives from the session, sent back on every write.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error || "http_" + status;
    this.requestId = body?.request_id;
  }
}

const listeners = new Set();
/** Called with no argument when the API says the session is over (401). */
export function onSignedOut(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
/** Tell every onSignedOut listener that the session is over. */
export function signedOut() {
  listeners.forEach((fn) => fn());
}

/** The session's CSRF token: it changes with every login and refresh, so it
 * also tells which session a request went out with. */
export function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)heroctl_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

const REFRESH_LOCK = "heroctl-session-refresh";
/** Run `fn` while no other tab of this origin refreshes the session (Web
 * Locks; where the browser has none, `fn` just runs). */
export function withRefreshLock(fn) {
  return navigator.locks ? navigator.locks.request(REFRESH_LOCK, fn) : Promise.resolve().then(fn);
}

const READ_TRIES = 3;

/** fetch(), a read tried again after a network error (the browser saw the
 * host's network change, a server restarting): it changes nothing, so
 * repeating it is safe. A write's network error is the caller's to see. */
async function fetchRetryingReads(path, init) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(path, init);
    } catch (err) {
      if (init.method !== "GET" || attempt >= READ_TRIES) throw err;
      await new Promise((done) => setTimeout(done, 250 * attempt));
    }
  }
}

/** One request, as is: `{ r, data, sentWith }` (the CSRF token of the session it went out with). */
export async function send(method, path, body) {
  const headers = { Accept: "application/json" };
  const sentWith = csrf();
  if (method !== "GET") headers["X-CSRF-Token"] = sentWith;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const init = {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  };
  const r = await fetchRetryingReads(path, init);
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text.slice(0, 200) };
  }
  return { r, data, sentWith };
}

export async function api(method, path, body) {
  let { r, data, sentWith } = await send(method, path, body);
  const stale = r.status === 401 || (r.status === 403 && data?.error === "csrf_failed");
  if (stale && !path.startsWith("/v1/auth/")) {
    // The session may have been refreshed (here or in another tab) while this
    // request was on its way with the old cookie (or CSRF token), which the
    // server no longer takes: once a refresh under way is over, a new cookie
    // means one more try.
    if (csrf() === sentWith) await withRefreshLock(() => {});
    if (csrf() && csrf() !== sentWith) ({ r, data } = await send(method, path, body));
  }
  if (!r.ok) {
    const err = new ApiError(r.status, data);
    if (r.status === 401 && !path.startsWith("/v1/auth/login")) signedOut();
    throw err;
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const put = (path, body) => api("PUT", path, body ?? {});
export const del = (path) => api("DELETE", path);

/** A server-sent-event stream (the cookie goes along; no token in the URL). */
export function stream(path, handlers) {
  const es = new EventSource(path, { withCredentials: true });
  for (const [event, fn] of Object.entries(handlers)) {
    es.addEventListener(event, (e) => {
      try {
        fn(JSON.parse(e.data), e);
      } catch {
        /* a frame we cannot read: skip it */
      }
    });
  }
  return () => es.close();
}
