// Jobs: the list, one job (versions and a diff, deployment progress with its
// buttons, allocations, placement failures, stop and scale), and submitting a
// job as YAML with the API's field-path errors shown at their line.
import { useEffect, useMemo, useState } from "preact/hooks";
import { stringify } from "yaml";
import { del, get, post } from "../api.js";
import { may } from "../perm.js";
import { Action, Badge, ErrorNote, Link, ago, navigate, useLive } from "../ui.jsx";
import { YamlEditor, leadingPath, lineOf, parseYaml } from "../yamledit.jsx";

export function Jobs({ me }) {
  const jobs = useLive("/v1/jobs");
  return (
    <>
      <h1>Jobs</h1>
      {may(me, "jobs", "write") ? (
        <p>
          <Link to="/jobs/new" class="button">Submit a job</Link>
        </p>
      ) : null}
      <ErrorNote error={jobs.error} what="jobs" />
      <table aria-label="Jobs">
        <thead>
          <tr><th>Name</th><th>Type</th><th>Status</th><th>Version</th><th>Groups (count)</th><th>Submitted</th></tr>
        </thead>
        <tbody>
          {(jobs.data || []).map((j) => (
            <tr key={j.name}>
              <td><Link to={`/jobs/${encodeURIComponent(j.name)}`}>{j.name}</Link></td>
              <td>{j.type}</td>
              <td><Badge status={j.status} /></td>
              <td>{j.version}</td>
              <td>{Object.entries(j.groups || {}).map(([g, c]) => `${g} (${c})`).join(", ")}</td>
              <td class="muted">{ago(j.submit_time)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {jobs.data && jobs.data.length === 0 ? <p class="muted">No jobs yet.</p> : null}
    </>
  );
}

const ACTIVE = ["running", "paused", "blocked-on-promotion"];

/** A rainbow group's older versions still serving or draining, in words. */
function drainingText(draining) {
  const rows = Object.entries(draining || {}).sort(([a], [b]) => Number(b) - Number(a));
  if (!rows.length) return "—";
  return rows
    .map(([v, r]) => `version ${v}: ${r.allocations ?? 0} allocation${r.allocations === 1 ? "" : "s"}, ${r.connections ?? 0} connection${r.connections === 1 ? "" : "s"}`)
    .join("; ");
}

function Deployment({ me, job }) {
  const deps = useLive(`/v1/deployments?job=${encodeURIComponent(job.name)}`, { enabled: may(me, "jobs") });
  const list = (deps.data || []).filter((d) => d.job === job.name);
  const d = list.sort((a, b) => b.create_index - a.create_index)[0];
  if (!d) return <ErrorNote error={deps.error} what="deployments" />;
  const active = ACTIVE.includes(d.status);
  const canWrite = may(me, "jobs", "write");
  const groups = Object.entries(d.groups || {});
  const canaried = groups.some(([, g]) => (g.desired_canaries || 0) > 0);
  const rainbow = d.strategy === "rainbow";
  const needsPromote = d.status === "blocked-on-promotion" && !d.promoted;
  return (
    <section aria-labelledby="h-dep">
      <h2 id="h-dep">Deployment of version {d.version}</h2>
      <p>
        <Badge status={d.status} /> {d.status_description} <span class="muted">({d.strategy}{d.promoted ? ", promoted" : ""})</span>
      </p>
      {needsPromote ? (
        <p class="note" role="status">
          The canaries are {groups.every(([, g]) => (g.healthy || 0) >= (g.desired_canaries || 0)) ? "healthy" : "not all healthy yet"}: promote to roll the rest of the version out, or fail the deployment to keep the previous version.
        </p>
      ) : null}
      <table aria-label="Deployment progress">
        <thead>
          <tr>
            <th>Group</th><th>Desired</th><th>Placed</th><th>Healthy</th><th>Unhealthy</th>
            {canaried ? <th>Canaries (healthy of wanted)</th> : null}
            {rainbow ? <th>Older versions draining</th> : null}
          </tr>
        </thead>
        <tbody>
          {groups.map(([g, s]) => (
            <tr key={g}>
              <td>{g}</td><td>{s.desired}</td><td>{s.placed}</td><td>{s.healthy}</td><td>{s.unhealthy}</td>
              {canaried ? (
                <td>
                  {(s.desired_canaries || 0) > 0
                    ? `${Math.min(s.healthy || 0, s.desired_canaries)} of ${s.desired_canaries}${(s.canaries || []).length ? ` (${s.canaries.map((c) => c.slice(0, 8)).join(", ")})` : ""}`
                    : "—"}
                </td>
              ) : null}
              {rainbow ? <td>{drainingText(s.draining)}</td> : null}
            </tr>
          ))}
        </tbody>
      </table>
      {canWrite && active ? (
        <p class="buttons">
          {needsPromote ? <Action label="Promote" run={() => post(`/v1/deployments/${d.id}/promote`)} onDone={deps.reload} /> : null}
          {d.status === "paused" ? (
            <Action label="Resume" run={() => post(`/v1/deployments/${d.id}/resume`)} onDone={deps.reload} />
          ) : d.status === "running" ? (
            <Action label="Pause" run={() => post(`/v1/deployments/${d.id}/pause`)} onDone={deps.reload} />
          ) : null}
          <Action label="Fail deployment" danger confirm="Fail this deployment?" run={() => post(`/v1/deployments/${d.id}/fail`)} onDone={deps.reload} />
        </p>
      ) : null}
    </section>
  );
}

/** The scheduler's placement failures in words, as `heroctl job status` says them. */
export function failureText(f, want) {
  if (typeof f === "string") return f;
  const n = f.count ?? 1;
  const of = want[f.group] != null ? ` of ${want[f.group]}` : "";
  const plural = (want[f.group] ?? n) === 1 ? "" : "s";
  const why = f.reason || f.message || "no reason given";
  const m = f.metrics || {};
  const seen = m.nodes_total != null ? ` (${m.nodes_evaluated ?? 0} of ${m.nodes_total} node${m.nodes_total === 1 ? "" : "s"} passed the constraints)` : "";
  return `Group ${f.group}: ${n}${of} allocation${plural} could not be placed: ${why}${seen}.`;
}

function diffLines(a, b) {
  // A line diff (longest common subsequence): fine for job specs of a few hundred lines.
  const x = a.split("\n");
  const y = b.split("\n");
  const n = x.length;
  const m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) out.push([" ", x[i++]]), j++;
    else if (L[i + 1][j] >= L[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}

const SPEC_KEYS = ["name", "type", "priority", "meta", "constraints", "groups", "update", "ingress"];
function specOf(v) {
  const out = {};
  for (const k of SPEC_KEYS) if (v[k] !== undefined) out[k] = v[k];
  return out;
}

function Versions({ me, job, onReverted }) {
  const name = job.name;
  const versions = useLive(`/v1/jobs/${encodeURIComponent(name)}/versions`);
  const list = versions.data || [];
  const [a, setA] = useState(null);
  const [b, setB] = useState(null);
  const byVersion = Object.fromEntries(list.map((v) => [v.version, v]));
  const va = byVersion[a ?? list[1]?.version ?? list[0]?.version];
  const vb = byVersion[b ?? list[0]?.version];
  const diff = useMemo(() => (va && vb ? diffLines(stringify(specOf(va)), stringify(specOf(vb))) : []), [va, vb]);
  return (
    <section aria-labelledby="h-versions">
      <h2 id="h-versions">Versions</h2>
      <ErrorNote error={versions.error} what="versions" />
      <p>
        <label>
          From{" "}
          <select aria-label="Diff from version" value={va?.version} onChange={(e) => setA(Number(e.currentTarget.value))}>
            {list.map((v) => <option key={v.version} value={v.version}>version {v.version}</option>)}
          </select>
        </label>{" "}
        <label>
          to{" "}
          <select aria-label="Diff to version" value={vb?.version} onChange={(e) => setB(Number(e.currentTarget.value))}>
            {list.map((v) => <option key={v.version} value={v.version}>version {v.version}</option>)}
          </select>
        </label>
      </p>
      {may(me, "jobs", "write") ? <Revert job={job} versions={list} onDone={() => { versions.reload(); onReverted?.(); }} /> : null}
      <pre class="diff" aria-label="Version diff">
        {diff.map(([k, line], i) => (
          <div key={i} class={k === "+" ? "add" : k === "-" ? "rem" : ""}>{k} {line}</div>
        ))}
      </pre>
    </section>
  );
}

function Revert({ job, versions, onDone }) {
  const older = versions.filter((v) => v.version !== job.version);
  const [version, setVersion] = useState("");
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const [busy, setBusy] = useState(false);
  const chosen = version === "" ? older[0]?.version : Number(version);
  const run = async () => {
    if (!window.confirm(`Revert job ${job.name} to version ${chosen}? This submits version ${chosen}'s spec as a new version.`)) return;
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const r = await post(`/v1/jobs/${encodeURIComponent(job.name)}/revert`, { version: chosen, job_modify_index: job.job_modify_index });
      setDone(`Reverted to version ${r.reverted_to}: now version ${r.version}.`);
      onDone?.();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="revert">
      <label>
        Revert to{" "}
        <input
          type="number"
          min="0"
          aria-label="Version to revert to"
          list="job-versions"
          placeholder={older[0] ? String(older[0].version) : ""}
          value={version}
          onInput={(e) => setVersion(e.currentTarget.value)}
        />
        <datalist id="job-versions">
          {older.map((v) => <option key={v.version} value={v.version} />)}
        </datalist>
      </label>{" "}
      <button type="button" disabled={busy || chosen == null || Number.isNaN(chosen)} onClick={run}>Revert</button>
      {done ? <span class="ok" role="status"> {done}</span> : null}
      {error?.code === "version_not_found" ? (
        <div class="error" role="alert">
          <strong>No such version: </strong>
          {error.message}. Pick one of the versions listed above.
        </div>
      ) : (
        <ErrorNote error={error} what="Revert" />
      )}
    </div>
  );
}

function Scale({ job, onDone }) {
  const [group, setGroup] = useState(job.groups[0]?.name);
  const g = job.groups.find((x) => x.name === group) || job.groups[0];
  const [count, setCount] = useState(g?.count ?? 1);
  useEffect(() => setCount(g?.count ?? 1), [group, job.version]);
  return (
    <span class="scale">
      {job.groups.length > 1 ? (
        <select aria-label="Group to scale" value={group} onChange={(e) => setGroup(e.currentTarget.value)}>
          {job.groups.map((x) => <option key={x.name}>{x.name}</option>)}
        </select>
      ) : null}
      <input type="number" min="0" aria-label="Count" value={count} onInput={(e) => setCount(Number(e.currentTarget.value))} />
      <Action label="Scale" run={() => post(`/v1/jobs/${encodeURIComponent(job.name)}/scale`, { group: g.name, count })} onDone={onDone} />
    </span>
  );
}

export function JobPage({ me, name }) {
  const job = useLive(`/v1/jobs/${encodeURIComponent(name)}`);
  const allocs = useLive(`/v1/allocations?job=${encodeURIComponent(name)}`, { enabled: may(me, "allocations") });
  const j = job.data;
  const canWrite = may(me, "jobs", "write");
  return (
    <>
      <h1>Job {name}</h1>
      <ErrorNote error={job.error} what="job" />
      {j ? (
        <>
          <p>
            <Badge status={j.status} /> {j.type}, version {j.version}, priority {j.priority}, submitted {ago(j.submit_time)}
          </p>
          {canWrite ? (
            <p class="buttons">
              <Link to={`/jobs/${encodeURIComponent(name)}/edit`} class="button">Edit</Link>
              <Scale job={j} onDone={job.reload} />
              <Action label="Stop job" danger confirm={`Stop job ${name} and all its allocations?`} run={() => del(`/v1/jobs/${encodeURIComponent(name)}`)} onDone={job.reload} />
            </p>
          ) : null}
          {(j.placement_failures || []).length ? (
            <section aria-labelledby="h-fail">
              <h2 id="h-fail">Cannot be placed</h2>
              <ul>
                {j.placement_failures.map((f, i) => (
                  <li key={i}>{failureText(f, Object.fromEntries((j.groups || []).map((g) => [g.name, g.count ?? 1])))}</li>
                ))}
              </ul>
            </section>
          ) : null}
          <Deployment me={me} job={j} />
          {may(me, "allocations") ? (
            <section aria-labelledby="h-jallocs">
              <h2 id="h-jallocs">Allocations</h2>
              <AllocTable allocs={allocs.data} />
            </section>
          ) : null}
          <Versions me={me} job={j} onReverted={job.reload} />
        </>
      ) : null}
    </>
  );
}

export function AllocTable({ allocs }) {
  return (
    <table aria-label="Allocations">
      <thead><tr><th>Allocation</th><th>Name</th><th>Node</th><th>Status</th><th>Version</th><th>Healthy</th><th>Last event</th></tr></thead>
      <tbody>
        {(allocs || []).map((a) => (
          <tr key={a.id}>
            <td><Link to={`/allocations/${a.id}`}>{a.id.slice(0, 8)}</Link></td>
            <td>{a.name}</td>
            <td>{a.node_name}</td>
            <td><Badge status={a.status} />{a.desired_status !== "run" ? <span class="muted"> ({a.desired_status})</span> : null}</td>
            <td>{a.job_version}</td>
            <td>{a.healthy == null ? "—" : a.healthy ? "yes" : "no"}</td>
            <td class="muted">{a.last_event ? `${a.last_event.message} (${ago(a.last_event.ts)})` : ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const EXAMPLE = `name: hello
type: service
groups:
  - name: web
    count: 1
    tasks:
      - name: main
        image: busybox:1.36
        command: ["sh", "-c", "while true; do echo hello; sleep 5; done"]
        resources:
          cpu: 100
          memory: 64
`;

export function SubmitJob({ me, name }) {
  const [text, setText] = useState(name ? "" : EXAMPLE);
  const [error, setError] = useState(null);
  const [line, setLine] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!name) return;
    get(`/v1/jobs/${encodeURIComponent(name)}`).then((j) => setText(stringify(specOf(j))), setError);
  }, [name]);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setLine(null);
    const parsed = parseYaml(text);
    if (parsed.error) {
      setError(parsed.error);
      setLine(parsed.line);
      return;
    }
    setBusy(true);
    try {
      const job = await post("/v1/jobs", parsed.value);
      navigate(`/jobs/${encodeURIComponent(job.name)}`);
    } catch (err) {
      setError(err);
      const path = leadingPath(err.message);
      if (path) setLine(lineOf(parsed.doc, text, path));
    } finally {
      setBusy(false);
    }
  };
  if (!may(me, "jobs", "write")) return <p>You may not submit jobs.</p>;
  return (
    <>
      <h1>{name ? `Edit job ${name}` : "Submit a job"}</h1>
      <form onSubmit={submit} aria-label="Job specification">
        <YamlEditor label="Job YAML" text={text} onInput={setText} error={error} line={line} />
        <button type="submit" disabled={busy}>Submit job</button>
      </form>
    </>
  );
}
