"""Producer: validates triggers, applies idempotency, writes runs in bulk, enqueues them."""
