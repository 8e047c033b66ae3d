// Access › Tokens: create a token (its secret shown once, then never again);
// edit one's name, type, policies or roles (PUT /v1/acl/tokens/:accessor
// sends only what changed; the secret stays what it was); revoke one.
import { Fragment } from "preact";
import { del, post, put } from "../../api.js";
import { Action, ErrorNote, useLive } from "../../ui.jsx";
import { ApiForm, Cancel, EditButton, EditRow, Saved, joined, names, sameNames, useEditing, when } from "./forms.jsx";

const TYPES = ["client", "service", "management"];
const short = (t) => t.accessor_id.slice(0, 8);

function EditToken({ token, editing }) {
  const send = (f) => {
    const body = {};
    if (f.get("name") !== (token.name || "")) body.name = f.get("name");
    if (f.get("type") !== token.type) body.type = f.get("type");
    for (const key of ["policies", "roles"]) {
      const now = names(f.get(key));
      if (!sameNames(now, token[key])) body[key] = now;
    }
    if (!Object.keys(body).length) return Promise.resolve({ unchanged: true });
    return put(`/v1/acl/tokens/${encodeURIComponent(token.accessor_id)}`, body);
  };
  const said = (out) => (out.unchanged ? `Token ${short(token)}: nothing changed.` : `Token ${short(token)} saved.`);
  return (
    <ApiForm label={`Edit token ${short(token)}`} button={`Save token ${short(token)}`} send={send} reset={false} after={<Cancel editing={editing} />} onDone={(out) => editing.saved(said(out))}>
      <label>Name <input name="name" defaultValue={token.name || ""} autocomplete="off" /></label>
      <label>
        Type{" "}
        <select name="type" aria-label="Type">
          {TYPES.map((t) => <option key={t} value={t} selected={token.type === t}>{t}</option>)}
        </select>
      </label>
      <label>Policies <input name="policies" defaultValue={joined(token.policies)} placeholder="a, b" /></label>
      <label>Roles <input name="roles" defaultValue={joined(token.roles)} placeholder="a, b" /></label>
    </ApiForm>
  );
}

export function Tokens() {
  const tokens = useLive("/v1/acl/tokens");
  const editing = useEditing(tokens.reload);
  return (
    <section aria-labelledby="h-tokens">
      <h2 id="h-tokens">Tokens</h2>
      <ApiForm
        label="Create token"
        onDone={tokens.reload}
        said={(t) => `Token ${short(t)} created; its secret, shown only now: ${t.secret_id}`}
        send={(f) => {
          const b = { name: f.get("name"), type: f.get("type"), policies: names(f.get("policies")), roles: names(f.get("roles")) };
          const ttl = Number(f.get("ttl_hours"));
          if (ttl > 0) b.expiration_ttl = Math.round(ttl * 3600);
          return post("/v1/acl/tokens", b);
        }}
      >
        <label>Name <input name="name" autocomplete="off" /></label>
        <label>
          Type{" "}
          <select name="type" aria-label="Token type">
            {TYPES.map((t) => <option key={t} value={t}>{t}</option>)}
          </select>
        </label>
        <label>Policies <input name="policies" placeholder="a, b" /></label>
        <label>Roles <input name="roles" placeholder="a, b" /></label>
        <label>Expires in (hours) <input name="ttl_hours" type="number" min="0" step="any" /></label>
      </ApiForm>
      <ErrorNote error={tokens.error} what="tokens" />
      <Saved editing={editing} />
      <table aria-label="Tokens">
        <thead><tr><th>Accessor</th><th>Name</th><th>Type</th><th>Policies</th><th>Roles</th><th>Expires</th><th>Actions</th></tr></thead>
        <tbody>
          {(tokens.data || []).map((t) => (
            <Fragment key={t.accessor_id}>
              <tr>
                <td><code>{short(t)}</code></td>
                <td>{t.name}</td>
                <td>{t.type}</td>
                <td>{joined(t.policies)}</td>
                <td>{joined(t.roles)}</td>
                <td class="muted">{t.expires_at ? when(t.expires_at) : "never"}</td>
                <td class="buttons">
                  <EditButton editing={editing} id={t.accessor_id} label={`Edit token ${short(t)}`} />
                  <Action label={`Revoke token ${short(t)}`} danger confirm={`Revoke token ${t.name || t.accessor_id}?`} run={() => del(`/v1/acl/tokens/${encodeURIComponent(t.accessor_id)}`)} onDone={tokens.reload} />
                </td>
              </tr>
              {editing.open === t.accessor_id ? <EditRow span={7}><EditToken token={t} editing={editing} /></EditRow> : null}
            </Fragment>
          ))}
        </tbody>
      </table>
    </section>
  );
}
