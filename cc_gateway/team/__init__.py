"""The team gateway: a key per person, spend limits and a usage ledger, in a store of cc-gateway's own.

- `store`: SQLite (WAL, in the gateway folder) or PostgreSQL (`DATABASE_URL`), one schema, versioned
  migrations, plain SQL;
- `periods`: limits (`20/day`), period boundaries (UTC) and the 429 message;
- `keys`: key generation, hashing, model allowlists;
- `live`: what a serving process holds in memory (keys, limits, spend), refreshed off the request path;
- `ledger`: one record per request, batched and written by a background thread;
- `usage`: the report's queries.

Imports nothing from the rest of cc-gateway but its error types; LiteLLM never.
"""
