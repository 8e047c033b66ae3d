// Small building blocks shared by the pages: live data, errors, bars, badges, links.
import { useEffect, useState, useCallback, useRef } from "preact/hooks";
import { get, stream } from "./api.js";

// --- the cluster's event stream, shared: pages refresh when something changes ---
const changeListeners = new Set();
let closeEvents = null;
export function startEvents() {
  if (closeEvents) return;
  const fire = (ev) => changeListeners.forEach((fn) => fn(ev));
  const types = [
    "job.submitted", "job.updated", "job.deployed", "job.failed", "alloc.updated",
    "alloc.failed", "node.updated", "node.down", "secret.changed", "cert.renewed",
    "cert.failed", "ingress.updated",
  ];
  const handlers = {};
  for (const t of types) handlers[t] = (data, e) => fire({ type: t, data, id: e.lastEventId });
  closeEvents = stream("/v1/events?stream=true", handlers);
}
export function stopEvents() {
  if (closeEvents) closeEvents();
  closeEvents = null;
}
export function onChange(fn) {
  changeListeners.add(fn);
  return () => changeListeners.delete(fn);
}

/** GET `path` now, again on every cluster change (debounced) and every 15 s. */
export function useLive(path, { enabled = true } = {}) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const timer = useRef(null);
  const load = useCallback(() => {
    if (!path || !enabled) return;
    get(path).then(
      (data) => setState({ data, error: null, loading: false }),
      (error) => setState((s) => ({ data: s.data, error, loading: false })),
    );
  }, [path, enabled]);
  useEffect(() => {
    load();
    const every = setInterval(load, 15000);
    const off = onChange(() => {
      clearTimeout(timer.current);
      timer.current = setTimeout(load, 250);
    });
    return () => {
      clearInterval(every);
      clearTimeout(timer.current);
      off();
    };
  }, [load]);
  return { ...state, reload: load };
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
export function Action({ label, run, confirm: ask, danger, onDone }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const click = async () => {
    if (ask && !window.confirm(ask)) return;
    setBusy(true);
    setError(null);
    try {
      await run();
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
      <ErrorNote error={error} what={label} />
    </span>
  );
}
