// A YAML text editor (JSON is YAML too) with line numbers, and the error that
// goes with it shown under it at the line it points at: a YAML syntax error,
// or an API error whose field path the caller maps to the document. The job
// editor (pages/jobs.jsx) and a policy's rules (pages/access/policies.jsx)
// share it.
import { parseDocument } from "yaml";

/** The line (1-based) that a field path points at: a string such as
 * `groups[0].tasks[1].image`, or the keys themselves (`["secrets", "app.*"]`),
 * falling back to the nearest parent that the document has. */
export function lineOf(doc, text, path) {
  let keys = [];
  if (Array.isArray(path)) keys = [...path];
  else {
    for (const part of path.split(".")) {
      const m = part.match(/^([^[\]]*)((?:\[\d+\])*)$/);
      if (!m) return null;
      if (m[1]) keys.push(m[1]);
      for (const idx of m[2].matchAll(/\[(\d+)\]/g)) keys.push(Number(idx[1]));
    }
  }
  while (keys.length) {
    const node = doc.getIn(keys, true);
    if (node && node.range) return text.slice(0, node.range[0]).split("\n").length;
    keys.pop();
  }
  return null;
}

/** `text` parsed: `{ doc, value }`, or `{ error, line }` for a syntax error. */
export function parseYaml(text) {
  const doc = parseDocument(text);
  if (doc.errors.length) {
    const err = doc.errors[0];
    return { error: { message: `YAML: ${err.message.split("\n")[0]}` }, line: err.linePos?.[0]?.line ?? null };
  }
  return { doc, value: doc.toJS() };
}

/** The field path at the start of an API message (`groups[0].name: ...`). */
export const leadingPath = (message) => (message || "").match(/^([A-Za-z0-9_.[\]-]+): /)?.[1] ?? null;

/** The text area with its line numbers, the error's line marked, and the
 * error itself (an alert) under it. */
export function YamlEditor({ label, text, onInput, error, line, minRows = 18 }) {
  const lines = text.split("\n");
  return (
    <>
      <div class="editor">
        <pre class="gutter" aria-hidden="true">
          {lines.map((_, i) => (
            <div key={i} class={line === i + 1 ? "errline" : ""}>{i + 1}</div>
          ))}
        </pre>
        <textarea
          aria-label={label}
          aria-invalid={error ? "true" : undefined}
          spellcheck={false}
          rows={Math.max(minRows, lines.length + 1)}
          value={text}
          onInput={(e) => onInput(e.currentTarget.value)}
        />
      </div>
      {error ? (
        <div class="error" role="alert">
          {line ? <strong>Line {line}: </strong> : null}
          {error.message}
          {error.code ? <span class="muted"> ({error.status} {error.code})</span> : null}
        </div>
      ) : null}
    </>
  );
}
