// Access › Users: create a user; edit one's policies, roles, type or password
// (PUT /v1/acl/users/:name sends only what changed; a new password ends the
// user's sessions); delete one.
import { Fragment } from "preact";
import { del, post, put } from "../../api.js";
import { Action, ErrorNote, useLive } from "../../ui.jsx";
import { ApiForm, Cancel, EditButton, EditRow, Saved, joined, names, sameNames, stillThere, useEditing, when } from "./forms.jsx";

const TYPES = ["client", "management"];

/** The fields of `f` that differ from `user` (a password only when one is typed). */
function changes(user, f) {
  const body = {};
  for (const key of ["policies", "roles"]) {
    const now = names(f.get(key));
    if (!sameNames(now, user[key])) body[key] = now;
  }
  if (f.get("type") !== user.type) body.type = f.get("type");
  const password = f.get("password");
  if (password || f.get("repeat")) {
    if (password !== f.get("repeat")) throw { message: "the two passwords differ" };
    body.password = password;
  }
  return body;
}

function EditUser({ user, me, editing }) {
  const name = user.username;
  const path = `/v1/acl/users/${encodeURIComponent(name)}`;
  const send = async (f) => {
    const body = changes(user, f);
    if (!Object.keys(body).length) return { unchanged: true };
    if (body.password && me?.username === name && !window.confirm("A new password ends your own session too: you will sign in again. Go on?")) {
      throw { message: "not saved" };
    }
    await stillThere(path, `User ${name}`);
    const out = await put(path, body);
    return { ...out, passwordChanged: Boolean(body.password) };
  };
  const said = (out) =>
    out.unchanged ? `User ${name}: nothing changed.` : `User ${name} saved${out.passwordChanged ? "; the new password ended its sessions" : ""}.`;
  return (
    <ApiForm label={`Edit user ${name}`} button={`Save user ${name}`} send={send} reset={false} after={<Cancel editing={editing} />} onDone={(out) => editing.saved(said(out))}>
      <label>Policies <input name="policies" defaultValue={joined(user.policies)} placeholder="a, b" /></label>
      <label>Roles <input name="roles" defaultValue={joined(user.roles)} placeholder="a, b" /></label>
      <label>
        Type{" "}
        <select name="type" aria-label="Type">
          {TYPES.map((t) => <option key={t} value={t} selected={user.type === t}>{t}</option>)}
        </select>
      </label>
      <label>New password <input name="password" type="password" autocomplete="new-password" placeholder="unchanged" /></label>
      <label>Repeat new password <input name="repeat" type="password" autocomplete="new-password" /></label>
    </ApiForm>
  );
}

export function Users({ me }) {
  const users = useLive("/v1/acl/users");
  const editing = useEditing(users.reload);
  return (
    <section aria-labelledby="h-users">
      <h2 id="h-users">Users</h2>
      <ApiForm
        label="Create user"
        onDone={users.reload}
        said={(u) => `User ${u.username} created.`}
        send={(f) => post("/v1/acl/users", { username: f.get("username"), password: f.get("password"), type: f.get("type"), policies: names(f.get("policies")), roles: names(f.get("roles")) })}
      >
        <label>Username <input name="username" required autocomplete="off" /></label>
        <label>Password <input name="password" type="password" required autocomplete="new-password" /></label>
        <label>
          Type{" "}
          <select name="type" aria-label="User type">
            {TYPES.map((t) => <option key={t} value={t}>{t}</option>)}
          </select>
        </label>
        <label>Policies <input name="policies" placeholder="a, b" /></label>
        <label>Roles <input name="roles" placeholder="a, b" /></label>
      </ApiForm>
      <ErrorNote error={users.error} what="users" />
      <Saved editing={editing} />
      <table aria-label="Users">
        <thead><tr><th>User</th><th>Type</th><th>Policies</th><th>Roles</th><th>Created</th><th>Actions</th></tr></thead>
        <tbody>
          {(users.data || []).map((u) => (
            <Fragment key={u.username}>
              <tr>
                <td>{u.username}</td>
                <td>{u.type}</td>
                <td>{joined(u.policies)}</td>
                <td>{joined(u.roles)}</td>
                <td class="muted">{when(u.create_time)}</td>
                <td class="buttons">
                  <EditButton editing={editing} id={u.username} label={`Edit user ${u.username}`} />
                  <Action label={`Delete user ${u.username}`} danger confirm={`Delete user ${u.username}?`} run={() => del(`/v1/acl/users/${encodeURIComponent(u.username)}`)} onDone={users.reload} />
                </td>
              </tr>
              {editing.open === u.username ? <EditRow span={6}><EditUser user={u} me={me} editing={editing} /></EditRow> : null}
            </Fragment>
          ))}
        </tbody>
      </table>
    </section>
  );
}
