// Access (management identities): users, tokens, policies and roles, each
// listed with its grants; create a user, a token (its secret shown once),
// a policy (rules as JSON) or a role; delete any.
import { useState } from "preact/hooks";
import { del, post } from "../api.js";
import { Action, ErrorNote, useLive } from "../ui.jsx";

const names = (s) => String(s || "").split(",").map((x) => x.trim()).filter(Boolean);
const when = (t) => (t ? String(typeof t === "number" ? new Date(t).toISOString() : t).replace("T", " ").slice(0, 19) : "—");

/** A form that POSTs what `body(formData)` makes, and says what came back. */
function CreateForm({ label, path, body, children, result, onDone }) {
  const [error, setError] = useState(null);
  const [said, setSaid] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    setError(null);
    setSaid(null);
    try {
      const made = await post(path, body(new FormData(form)));
      setSaid(result ? result(made) : "Created.");
      form.reset();
      onDone?.();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={submit} aria-label={label} class="inline">
      {children}
      <button type="submit">{label}</button>
      {said ? <span class="ok" role="status">{said}</span> : null}
      <ErrorNote error={error} what={label} />
    </form>
  );
}

function Users() {
  const users = useLive("/v1/acl/users");
  return (
    <section aria-labelledby="h-users">
      <h2 id="h-users">Users</h2>
      <CreateForm
        label="Create user"
        path="/v1/acl/users"
        onDone={users.reload}
        result={(u) => `User ${u.username} created.`}
        body={(f) => ({ username: f.get("username"), password: f.get("password"), type: f.get("type"), policies: names(f.get("policies")), roles: names(f.get("roles")) })}
      >
        <label>Username <input name="username" required autocomplete="off" /></label>
        <label>Password <input name="password" type="password" required autocomplete="new-password" /></label>
        <label>
          Type{" "}
          <select name="type" aria-label="User type">
            <option value="client">client</option>
            <option value="management">management</option>
          </select>
        </label>
        <label>Policies <input name="policies" placeholder="a, b" /></label>
        <label>Roles <input name="roles" placeholder="a, b" /></label>
      </CreateForm>
      <ErrorNote error={users.error} what="users" />
      <table aria-label="Users">
        <thead><tr><th>User</th><th>Type</th><th>Policies</th><th>Roles</th><th>Created</th><th>Actions</th></tr></thead>
        <tbody>
          {(users.data || []).map((u) => (
            <tr key={u.username}>
              <td>{u.username}</td>
              <td>{u.type}</td>
              <td>{(u.policies || []).join(", ")}</td>
              <td>{(u.roles || []).join(", ")}</td>
              <td class="muted">{when(u.create_time)}</td>
              <td>
                <Action label={`Delete user ${u.username}`} danger confirm={`Delete user ${u.username}?`} run={() => del(`/v1/acl/users/${encodeURIComponent(u.username)}`)} onDone={users.reload} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Tokens() {
  const tokens = useLive("/v1/acl/tokens");
  return (
    <section aria-labelledby="h-tokens">
      <h2 id="h-tokens">Tokens</h2>
      <CreateForm
        label="Create token"
        path="/v1/acl/tokens"
        onDone={tokens.reload}
        result={(t) => `Token ${t.accessor_id.slice(0, 8)} created; its secret, shown only now: ${t.secret_id}`}
        body={(f) => {
          const b = { name: f.get("name"), type: f.get("type"), policies: names(f.get("policies")), roles: names(f.get("roles")) };
          const ttl = Number(f.get("ttl_hours"));
          if (ttl > 0) b.expiration_ttl = Math.round(ttl * 3600);
          return b;
        }}
      >
        <label>Name <input name="name" autocomplete="off" /></label>
        <label>
          Type{" "}
          <select name="type" aria-label="Token type">
            <option value="client">client</option>
            <option value="service">service</option>
            <option value="management">management</option>
          </select>
        </label>
        <label>Policies <input name="policies" placeholder="a, b" /></label>
        <label>Roles <input name="roles" placeholder="a, b" /></label>
        <label>Expires in (hours) <input name="ttl_hours" type="number" min="0" step="any" /></label>
      </CreateForm>
      <ErrorNote error={tokens.error} what="tokens" />
      <table aria-label="Tokens">
        <thead><tr><th>Accessor</th><th>Name</th><th>Type</th><th>Policies</th><th>Roles</th><th>Expires</th><th>Actions</th></tr></thead>
        <tbody>
          {(tokens.data || []).map((t) => (
            <tr key={t.accessor_id}>
              <td><code>{t.accessor_id.slice(0, 8)}</code></td>
              <td>{t.name}</td>
              <td>{t.type}</td>
              <td>{(t.policies || []).join(", ")}</td>
              <td>{(t.roles || []).join(", ")}</td>
              <td class="muted">{t.expires_at ? when(t.expires_at) : "never"}</td>
              <td>
                <Action label={`Revoke token ${t.accessor_id.slice(0, 8)}`} danger confirm={`Revoke token ${t.name || t.accessor_id}?`} run={() => del(`/v1/acl/tokens/${encodeURIComponent(t.accessor_id)}`)} onDone={tokens.reload} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Policies() {
  const policies = useLive("/v1/acl/policies");
  return (
    <section aria-labelledby="h-policies">
      <h2 id="h-policies">Policies</h2>
      <CreateForm
        label="Create policy"
        path="/v1/acl/policies"
        onDone={policies.reload}
        result={(p) => `Policy ${p.name} created.`}
        body={(f) => {
          let rules;
          try {
            rules = JSON.parse(f.get("rules"));
          } catch (e) {
            throw { message: `rules: not JSON (${e.message})` };
          }
          return { name: f.get("name"), description: f.get("description"), rules };
        }}
      >
        <label>Name <input name="name" required autocomplete="off" /></label>
        <label>Description <input name="description" /></label>
        <label>Rules (JSON) <input name="rules" required placeholder='{"jobs": "read", "secrets": {"app.*": "read"}}' size="40" /></label>
      </CreateForm>
      <ErrorNote error={policies.error} what="policies" />
      <table aria-label="Policies">
        <thead><tr><th>Policy</th><th>Description</th><th>Rules</th><th>Actions</th></tr></thead>
        <tbody>
          {(policies.data || []).map((p) => (
            <tr key={p.name}>
              <td>{p.name}</td>
              <td>{p.description}</td>
              <td>
                {Object.entries(p.rules || {}).map(([r, a]) => (
                  <div key={r}><b>{r}</b>: {typeof a === "string" ? a : Object.entries(a).map(([k, v]) => `${k} ${v}`).join(", ")}</div>
                ))}
              </td>
              <td>
                <Action label={`Delete policy ${p.name}`} danger confirm={`Delete policy ${p.name}?`} run={() => del(`/v1/acl/policies/${encodeURIComponent(p.name)}`)} onDone={policies.reload} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Roles() {
  const roles = useLive("/v1/acl/roles");
  return (
    <section aria-labelledby="h-roles">
      <h2 id="h-roles">Roles</h2>
      <CreateForm
        label="Create role"
        path="/v1/acl/roles"
        onDone={roles.reload}
        result={(r) => `Role ${r.name} created.`}
        body={(f) => ({ name: f.get("name"), description: f.get("description"), policies: names(f.get("policies")) })}
      >
        <label>Name <input name="name" required autocomplete="off" /></label>
        <label>Description <input name="description" /></label>
        <label>Policies <input name="policies" required placeholder="a, b" /></label>
      </CreateForm>
      <ErrorNote error={roles.error} what="roles" />
      <table aria-label="Roles">
        <thead><tr><th>Role</th><th>Description</th><th>Policies</th><th>Actions</th></tr></thead>
        <tbody>
          {(roles.data || []).map((r) => (
            <tr key={r.name}>
              <td>{r.name}</td>
              <td>{r.description}</td>
              <td>{(r.policies || []).join(", ")}</td>
              <td>
                <Action label={`Delete role ${r.name}`} danger confirm={`Delete role ${r.name}?`} run={() => del(`/v1/acl/roles/${encodeURIComponent(r.name)}`)} onDone={roles.reload} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

const TABS = { users: Users, tokens: Tokens, policies: Policies, roles: Roles };

export function Access({ me }) {
  const [tab, setTab] = useState("users");
  if (!me.management) return <p>Only a management identity sees users, tokens, policies and roles.</p>;
  const Page = TABS[tab];
  return (
    <>
      <h1>Access</h1>
      <div class="tabs" role="tablist" aria-label="Access">
        {Object.keys(TABS).map((t) => (
          <button key={t} type="button" role="tab" aria-selected={tab === t} onClick={() => setTab(t)}>
            {t[0].toUpperCase() + t.slice(1)}
          </button>
        ))}
      </div>
      <Page />
    </>
  );
}
