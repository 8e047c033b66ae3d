// Ingress: the domains the cluster serves, their routes (and which
// allocations serve each), the certificate's status and expiry, and renew.
import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { post } from "../api.js";
import { may } from "../perm.js";
import { Action, Badge, ErrorNote, useLive } from "../ui.jsx";

/** `not_after` (seconds since the epoch) as a date and how far off it is. */
export function expiry(notAfter) {
  if (!notAfter) return "—";
  const ms = Number(notAfter) * 1000;
  const days = Math.round((ms - Date.now()) / 86_400_000);
  const when = new Date(ms).toISOString().slice(0, 10);
  return days >= 0 ? `${when} (in ${days} day${days === 1 ? "" : "s"})` : `${when} (expired ${-days} day${days === -1 ? "" : "s"} ago)`;
}

function routeText(r) {
  return `${r.path || "/"} → ${r.job}/${r.group}:${r.port}`;
}

function Domain({ me, host, onDone }) {
  const d = useLive(`/v1/ingress/${encodeURIComponent(host)}`);
  const x = d.data;
  return (
    <div class="detail" aria-label={`Domain ${host}`} role="region">
      <ErrorNote error={d.error} what={host} />
      {x ? (
        <>
          <p>
            Certificate: <Badge status={x.cert?.status || "off"} /> {x.tls}
            {x.cert?.issuer ? `, issued by ${x.cert.issuer}` : ""}
            {x.cert?.not_after ? `, expires ${expiry(x.cert.not_after)}` : ""}
            {x.cert?.renew_after ? `, renewed after ${new Date(x.cert.renew_after * 1000).toISOString().slice(0, 10)}` : ""}
          </p>
          {x.cert?.last_error ? <p class="error" role="alert">Last attempt failed: {x.cert.last_error}</p> : null}
          {x.cert?.sha256 ? <p class="muted">SHA-256 {x.cert.sha256}</p> : null}
          <table aria-label={`Routes of ${host}`}>
            <thead><tr><th>Path</th><th>Job / group : port</th><th>Allocations</th></tr></thead>
            <tbody>
              {(x.routes || []).map((r, i) => (
                <tr key={i}>
                  <td>{r.path || "/"}</td>
                  <td>{r.job}/{r.group}:{r.port}</td>
                  <td>
                    {(r.allocations || []).length === 0 ? <span class="muted">none</span> : null}
                    {(r.allocations || []).map((a) => (
                      <div key={a.id}>
                        <code>{a.id.slice(0, 8)}</code> {a.address || "no address"} v{a.version} <Badge status={a.status} />{" "}
                        {a.routed ? "routed" : a.healthy ? "not routed (version)" : "not serving"}
                      </div>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </div>
  );
}

export function Ingress({ me }) {
  const list = useLive("/v1/ingress");
  const [open, setOpen] = useState(null);
  const canWrite = may(me, "ingress", "write");
  return (
    <>
      <h1>Ingress</h1>
      <ErrorNote error={list.error} what="ingress" />
      <table aria-label="Domains">
        <thead>
          <tr><th>Domain</th><th>From</th><th>Routes</th><th>Certificate</th><th>Expires</th><th>Actions</th></tr>
        </thead>
        <tbody>
          {(list.data || []).map((d) => (
            <Fragment key={d.host}>
              <tr>
                <td>{d.host}</td>
                <td>{d.source === "job" ? `job ${d.job}` : "API"}</td>
                <td>{(d.routes || []).map(routeText).join(", ")}</td>
                <td><Badge status={d.tls?.status || "off"} /> <span class="muted">{d.tls?.mode}</span></td>
                <td>{expiry(d.tls?.not_after)}</td>
                <td class="buttons">
                  <button type="button" aria-expanded={open === d.host} onClick={() => setOpen(open === d.host ? null : d.host)}>
                    Details of {d.host}
                  </button>
                  {canWrite && d.tls?.mode === "acme" ? (
                    <Action
                      label={`Renew ${d.host}`}
                      run={() => post(`/v1/ingress/${encodeURIComponent(d.host)}/renew`)}
                      onDone={list.reload}
                      done="Renewal requested: the leader orders a new certificate."
                    />
                  ) : null}
                </td>
              </tr>
              {open === d.host ? (
                <tr><td colspan="6"><Domain me={me} host={d.host} /></td></tr>
              ) : null}
            </Fragment>
          ))}
        </tbody>
      </table>
      {list.data && list.data.length === 0 ? <p class="muted">No domains: a job's <code>ingress</code> or <code>heroctl ingress</code> adds them.</p> : null}
    </>
  );
}
