// Access › Roles: create a role; edit one's policies and description (PUT
// /v1/acl/roles/:name, which takes both); delete one.
import { Fragment } from "preact";
import { del, post, put } from "../../api.js";
import { Action, ErrorNote, useLive } from "../../ui.jsx";
import { ApiForm, Cancel, EditButton, EditRow, Saved, joined, names, stillThere, useEditing } from "./forms.jsx";

function EditRole({ role, editing }) {
  const path = `/v1/acl/roles/${encodeURIComponent(role.name)}`;
  const send = async (f) => {
    await stillThere(path, `Role ${role.name}`);
    return put(path, { policies: names(f.get("policies")), description: f.get("description") });
  };
  return (
    <ApiForm label={`Edit role ${role.name}`} button={`Save role ${role.name}`} send={send} reset={false} after={<Cancel editing={editing} />} onDone={() => editing.saved(`Role ${role.name} saved.`)}>
      <label>Description <input name="description" defaultValue={role.description || ""} /></label>
      <label>Policies <input name="policies" required defaultValue={joined(role.policies)} placeholder="a, b" /></label>
    </ApiForm>
  );
}

export function Roles() {
  const roles = useLive("/v1/acl/roles");
  const editing = useEditing(roles.reload);
  return (
    <section aria-labelledby="h-roles">
      <h2 id="h-roles">Roles</h2>
      <ApiForm
        label="Create role"
        onDone={roles.reload}
        said={(r) => `Role ${r.name} created.`}
        send={(f) => post("/v1/acl/roles", { name: f.get("name"), description: f.get("description"), policies: names(f.get("policies")) })}
      >
        <label>Name <input name="name" required autocomplete="off" /></label>
        <label>Description <input name="description" /></label>
        <label>Policies <input name="policies" required placeholder="a, b" /></label>
      </ApiForm>
      <ErrorNote error={roles.error} what="roles" />
      <Saved editing={editing} />
      <table aria-label="Roles">
        <thead><tr><th>Role</th><th>Description</th><th>Policies</th><th>Actions</th></tr></thead>
        <tbody>
          {(roles.data || []).map((r) => (
            <Fragment key={r.name}>
              <tr>
                <td>{r.name}</td>
                <td>{r.description}</td>
                <td>{joined(r.policies)}</td>
                <td class="buttons">
                  <EditButton editing={editing} id={r.name} label={`Edit role ${r.name}`} />
                  <Action label={`Delete role ${r.name}`} danger confirm={`Delete role ${r.name}?`} run={() => del(`/v1/acl/roles/${encodeURIComponent(r.name)}`)} onDone={roles.reload} />
                </td>
              </tr>
              {editing.open === r.name ? <EditRow span={4}><EditRole role={r} editing={editing} /></EditRow> : null}
            </Fragment>
          ))}
        </tbody>
      </table>
    </section>
  );
}
