// What the signed-in identity may do, from GET /v1/acl/tokens/self's
// "permissions" (its policies merged): the panel hides what it may not read
// and shows no button for what it may not change.

const RANK = { deny: -1, none: 0, list: 1, read: 2, write: 3 };

export function may(me, resource, access = "read") {
  const p = me?.permissions;
  if (!p) return false;
  if (p.management) return true;
  if (resource === "secrets") {
    return Object.values(p.secrets || {}).some((a) => a !== "deny" && RANK[a] >= RANK[access]);
  }
  const have = p.resources?.[resource];
  return have !== undefined && have !== "deny" && RANK[have] >= RANK[access];
}

function matches(pattern, name) {
  const re = new RegExp(
    "^" + pattern.split("*").map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$",
  );
  return re.test(name);
}

/** The access for one secret name: the most specific matching pattern decides. */
export function secretAccess(me, name) {
  const p = me?.permissions;
  if (!p) return "none";
  if (p.management) return "write";
  const spec = (pat) => [pat.includes("*") ? 0 : 1, pat.replace(/\*/g, "").length];
  let best = null;
  let result = "none";
  const rules = Object.entries(p.secrets || {}).sort(([a], [b]) => {
    const [x, y] = [spec(a), spec(b)];
    return y[0] - x[0] || y[1] - x[1];
  });
  for (const [pat, access] of rules) {
    const s = spec(pat);
    if (best && (s[0] < best[0] || (s[0] === best[0] && s[1] < best[1]))) break;
    if (matches(pat, name)) {
      best = s;
      if (result === "deny" || access === "deny") result = "deny";
      else if (RANK[access] > RANK[result]) result = access;
    }
  }
  return result;
}

export const maySecret = (me, name, access) => {
  const a = secretAccess(me, name);
  return a !== "deny" && RANK[a] >= RANK[access];
};
