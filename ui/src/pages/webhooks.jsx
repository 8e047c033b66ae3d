// Webhooks: each with what it sends and how its deliveries went; a
// webhook's attempts (newest first), the retry in progress, and redeliver.
import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { del, post } from "../api.js";
import { may } from "../perm.js";
import { Action, Badge, ErrorNote, useLive } from "../ui.jsx";

function Deliveries({ me, id }) {
  const d = useLive(`/v1/webhooks/${encodeURIComponent(id)}/deliveries`, { every: 5000 });
  const x = d.data;
  const canWrite = may(me, "webhooks", "write");
  const queued = new Set(x?.redeliver || []);
  // one row per delivery: its newest attempt (the list is newest first)
  const seen = new Set();
  const latest = (x?.attempts || []).filter((a) => (seen.has(a.delivery) ? false : seen.add(a.delivery)));
  return (
    <div class="detail" role="region" aria-label={`Deliveries of ${id}`}>
      <ErrorNote error={d.error} what="deliveries" />
      {x?.pending ? (
        <p class="note" role="status">
          Retrying delivery <code>{x.pending.delivery}</code> (event {x.pending.seq}), {x.pending.attempts} attempt{x.pending.attempts === 1 ? "" : "s"} so far.
        </p>
      ) : null}
      <table aria-label={`Deliveries of webhook ${id}`}>
        <thead>
          <tr><th>Delivery</th><th>Event</th><th>Attempt</th><th>Result</th><th>Time</th><th>Took</th><th>Actions</th></tr>
        </thead>
        <tbody>
          {latest.map((a) => (
            <tr key={a.delivery}>
              <td><code>{a.delivery}</code>{a.redelivery ? <span class="muted"> (redelivery)</span> : null}</td>
              <td>{a.event} <span class="muted">#{a.seq}</span></td>
              <td>{a.attempt}</td>
              <td>
                <Badge status={a.status} /> {a.code ? `HTTP ${a.code}` : ""} {a.error ? <span class="muted">{a.error}</span> : null}
              </td>
              <td class="muted">{(a.time || "").replace("T", " ").slice(0, 19)}</td>
              <td class="muted">{a.duration_ms != null ? `${a.duration_ms} ms` : ""}</td>
              <td>
                {queued.has(a.delivery) ? <span class="muted">redelivery queued</span> : null}
                {canWrite && !queued.has(a.delivery) ? (
                  <Action
                    label={`Redeliver ${a.delivery}`}
                    run={() => post(`/v1/webhooks/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(a.delivery)}/redeliver`)}
                    done="Queued"
                    onDone={d.reload}
                  />
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {x && latest.length === 0 ? <p class="muted">No deliveries yet.</p> : null}
    </div>
  );
}

function NewWebhook({ onDone }) {
  const [error, setError] = useState(null);
  const [secret, setSecret] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    const events = String(f.get("events") || "").split(",").map((s) => s.trim()).filter(Boolean);
    setError(null);
    try {
      const body = { url: f.get("url") };
      if (events.length) body.events = events;
      body.secret = f.get("secret");
      const w = await post("/v1/webhooks", body);
      setSecret(`Webhook ${w.id} created.`);
      form.reset();
      onDone?.();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={submit} aria-label="New webhook" class="inline">
      <label>URL <input name="url" type="url" required placeholder="https://example.com/hook" /></label>
      <label>Events <input name="events" placeholder="job, alloc.failed (all when empty)" /></label>
      <label>Secret <input name="secret" type="password" autocomplete="new-password" required /></label>
      <button type="submit">Add webhook</button>
      {secret ? <span class="ok" role="status">{secret}</span> : null}
      <ErrorNote error={error} what="webhook" />
    </form>
  );
}

export function Webhooks({ me }) {
  const hooks = useLive("/v1/webhooks", { every: 5000 });
  const [open, setOpen] = useState(null);
  const canWrite = may(me, "webhooks", "write");
  return (
    <>
      <h1>Webhooks</h1>
      {canWrite ? <NewWebhook onDone={hooks.reload} /> : null}
      <ErrorNote error={hooks.error} what="webhooks" />
      <table aria-label="Webhooks">
        <thead>
          <tr><th>Webhook</th><th>URL</th><th>Events</th><th>Delivered</th><th>Failed</th><th>Last</th><th>Actions</th></tr>
        </thead>
        <tbody>
          {(hooks.data || []).map((w) => (
            <Fragment key={w.id}>
              <tr>
                <td><code>{w.id}</code></td>
                <td>{w.url}</td>
                <td>{(w.events || []).join(", ") || "all"}</td>
                <td>{w.delivery?.delivered ?? 0}</td>
                <td>{w.delivery?.failed ?? 0}</td>
                <td>
                  {w.delivery?.last_status ? <Badge status={w.delivery.last_status} /> : <span class="muted">never</span>}{" "}
                  <span class="muted">{(w.delivery?.last_attempt || "").replace("T", " ").slice(0, 19)}</span>
                  {w.delivery?.pending ? <span class="muted"> (retrying)</span> : null}
                </td>
                <td class="buttons">
                  <button type="button" aria-expanded={open === w.id} onClick={() => setOpen(open === w.id ? null : w.id)}>
                    Deliveries of {w.id}
                  </button>
                  {canWrite ? (
                    <Action label={`Delete ${w.id}`} danger confirm={`Delete webhook ${w.url}?`} run={() => del(`/v1/webhooks/${encodeURIComponent(w.id)}`)} onDone={hooks.reload} />
                  ) : null}
                </td>
              </tr>
              {open === w.id ? (
                <tr><td colspan="7"><Deliveries me={me} id={w.id} /></td></tr>
              ) : null}
            </Fragment>
          ))}
        </tbody>
      </table>
      {hooks.data && hooks.data.length === 0 ? <p class="muted">No webhooks.</p> : null}
    </>
  );
}
