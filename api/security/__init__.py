"""Access control, rate limits and secrets at rest for the API.

Pure logic lives in small modules with injected clocks (`policy`,
`ratelimit`, `login_guard`, `jwt_tokens`, `passwords`, `crypto`, `tokens`);
`authn` turns a credential into an `Identity` from the replicated state;
`middleware` is the only place that decides whether a request may proceed;
`tasks` holds the background work (bootstrap from env, keyring re-encryption).
"""
