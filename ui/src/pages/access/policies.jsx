// Access › Policies: create a policy or edit one's rules and description
// (PUT /v1/acl/policies/:name); the rules are YAML or JSON text in the job
// editor's text area, and the API's error about them is shown under it at the
// line it points at; delete one.
import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { stringify } from "yaml";
import { del, post, put } from "../../api.js";
import { Action, ErrorNote, useLive } from "../../ui.jsx";
import { YamlEditor, lineOf, parseYaml } from "../../yamledit.jsx";
import { ApiForm, Cancel, EditButton, EditRow, Saved, stillThere, useEditing } from "./forms.jsx";

const EXAMPLE = "# e.g.\n# jobs: read\n# secrets:\n#   app.*: read\n";

/** The keys in the rules that an API error about them points at (`[]`: the
 * rules as a whole), or null when the error is not about the rules. */
export function rulesPath(message) {
  const m = (message || "").match(/^field 'rules': (.*)$/s);
  if (!m) return null;
  const why = m[1];
  let k;
  if ((k = why.match(/^rules\.([A-Za-z_]+)(?:\.([A-Za-z_]+))?/))) return [k[1], k[2]].filter(Boolean);
  if ((k = why.match(/^(?:access for secrets|secret pattern) '([^']*)'/))) return ["secrets", k[1]];
  if ((k = why.match(/^(?:unknown resource|access for) '([^']*)'/))) return [k[1]];
  return [];
}

const rulesText = (policy) => (policy ? stringify(policy.rules || {}) : EXAMPLE);

/** Creates a policy (no `policy`) or edits `policy`. */
function PolicyForm({ policy, onDone, after }) {
  const [text, setText] = useState(rulesText(policy));
  const [rulesError, setRulesError] = useState(null);
  const what = policy ? `policy ${policy.name}` : "the new policy";
  const send = async (f) => {
    setRulesError(null);
    const parsed = parseYaml(text);
    if (parsed.error) throw { ...parsed, rules: true };
    const body = { description: f.get("description"), rules: parsed.value };
    try {
      if (!policy) return await post("/v1/acl/policies", { ...body, name: f.get("name") });
      const path = `/v1/acl/policies/${encodeURIComponent(policy.name)}`;
      await stillThere(path, `Policy ${policy.name}`);
      return await put(path, body);
    } catch (err) {
      const keys = rulesPath(err.message);
      if (keys) throw { rules: true, error: err, line: keys.length ? lineOf(parsed.doc, text, keys) : null };
      throw err;
    }
  };
  const onError = (err) => {
    if (!err.rules) return false;
    setRulesError(err);
    return true;
  };
  const done = (out) => {
    if (!policy) setText(EXAMPLE);
    onDone(out);
  };
  return (
    <ApiForm
      label={policy ? `Edit policy ${policy.name}` : "Create policy"}
      button={policy ? `Save policy ${policy.name}` : "Create policy"}
      send={send}
      onError={onError}
      reset={!policy}
      said={policy ? undefined : (p) => `Policy ${p.name} created.`}
      onDone={done}
      after={after}
    >
      {policy ? null : <label>Name <input name="name" required autocomplete="off" /></label>}
      <label>Description <input name="description" defaultValue={policy?.description || ""} size="30" /></label>
      <div class="rules">
        <YamlEditor
          label={`Rules of ${what} (YAML or JSON)`}
          text={text}
          onInput={setText}
          error={rulesError?.error}
          line={rulesError?.line}
          minRows={5}
        />
      </div>
    </ApiForm>
  );
}

function Rules({ rules }) {
  return Object.entries(rules || {}).map(([r, a]) => (
    <div key={r}>
      <b>{r}</b>: {typeof a === "string" ? a : Object.entries(a).map(([k, v]) => `${k} ${v}`).join(", ")}
    </div>
  ));
}

export function Policies() {
  const policies = useLive("/v1/acl/policies");
  const editing = useEditing(policies.reload);
  return (
    <section aria-labelledby="h-policies">
      <h2 id="h-policies">Policies</h2>
      <PolicyForm onDone={policies.reload} />
      <ErrorNote error={policies.error} what="policies" />
      <Saved editing={editing} />
      <table aria-label="Policies">
        <thead><tr><th>Policy</th><th>Description</th><th>Rules</th><th>Actions</th></tr></thead>
        <tbody>
          {(policies.data || []).map((p) => (
            <Fragment key={p.name}>
              <tr>
                <td>{p.name}</td>
                <td>{p.description}</td>
                <td><Rules rules={p.rules} /></td>
                <td class="buttons">
                  <EditButton editing={editing} id={p.name} label={`Edit policy ${p.name}`} />
                  <Action label={`Delete policy ${p.name}`} danger confirm={`Delete policy ${p.name}?`} run={() => del(`/v1/acl/policies/${encodeURIComponent(p.name)}`)} onDone={policies.reload} />
                </td>
              </tr>
              {editing.open === p.name ? (
                <EditRow span={4}>
                  <PolicyForm policy={p} onDone={() => editing.saved(`Policy ${p.name} saved.`)} after={<Cancel editing={editing} />} />
                </EditRow>
              ) : null}
            </Fragment>
          ))}
        </tbody>
      </table>
    </section>
  );
}
