// What the Access tabs share: comma-separated names, times, the form that
// sends what it holds to the API and says what came back, and the editing
// state of a table (which row has its edit form open under it, and what the
// last save said).
import { useState } from "preact/hooks";
import { get } from "../../api.js";
import { ErrorNote } from "../../ui.jsx";

/** "a, b" → ["a", "b"]. */
export const names = (s) => String(s || "").split(",").map((x) => x.trim()).filter(Boolean);
/** ["a", "b"] → "a, b". */
export const joined = (xs) => (xs || []).join(", ");
/** Whether two lists of names hold the same names (the API keeps them sorted). */
export const sameNames = (a, b) => joined([...new Set(a || [])].sort()) === joined([...new Set(b || [])].sort());
export const when = (t) => (t ? String(typeof t === "number" ? new Date(t).toISOString() : t).replace("T", " ").slice(0, 19) : "—");

/** A form that runs `send(formData)` (an API call) on submit. What came back
 * goes to `onDone`, and `said(result)`, if given, is shown beside the button;
 * an error goes to `onError` first (true: it showed it itself), else beside
 * the button. `after` follows the submit button (an edit's *Cancel*). */
export function ApiForm({ label, button = label, send, said, onDone, onError, reset = true, after, children }) {
  const [error, setError] = useState(null);
  const [ok, setOk] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    setError(null);
    setOk(null);
    setBusy(true);
    try {
      const out = await send(new FormData(form));
      if (said) setOk(said(out));
      if (reset) form.reset();
      onDone?.(out);
    } catch (err) {
      if (!onError?.(err)) setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} aria-label={label} class="inline">
      {children}
      <button type="submit" disabled={busy}>{button}</button>
      {after}
      {ok ? <span class="ok" role="status">{ok}</span> : null}
      <ErrorNote error={error} what={label} />
    </form>
  );
}

/** PUT on a user, policy or role creates it when it is missing: an edit
 * first makes sure that the thing it edits is still there. */
export async function stillThere(path, what) {
  try {
    await get(path);
  } catch (err) {
    if (err.status === 404) throw { message: `${what} no longer exists` };
    throw err;
  }
}

/** Which row of a table is being edited, and what the last save said; a
 * save closes the row and re-reads the list. */
export function useEditing(reload) {
  const [open, setOpen] = useState(null);
  const [said, setSaid] = useState(null);
  return {
    open,
    said,
    toggle: (key) => {
      setSaid(null);
      setOpen((cur) => (cur === key ? null : key));
    },
    close: () => setOpen(null),
    saved: (message) => {
      setOpen(null);
      setSaid(message);
      reload();
    },
  };
}

/** The edit form's *Cancel*: closes it, nothing sent. */
export const Cancel = ({ editing }) => <button type="button" onClick={editing.close}>Cancel</button>;

/** The button that opens (or closes) a row's edit form. */
export function EditButton({ editing, id, label }) {
  return (
    <button type="button" aria-expanded={editing.open === id} onClick={() => editing.toggle(id)}>
      {label}
    </button>
  );
}

/** The last save's result, above the table. */
export function Saved({ editing }) {
  return editing.said ? <p class="ok" role="status">{editing.said}</p> : null;
}

/** The row under a table row that holds its edit form. */
export function EditRow({ span, children }) {
  return (
    <tr class="editrow">
      <td colspan={span}>{children}</td>
    </tr>
  );
}
