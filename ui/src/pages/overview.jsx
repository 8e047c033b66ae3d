// Overview: health, leader and peers, nodes with resource bars, jobs and
// allocations by status, the latest events as they happen.
import { useEffect, useState } from "preact/hooks";
import { get } from "../api.js";
import { may } from "../perm.js";
import { Badge, Bar, Counts, ErrorNote, Link, countBy, onChange, useLive } from "../ui.jsx";

function Health({ me }) {
  const status = useLive("/v1/cluster/status");
  const peers = useLive("/v1/cluster/peers");
  const s = status.data;
  return (
    <section aria-labelledby="h-health">
      <h2 id="h-health">Cluster</h2>
      <ErrorNote error={status.error} what="cluster status" />
      {s ? (
        <p>
          <Badge status={s.healthy ? "healthy" : "unhealthy"} /> leader <b>{s.leader || "none"}</b>,{" "}
          {s.reachable_members} of {s.members} servers reachable, raft term {s.raft_term}, index {s.applied_index}
        </p>
      ) : null}
      <table aria-label="Servers">
        <thead>
          <tr><th>Server</th><th>Role</th><th>Connected</th><th>Last contact</th><th>Raft</th></tr>
        </thead>
        <tbody>
          {(peers.data || []).map((p) => (
            <tr key={p.name}>
              <td>{p.name}</td>
              <td><Badge status={p.role} /></td>
              <td>{p.connected ? "yes" : "no"}</td>
              <td>{p.last_contact_ms == null ? "—" : `${p.last_contact_ms} ms`}</td>
              <td class="muted">{p.raft_address}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function NodesSummary({ me }) {
  const nodes = useLive("/v1/nodes");
  const metrics = useLive("/v1/metrics", { enabled: may(me, "metrics") });
  const used = {};
  for (const n of metrics.data?.nodes || []) used[n.id] = n;
  return (
    <section aria-labelledby="h-nodes">
      <h2 id="h-nodes">Nodes</h2>
      <ErrorNote error={nodes.error} what="nodes" />
      <div class="cards">
        {(nodes.data || []).map((n) => {
          const m = used[n.id];
          return (
            <div class="card" key={n.id}>
              <div>
                <b>{n.name}</b> <Badge status={n.status} /> {n.drain ? <Badge status="draining" /> : null}{" "}
                {n.eligibility !== "eligible" ? <Badge status={n.eligibility} /> : null}
              </div>
              <Bar label={`${n.name} cpu`} used={m ? m.cpu.used_mhz : n.allocated.cpu} total={m ? m.cpu.total_mhz : n.cpu} unit="MHz" />
              <Bar label={`${n.name} memory`} used={m ? m.memory.used_mb : n.allocated.memory} total={m ? m.memory.total_mb : n.memory} unit="MB" />
              {m?.disk ? <Bar label={`${n.name} disk`} used={m.disk.used_mb} total={m.disk.total_mb} unit="MB" /> : null}
              <div class="muted">{n.allocated.allocations} allocations</div>
            </div>
          );
        })}
      </div>
    </section>
  );
}

function RecentEvents() {
  const [events, setEvents] = useState([]);
  const [error, setError] = useState(null);
  useEffect(() => {
    get("/v1/events?limit=15").then(
      (list) => setEvents(list.slice(-15).reverse()),
      setError,
    );
    return onChange((batch) => {
      const time = new Date().toISOString();
      const fresh = batch.slice(-15).reverse().map((ev) => ({ id: ev.id, type: ev.type, data: ev.data, time }));
      setEvents((old) => [...fresh, ...old].slice(0, 15));
    });
  }, []);
  return (
    <section aria-labelledby="h-events">
      <h2 id="h-events">Recent events</h2>
      <ErrorNote error={error} what="events" />
      <ul class="events" aria-live="polite" aria-label="Recent events">
        {events.map((e) => (
          <li key={e.id}>
            <span class="muted">{(e.time || "").slice(11, 19)}</span> <code>{e.type}</code> {summary(e.data)}
          </li>
        ))}
      </ul>
    </section>
  );
}

export function summary(d) {
  if (!d || typeof d !== "object") return "";
  const parts = [];
  for (const k of ["job", "name", "alloc", "node", "status", "message", "reason"]) {
    if (d[k] != null && typeof d[k] !== "object") parts.push(`${k}=${d[k]}`);
  }
  return parts.join(" ");
}

export function Overview({ me }) {
  const jobs = useLive("/v1/jobs", { enabled: may(me, "jobs") });
  const allocs = useLive("/v1/allocations", { enabled: may(me, "allocations") });
  return (
    <>
      <h1>Overview</h1>
      {may(me, "cluster") ? <Health me={me} /> : null}
      {may(me, "nodes") ? <NodesSummary me={me} /> : null}
      <div class="cols">
        {may(me, "jobs") ? (
          <section aria-labelledby="h-jobs">
            <h2 id="h-jobs"><Link to="/jobs">Jobs</Link> by status</h2>
            <ErrorNote error={jobs.error} what="jobs" />
            <Counts counts={countBy(jobs.data, "status")} label="Jobs by status" />
          </section>
        ) : null}
        {may(me, "allocations") ? (
          <section aria-labelledby="h-allocs">
            <h2 id="h-allocs"><Link to="/allocations">Allocations</Link> by status</h2>
            <ErrorNote error={allocs.error} what="allocations" />
            <Counts counts={countBy(allocs.data, "status")} label="Allocations by status" />
          </section>
        ) : null}
      </div>
      {may(me, "events") ? <RecentEvents /> : null}
    </>
  );
}
