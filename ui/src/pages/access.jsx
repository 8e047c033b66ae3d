// Access (management identities): users, tokens, policies and roles, one tab
// each (pages/access/): each listed with its grants, created, edited in a
// form that opens under its row, and deleted. A token's secret is shown once,
// when it is created.
import { useState } from "preact/hooks";
import { Policies } from "./access/policies.jsx";
import { Roles } from "./access/roles.jsx";
import { Tokens } from "./access/tokens.jsx";
import { Users } from "./access/users.jsx";

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
      <Page me={me} />
    </>
  );
}
