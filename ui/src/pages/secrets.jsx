// Secrets: names and versions, create or add a version, rollback, delete; a
// value only on an explicit reveal, and only for whom may read that name.
import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { del, get, post } from "../api.js";
import { maySecret, may } from "../perm.js";
import { Action, ErrorNote, useLive } from "../ui.jsx";

function Reveal({ name }) {
  const [value, setValue] = useState(null);
  const [error, setError] = useState(null);
  if (value !== null) {
    return (
      <span>
        <code class="secret" aria-label={`Value of ${name}`}>{value}</code>{" "}
        <button type="button" onClick={() => setValue(null)}>Hide</button>
      </span>
    );
  }
  const reveal = () => get(`/v1/secrets/${encodeURIComponent(name)}`).then((s) => setValue(s.value), setError);
  return (
    <span>
      <button type="button" onClick={reveal}>Reveal {name}</button>
      <ErrorNote error={error} what="reveal" />
    </span>
  );
}

function Versions({ me, name, onDone }) {
  const versions = useLive(`/v1/secrets/${encodeURIComponent(name)}/versions`);
  return (
    <div>
      <ErrorNote error={versions.error} what="versions" />
      <ul aria-label={`Versions of ${name}`}>
        {(versions.data || []).map((v) => (
          <li key={v.version}>
            version {v.version} <span class="muted">{v.create_time}</span>
            {v.rollback_of ? ` (rollback of ${v.rollback_of})` : ""}
            {v.current ? " — current" : maySecret(me, name, "write") ? (
              <Action label={`Roll ${name} back to version ${v.version}`} run={() => post(`/v1/secrets/${encodeURIComponent(name)}/rollback`, { version: v.version })} onDone={() => { versions.reload(); onDone(); }} />
            ) : null}
          </li>
        ))}
      </ul>
    </div>
  );
}

function NewSecret({ onDone }) {
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    setError(null);
    try {
      await post("/v1/secrets", { name: f.get("name"), value: f.get("value") });
      form.reset();
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={submit} aria-label="New secret or version" class="inline">
      <label>Name <input name="name" required autocomplete="off" /></label>
      <label>Value <input name="value" type="password" required autocomplete="new-password" /></label>
      <button type="submit">Save secret</button>
      <ErrorNote error={error} what="save" />
    </form>
  );
}

export function Secrets({ me }) {
  const secrets = useLive("/v1/secrets");
  const [open, setOpen] = useState(null);
  return (
    <>
      <h1>Secrets</h1>
      {may(me, "secrets", "write") ? <NewSecret onDone={secrets.reload} /> : null}
      <ErrorNote error={secrets.error} what="secrets" />
      <table aria-label="Secrets">
        <thead><tr><th>Name</th><th>Version</th><th>Modified</th><th>Value</th><th>Actions</th></tr></thead>
        <tbody>
          {(secrets.data || []).map((s) => (
            <Fragment key={s.name}>
              <tr>
                <td>{s.name}</td>
                <td>{s.version}</td>
                <td class="muted">{s.modify_time}</td>
                <td>{maySecret(me, s.name, "read") ? <Reveal name={s.name} /> : <span class="muted">hidden</span>}</td>
                <td class="buttons">
                  <button type="button" aria-expanded={open === s.name} onClick={() => setOpen(open === s.name ? null : s.name)}>
                    Versions of {s.name}
                  </button>
                  {maySecret(me, s.name, "write") ? (
                    <Action label={`Delete ${s.name}`} danger confirm={`Delete secret ${s.name}?`} run={() => del(`/v1/secrets/${encodeURIComponent(s.name)}`)} onDone={secrets.reload} />
                  ) : null}
                </td>
              </tr>
              {open === s.name ? (
                <tr><td colspan="5"><Versions me={me} name={s.name} onDone={secrets.reload} /></td></tr>
              ) : null}
            </Fragment>
          ))}
        </tbody>
      </table>
    </>
  );
}
