// Metrics: cpu and memory over a range, per node or job, charted with uPlot
// from /v1/metrics/query.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { get } from "../api.js";
import { ErrorNote } from "../ui.jsx";

const RANGES = ["1h", "6h", "24h", "7d"];
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

function Chart({ title, result }) {
  const el = useRef(null);
  useEffect(() => {
    if (!el.current || !result) return undefined;
    const series = result.series || [];
    const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
    const data = [times];
    for (const s of series) {
      const at = new Map(s.points.map((p) => [p[0], p[1]]));
      data.push(times.map((t) => (at.has(t) ? at.get(t) : null)));
    }
    const opts = {
      title,
      width: Math.min(900, el.current.clientWidth || 900),
      height: 260,
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.alloc ? s.alloc.slice(0, 8) : s.job || s.node || "total",
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
        })),
      ],
      axes: [{}, { label: result.unit }],
    };
    const plot = new uPlot(opts, data, el.current);
    return () => plot.destroy();
  }, [result, title]);
  const empty = result && !(result.series || []).some((s) => (s.points || []).length);
  if (empty) return <p class="muted" role="status">{title}: no samples in this range (nodes without an agent report none).</p>;
  return <div ref={el} role="img" aria-label={`${title} chart`} class="chart" />;
}

/** The query's scope: "" every node, or "node:ID", "job:NAME", "alloc:ID". */
function scopeParam(scope) {
  if (!scope) return "";
  const [kind, ...rest] = scope.split(":");
  return `&${kind}=${encodeURIComponent(rest.join(":"))}`;
}

export function Metrics() {
  const [range, setRange] = useState("1h");
  const [scope, setScope] = useState("");
  const [choices, setChoices] = useState({ nodes: [], jobs: [], allocs: [] });
  const [results, setResults] = useState({});
  const [error, setError] = useState(null);
  useEffect(() => {
    Promise.all([
      get("/v1/nodes").catch(() => []),
      get("/v1/jobs").catch(() => []),
      get("/v1/allocations?status=running").catch(() => []),
    ]).then(([nodes, jobs, allocs]) =>
      setChoices({
        nodes: nodes.map((n) => [n.id, n.name]),
        jobs: jobs.map((j) => j.name),
        // a long list is no help in a menu: the first 200 (a job's chart covers the rest)
        allocs: allocs.slice(0, 200).map((a) => [a.id, a.name]),
      }),
    );
  }, []);
  useEffect(() => {
    setError(null);
    const by = scopeParam(scope);
    let alive = true;
    Promise.all(["cpu", "memory"].map((m) => get(`/v1/metrics/query?metric=${m}&from=-${range}${by}`))).then(
      ([cpu, memory]) => alive && setResults({ cpu, memory }),
      (e) => alive && setError(e),
    );
    return () => {
      alive = false;
    };
  }, [range, scope]);
  return (
    <>
      <h1>Metrics</h1>
      <div class="toolbar">
        <label>
          Range{" "}
          <select aria-label="Time range" value={range} onChange={(e) => setRange(e.currentTarget.value)}>
            {RANGES.map((r) => <option key={r}>{r}</option>)}
          </select>
        </label>
        <label>
          Of{" "}
          <select aria-label="Nodes, a node, a job or an allocation" value={scope} onChange={(e) => setScope(e.currentTarget.value)}>
            <option value="">every node</option>
            <optgroup label="Node">
              {choices.nodes.map(([id, name]) => <option key={id} value={`node:${id}`}>node {name}</option>)}
            </optgroup>
            <optgroup label="Job">
              {choices.jobs.map((j) => <option key={j} value={`job:${j}`}>job {j}</option>)}
            </optgroup>
            <optgroup label="Allocation">
              {choices.allocs.map(([id, name]) => <option key={id} value={`alloc:${id}`}>allocation {id.slice(0, 8)} ({name})</option>)}
            </optgroup>
          </select>
        </label>
      </div>
      <ErrorNote error={error} what="metrics" />
      <Chart title="CPU" result={results.cpu} />
      <Chart title="Memory" result={results.memory} />
    </>
  );
}
