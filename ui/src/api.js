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

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)heroctl_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text.slice(0, 200) };
  }
  if (!r.ok) {
    const err = new ApiError(r.status, data);
    if (r.status === 401 && !path.startsWith("/v1/auth/login")) listeners.forEach((fn) => fn());
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

export function signIn(creds) {
  return api("POST", "/v1/auth/login", { ...creds, cookie: true });
}

export function signOut() {
  return api("POST", "/v1/auth/logout", {});
}
