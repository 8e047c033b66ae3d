// Nodes: resources, allocations, drain with a deadline, eligibility.
import { useState } from "preact/hooks";
import { post } from "../api.js";
import { may } from "../perm.js";
import { Action, Badge, Bar, ErrorNote, useLive } from "../ui.jsx";

function Drain({ node, onDone }) {
  const [minutes, setMinutes] = useState(60);
  if (node.drain) {
    return <Action label={`Stop draining ${node.name}`} run={() => post(`/v1/nodes/${node.id}/drain`, { enable: false })} onDone={onDone} />;
  }
  return (
    <span class="scale">
      <input type="number" min="0" aria-label={`Drain deadline for ${node.name} (minutes)`} value={minutes} onInput={(e) => setMinutes(Number(e.currentTarget.value))} />
      <Action
        label={`Drain ${node.name}`}
        danger
        confirm={`Drain ${node.name}? Its allocations move to other nodes.`}
        run={() => post(`/v1/nodes/${node.id}/drain`, { enable: true, deadline_seconds: Math.round(minutes * 60) })}
        onDone={onDone}
      />
    </span>
  );
}

export function Nodes({ me }) {
  const nodes = useLive("/v1/nodes");
  const metrics = useLive("/v1/metrics", { enabled: may(me, "metrics") });
  const used = Object.fromEntries((metrics.data?.nodes || []).map((n) => [n.id, n]));
  const canWrite = may(me, "nodes", "write");
  return (
    <>
      <h1>Nodes</h1>
      <ErrorNote error={nodes.error} what="nodes" />
      <table aria-label="Nodes">
        <thead><tr><th>Node</th><th>Status</th><th>Eligibility</th><th>Allocated</th><th>Usage</th><th>Drivers</th>{canWrite ? <th>Actions</th> : null}</tr></thead>
        <tbody>
          {(nodes.data || []).map((n) => {
            const m = used[n.id];
            return (
              <tr key={n.id}>
                <td><b>{n.name}</b><div class="muted">{n.address}</div></td>
                <td><Badge status={n.status} />{n.drain ? <> <Badge status="draining" /></> : null}</td>
                <td>{n.eligibility}</td>
                <td>
                  {n.allocated.allocations} allocations
                  <Bar label={`${n.name} cpu reserved`} used={n.allocated.cpu} total={n.cpu} unit="MHz" />
                  <Bar label={`${n.name} memory reserved`} used={n.allocated.memory} total={n.memory} unit="MB" />
                </td>
                <td>
                  {m ? (
                    <>
                      <Bar label={`${n.name} cpu used`} used={m.cpu.used_mhz} total={m.cpu.total_mhz} unit="MHz" />
                      <Bar label={`${n.name} memory used`} used={m.memory.used_mb} total={m.memory.total_mb} unit="MB" />
                      {m.disk ? <Bar label={`${n.name} disk used`} used={m.disk.used_mb} total={m.disk.total_mb} unit="MB" /> : null}
                    </>
                  ) : <span class="muted">—</span>}
                </td>
                <td>{(n.drivers || []).join(", ")}</td>
                {canWrite ? (
                  <td class="buttons">
                    <Drain node={n} onDone={nodes.reload} />
                    <Action
                      label={n.eligibility === "eligible" ? `Mark ${n.name} ineligible` : `Mark ${n.name} eligible`}
                      run={() => post(`/v1/nodes/${n.id}/eligibility`, { eligible: n.eligibility !== "eligible" })}
                      onDone={nodes.reload}
                    />
                  </td>
                ) : null}
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}
