// Allocations: the list, and one allocation (task states, restarts, health,
// ports, its timeline) with its logs live: follow, pause, stream filter, search.
import { useEffect, useRef, useState } from "preact/hooks";
import { post, stream } from "../api.js";
import { may } from "../perm.js";
import { Action, Badge, ErrorNote, ago, useLive } from "../ui.jsx";
import { AllocTable } from "./jobs.jsx";

const SHOWN = 500;

export function Allocations({ me }) {
  const [status, setStatus] = useState("");
  const [all, setAll] = useState(false);
  const allocs = useLive("/v1/allocations");
  const list = (allocs.data || []).filter((a) => !status || a.status === status);
  // thousands of rows re-rendered on every refresh would freeze the page: the
  // first SHOWN unless asked (the status filter narrows the list first)
  const shown = all ? list : list.slice(0, SHOWN);
  return (
    <>
      <h1>Allocations</h1>
      <label>
        Status{" "}
        <select aria-label="Filter by status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          <option value="">all</option>
          {["pending", "running", "complete", "failed", "lost"].map((s) => <option key={s}>{s}</option>)}
        </select>
      </label>
      <ErrorNote error={allocs.error} what="allocations" />
      <AllocTable allocs={shown} />
      {shown.length < list.length ? (
        <p>
          <span class="muted">{SHOWN} of {list.length} shown. </span>
          <button type="button" onClick={() => setAll(true)}>Show all {list.length} allocations</button>
        </p>
      ) : null}
    </>
  );
}

const MAX_LINES = 5000;

function Logs({ id }) {
  const [lines, setLines] = useState([]);
  const [paused, setPaused] = useState(false);
  const [follow, setFollow] = useState(true);
  const [which, setWhich] = useState("all");
  const [search, setSearch] = useState("");
  const [note, setNote] = useState(null);
  const buffer = useRef([]);
  const pausedRef = useRef(false);
  const box = useRef(null);
  pausedRef.current = paused;
  useEffect(() => {
    buffer.current = [];
    setLines([]);
    const flush = () => {
      if (!pausedRef.current && buffer.current.length) {
        const add = buffer.current;
        buffer.current = [];
        setLines((old) => old.concat(add).slice(-MAX_LINES));
      }
    };
    const tick = setInterval(flush, 200); // a burst of lines renders once
    const close = stream(`/v1/logs/${id}?stream=true&lines=200`, {
      log: (d) => buffer.current.push(d),
      error: (d) => setNote(d.message),
      dropped: (d) => setNote(`${d.lines} lines dropped (the stream could not keep up)`),
    });
    return () => {
      clearInterval(tick);
      close();
    };
  }, [id]);
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, follow]);
  const needle = search.toLowerCase();
  const shown = lines.filter(
    (l) => (which === "all" || l.stream === which) && (!needle || l.line.toLowerCase().includes(needle)),
  );
  return (
    <section aria-labelledby="h-logs">
      <h2 id="h-logs">Logs</h2>
      <div class="toolbar">
        <button type="button" aria-pressed={paused} onClick={() => setPaused(!paused)}>
          {paused ? "Resume" : "Pause"}
        </button>
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> Follow
        </label>
        <label>
          Stream{" "}
          <select aria-label="Log stream" value={which} onChange={(e) => setWhich(e.currentTarget.value)}>
            <option value="all">stdout and stderr</option>
            <option value="stdout">stdout</option>
            <option value="stderr">stderr</option>
          </select>
        </label>
        <input type="search" placeholder="Search" aria-label="Search logs" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        <span class="muted">{shown.length} lines{paused ? ", paused" : ""}</span>
      </div>
      {note ? <p class="muted">{note}</p> : null}
      <pre class="logs" ref={box} aria-label="Log lines" tabindex="0">
        {shown.map((l, i) => (
          <div key={l.us + ":" + i} class={l.stream === "stderr" ? "stderr" : ""}>
            <span class="muted">{l.ts.slice(11, 23)} {l.task}</span> {l.line}
          </div>
        ))}
      </pre>
    </section>
  );
}

export function AllocPage({ me, id }) {
  const alloc = useLive(`/v1/allocations/${id}`);
  const a = alloc.data;
  return (
    <>
      <h1>Allocation {a ? a.name : id.slice(0, 8)}</h1>
      <ErrorNote error={alloc.error} what="allocation" />
      {a ? (
        <>
          <p>
            <Badge status={a.status} /> on <b>{a.node_name}</b>, job {a.job} version {a.job_version}, healthy:{" "}
            {a.healthy == null ? "—" : a.healthy ? "yes" : "no"}, restarts {a.restarts}
            {a.desired_status !== "run" ? ` (desired ${a.desired_status}: ${a.desired_reason || ""})` : ""}
          </p>
          {may(me, "allocations", "write") && a.desired_status === "run" ? (
            <p class="buttons">
              <Action label="Restart allocation" run={() => post(`/v1/allocations/${a.id}/restart`)} onDone={alloc.reload} />
              <Action label="Stop allocation" danger confirm="Stop this allocation?" run={() => post(`/v1/allocations/${a.id}/stop`)} onDone={alloc.reload} />
            </p>
          ) : null}
          <table aria-label="Tasks">
            <thead><tr><th>Task</th><th>State</th><th>Restarts</th><th>Exit code</th><th>Started</th><th>Check</th></tr></thead>
            <tbody>
              {Object.entries(a.task_states || {}).map(([t, s]) => (
                <tr key={t}>
                  <td>{t}</td><td><Badge status={s.state} />{s.failed ? " (failed)" : ""}</td><td>{s.restarts}</td>
                  <td>{s.exit_code ?? "—"}</td><td class="muted">{ago(s.started_at)}</td>
                  <td>{s.check_ok == null ? "—" : s.check_ok ? "passing" : "failing"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {Object.keys(a.ports || {}).length ? (
            <p>Ports: {Object.entries(a.ports).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ")}</p>
          ) : null}
          <h2>Timeline</h2>
          <ol class="timeline" aria-label="Timeline">
            {(a.events || []).map((e, i) => (
              <li key={i}>
                <span class="muted">{new Date(e.ts).toISOString().slice(11, 19)}</span> <code>{e.type}</code> {e.message}
              </li>
            ))}
          </ol>
          {may(me, "logs") ? <Logs id={a.id} /> : null}
        </>
      ) : null}
    </>
  );
}
