// Events: the cluster's event stream, live, filtered by topic.
import { useEffect, useState } from "preact/hooks";
import { get, stream } from "../api.js";
import { ErrorNote } from "../ui.jsx";
import { summary } from "./overview.jsx";

const TOPICS = ["job", "alloc", "node", "secret", "cert", "ingress"];
const TYPES = [
  "job.submitted", "job.updated", "job.deployed", "job.failed", "alloc.updated", "alloc.failed",
  "node.updated", "node.down", "secret.changed", "cert.renewed", "cert.failed", "ingress.updated",
];

export function Events() {
  const [topics, setTopics] = useState(new Set(TOPICS));
  const [events, setEvents] = useState([]);
  const [error, setError] = useState(null);
  const topic = [...topics].join(",");
  useEffect(() => {
    setEvents([]);
    setError(null);
    if (!topic) return undefined;
    let close = () => {};
    get(`/v1/events?limit=100&topic=${topic}`).then((list) => {
      setEvents(list.slice().reverse());
      const last = list.length ? list[list.length - 1].index : null;
      // a burst of events is one render: queued, then shown every 200 ms
      let queue = [];
      let timer = null;
      const flush = () => {
        timer = null;
        const fresh = queue.reverse();
        queue = [];
        setEvents((old) => [...fresh, ...old].slice(0, 500));
      };
      const handlers = {};
      for (const t of TYPES)
        handlers[t] = (data, e) => {
          queue.push({ id: e.lastEventId, type: t, data, time: new Date().toISOString() });
          if (!timer) timer = setTimeout(flush, 200);
        };
      const closeStream = stream(`/v1/events?stream=true&topic=${topic}${last != null ? `&index=${last}` : ""}`, handlers);
      close = () => {
        clearTimeout(timer);
        closeStream();
      };
    }, setError);
    return () => close();
  }, [topic]);
  const toggle = (t) => {
    const next = new Set(topics);
    next.has(t) ? next.delete(t) : next.add(t);
    setTopics(next);
  };
  return (
    <>
      <h1>Events</h1>
      <fieldset class="inline">
        <legend>Topics</legend>
        {TOPICS.map((t) => (
          <label key={t}>
            <input type="checkbox" checked={topics.has(t)} onChange={() => toggle(t)} /> {t}
          </label>
        ))}
      </fieldset>
      <ErrorNote error={error} what="events" />
      <table aria-label="Events">
        <thead><tr><th>Time</th><th>Type</th><th>Details</th></tr></thead>
        <tbody aria-live="polite">
          {events.map((e) => (
            <tr key={e.id}>
              <td class="muted">{(e.time || "").slice(0, 19).replace("T", " ")}</td>
              <td><code>{e.type}</code></td>
              <td>{summary(e.data)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
