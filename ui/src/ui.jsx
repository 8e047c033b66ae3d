// Small building blocks shared by the pages: live data, errors, bars, badges, links.
import { useEffect, useState, useCallback, useRef } from "preact/hooks";
import { get, stream } from "./api.js";

// --- the cluster's event stream, shared: pages refresh when something changes ---
// Events come in batches (one flush per FLUSH_MS), so a burst of hundreds of
// events costs the page one render, not hundreds.
const changeListeners = new Set();
const FLUSH_MS = 200;
let closeEvents = null;
let queued = [];
let flushTimer = null;
function flush() {
  flushTimer = null;
  const batch = queued;
  queued = [];
  for (const fn of changeListeners) {
    try {
      fn(batch);
    } catch {
      /* one page's listener failing must not stop the others */
    }
  }
}
export const EVENT_TYPES = [
  "job.submitted", "job.updated", "job.deployed", "job.failed", "alloc.updated",
  "alloc.failed", "node.updated", "node.down", "secret.changed", "cert.renewed",
  "cert.failed", "ingress.updated",
];
export function startEvents() {
  if (closeEvents) return;
  const handlers = {};
  for (const t of EVENT_TYPES)
    handlers[t] = (data, e) => {
      queued.push({ type: t, data, id: e.lastEventId });
      if (queued.length > 500) queued = queued.slice(-500);
      if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
    };
  closeEvents = stream("/v1/events?stream=true", handlers);
}
export function stopEvents() {
  if (closeEvents) closeEvents();
  closeEvents = null;
}
/** `fn(events)` with each batch of cluster events (oldest first). */
export function onChange(fn) {
  changeListeners.add(fn);
  return () => changeListeners.delete(fn);
}

// Which event topics change what a path reads (null: any event).
const TOPICS_OF = [
  ["/v1/jobs", ["job", "alloc"]],
  ["/v1/allocations", ["alloc", "job", "node"]],
  ["/v1/nodes", ["node", "alloc"]],
  ["/v1/deployments", ["job", "alloc"]],
  ["/v1/ingress", ["ingress", "cert", "job", "alloc"]],
  ["/v1/secrets", ["secret"]],
  ["/v1/metrics", []],
  ["/v1/webhooks", []],
  ["/v1/acl", []],
];
function topicsOf(path) {
  const hit = TOPICS_OF.find(([p]) => path.startsWith(p));
  return hit ? hit[1] : null;
}

/** GET `path` now; again after cluster events that concern it, coalesced:
 * at most one request in flight, and the next no sooner than a gap that grows
 * with the read's cost (a 2,000-allocation list is not re-read per event);
 * and every `every` ms (15 s) regardless. */
export function useLive(path, { enabled = true, every = 15000 } = {}) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const reloadRef = useRef(() => {});
  useEffect(() => {
    if (!path || !enabled) return undefined;
    const c = { alive: true, busy: false, again: false, timer: null, last: 0, cost: 0 };
    const load = () => {
      if (!c.alive) return;
      if (c.busy) {
        c.again = true;
        return;
      }
      c.busy = true;
      c.again = false;
      const t0 = performance.now();
      get(path)
        .then(
          (data) => c.alive && setState({ data, error: null, loading: false }),
          (error) => c.alive && setState((s) => ({ data: s.data, error, loading: false })),
        )
        .finally(() => {
          c.busy = false;
          c.last = performance.now();
          c.cost = c.last - t0;
          if (c.again) schedule();
        });
    };
    const schedule = () => {
      if (c.timer || !c.alive) return;
      const gap = Math.max(500, Math.min(5000, 4 * c.cost));
      const wait = Math.max(100, c.last + gap - performance.now());
      c.timer = setTimeout(() => {
        c.timer = null;
        load();
      }, wait);
    };
    reloadRef.current = load;
    load();
    const topics = topicsOf(path);
    const tick = setInterval(load, every);
    const off = onChange((batch) => {
      if (topics && !batch.some((ev) => topics.includes(ev.type.split(".")[0]))) return;
      schedule();
    });
    return () => {
      c.alive = false;
      clearInterval(tick);
      clearTimeout(c.timer);
      off();
    };
  }, [path, enabled, every]);
  const reload = useCallback(() => reloadRef.current(), []);
  return { ...state, reload };
}

export function ErrorNote({ error, what }) {
  if (!error) return null;
  const refused = error.status === 403;
  return (
    <div class="error" role="alert">
      <strong>{refused ? "Not allowed: " : "Error: "}</strong>
      {what ? `${what}: ` : ""}
      {error.message}
      {error.code ? <span class="muted"> ({error.status} {error.code}{error.requestId ? `, ${error.requestId}` : ""})</span> : null}
    </div>
  );
}

export function Bar({ label, used, total, unit }) {
  const pct = total > 0 ? Math.min(100, Math.round((100 * used) / total)) : 0;
  const cls = pct > 90 ? "bar hot" : pct > 70 ? "bar warm" : "bar";
  return (
    <div class="barwrap" title={`${label}: ${Math.round(used)} of ${Math.round(total)} ${unit}`}>
      <span class="barlabel">{label}</span>
      <div class={cls} role="progressbar" aria-label={label} aria-valuenow={pct} aria-valuemin="0" aria-valuemax="100">
        <div style={{ width: pct + "%" }} />
      </div>
      <span class="barnum">{pct}%</span>
    </div>
  );
}

export function Badge({ status }) {
  return <span class={"badge s-" + String(status).replace(/[^a-z]/gi, "")}>{status}</span>;
}

export function Link({ to, children, ...rest }) {
  return (
    <a
      href={"/ui" + to}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(to);
      }}
      {...rest}
    >
      {children}
    </a>
  );
}

const routeListeners = new Set();
export function navigate(to) {
  history.pushState(null, "", "/ui" + to);
  routeListeners.forEach((fn) => fn());
}
export function useRoute() {
  const read = () => location.pathname.replace(/^\/ui/, "") || "/";
  const [path, setPath] = useState(read());
  useEffect(() => {
    const fn = () => setPath(read());
    routeListeners.add(fn);
    addEventListener("popstate", fn);
    return () => {
      routeListeners.delete(fn);
      removeEventListener("popstate", fn);
    };
  }, []);
  return path;
}

export function ago(ms) {
  if (!ms) return "";
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function countBy(items, key) {
  const out = {};
  for (const it of items || []) out[it[key]] = (out[it[key]] || 0) + 1;
  return out;
}

export function Counts({ counts, label }) {
  const entries = Object.entries(counts || {});
  return (
    <ul class="counts" aria-label={label}>
      {entries.length === 0 ? <li class="muted">none</li> : null}
      {entries.map(([k, v]) => (
        <li key={k}>
          <Badge status={k} /> <b>{v}</b>
        </li>
      ))}
    </ul>
  );
}

/** A button that runs an async action and shows the API's refusal next to it. */
export function Action({ label, run, confirm: ask, danger, onDone, done }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [ok, setOk] = useState(null);
  const click = async () => {
    if (ask && !window.confirm(ask)) return;
    setBusy(true);
    setError(null);
    setOk(null);
    try {
      const result = await run();
      if (done) setOk(typeof done === "function" ? done(result) : done);
      onDone?.();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="action">
      <button type="button" class={danger ? "danger" : ""} disabled={busy} onClick={click}>
        {label}
      </button>
      {ok ? <span class="ok" role="status">{ok}</span> : null}
      <ErrorNote error={error} what={label} />
    </span>
  );
}
