// The panel: sign-in, then a page per resource the identity may read.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { get, onSignedOut } from "./api.js";
import { signIn, signOut, start as keepSession, stop as dropSession } from "./session.js";
import { may } from "./perm.js";
import { ErrorNote, Link, navigate, startEvents, stopEvents, useRoute } from "./ui.jsx";
import { Overview } from "./pages/overview.jsx";
import { Jobs, JobPage, SubmitJob } from "./pages/jobs.jsx";
import { Allocations, AllocPage } from "./pages/allocs.jsx";
import { Nodes } from "./pages/nodes.jsx";
import { Secrets } from "./pages/secrets.jsx";
import { Events } from "./pages/events.jsx";
import { Metrics } from "./pages/metrics.jsx";
import { Ingress } from "./pages/ingress.jsx";
import { Webhooks } from "./pages/webhooks.jsx";
import { Access } from "./pages/access.jsx";
import "uplot/dist/uPlot.min.css";
import "./style.css";

const PAGES = [
  { path: "/", label: "Overview", resource: "cluster" },
  { path: "/jobs", label: "Jobs", resource: "jobs" },
  { path: "/allocations", label: "Allocations", resource: "allocations" },
  { path: "/nodes", label: "Nodes", resource: "nodes" },
  { path: "/secrets", label: "Secrets", resource: "secrets", access: "list" },
  { path: "/events", label: "Events", resource: "events" },
  { path: "/webhooks", label: "Webhooks", resource: "webhooks" },
  { path: "/ingress", label: "Ingress", resource: "ingress" },
  { path: "/metrics", label: "Metrics", resource: "metrics" },
  { path: "/access", label: "Access", management: true },
];

function SignIn({ onIn }) {
  const [mode, setMode] = useState("password");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const creds =
        mode === "password"
          ? { username: f.get("username"), password: f.get("password") }
          : { acl_token: f.get("acl_token") };
      await signIn(creds);
      onIn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>HeroCtl</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <div role="radiogroup" aria-label="Sign in with" class="modes">
          <label>
            <input type="radio" name="mode" checked={mode === "password"} onChange={() => setMode("password")} />
            User and password
          </label>
          <label>
            <input type="radio" name="mode" checked={mode === "token"} onChange={() => setMode("token")} />
            ACL token
          </label>
        </div>
        {mode === "password" ? (
          <>
            <label>
              User <input name="username" autocomplete="username" required />
            </label>
            <label>
              Password <input name="password" type="password" autocomplete="current-password" required />
            </label>
          </>
        ) : (
          <label>
            ACL token <input name="acl_token" type="password" autocomplete="off" required />
          </label>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        <ErrorNote error={error} />
      </form>
    </main>
  );
}

function route(path, me) {
  let m;
  if (path === "/" || path === "") return <Overview me={me} />;
  if (path === "/jobs") return <Jobs me={me} />;
  if (path === "/jobs/new") return <SubmitJob me={me} />;
  if ((m = path.match(/^\/jobs\/([^/]+)\/edit$/))) return <SubmitJob me={me} name={decodeURIComponent(m[1])} />;
  if ((m = path.match(/^\/jobs\/([^/]+)$/))) return <JobPage me={me} name={decodeURIComponent(m[1])} />;
  if (path === "/allocations") return <Allocations me={me} />;
  if ((m = path.match(/^\/allocations\/([^/]+)$/))) return <AllocPage me={me} id={m[1]} />;
  if (path === "/nodes") return <Nodes me={me} />;
  if (path === "/secrets") return <Secrets me={me} />;
  if (path === "/events") return <Events me={me} />;
  if (path === "/metrics") return <Metrics me={me} />;
  if (path === "/ingress") return <Ingress me={me} />;
  if (path === "/webhooks") return <Webhooks me={me} />;
  if (path === "/access") return <Access me={me} />;
  return <p>No such page. <Link to="/">Overview</Link></p>;
}

function App() {
  const [me, setMe] = useState(undefined); // undefined: asking; null: signed out
  const path = useRoute();
  const whoami = () =>
    get("/v1/acl/tokens/self").then(
      (m) => setMe(m),
      () => setMe(null),
    );
  useEffect(() => {
    whoami();
    return onSignedOut(() => setMe(null));
  }, []);
  useEffect(() => {
    if (me) keepSession(); // renew the session cookie before its JWT expires
    if (me && may(me, "events")) startEvents();
    if (me === null) {
      dropSession();
      stopEvents();
    }
  }, [me]);
  if (me === undefined) return <p class="muted">Loading…</p>;
  if (me === null) return <SignIn onIn={whoami} />;
  const who = me.username || me.accessor_id?.slice(0, 8) || me.subject;
  const out = async () => {
    try {
      await signOut();
    } finally {
      stopEvents();
      setMe(null);
      navigate("/");
    }
  };
  const pages = PAGES.filter((p) => (p.management ? me.management : may(me, p.resource, p.access || "read")));
  return (
    <>
      <header>
        <span class="brand">HeroCtl</span>
        <nav aria-label="Pages">
          {pages.map((p) => (
            <Link key={p.path} to={p.path} class={(p.path === "/" ? path === "/" : path.startsWith(p.path)) ? "active" : ""}>
              {p.label}
            </Link>
          ))}
        </nav>
        <span class="who" title={me.subject}>
          {who} {me.management ? "(management)" : ""}
        </span>
        <button type="button" onClick={out}>
          Sign out
        </button>
      </header>
      <main>{route(path, me)}</main>
    </>
  );
}

render(<App />, document.getElementById("app"));
