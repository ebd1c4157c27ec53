-- +goose Up
CREATE TABLE orders (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'CANCELLED')),
    items         TEXT NOT NULL,          -- JSON array of {product_id, quantity, price_cents}
    total_cents   BIGINT NOT NULL CHECK (total_cents >= 0),
    currency      TEXT NOT NULL,
    saga          TEXT NOT NULL,
    cancel_reason TEXT NOT NULL DEFAULT '',
    address       TEXT NOT NULL,          -- JSON object
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX orders_by_user ON orders (user_id, id);

-- The orchestrator's persisted state: one row per order, leased by the
-- runner working on it.
CREATE TABLE sagas (
    order_id     TEXT PRIMARY KEY REFERENCES orders (id),
    step         TEXT NOT NULL,
    compensating INTEGER NOT NULL DEFAULT 0,
    reason       TEXT NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,         -- unix milliseconds
    card         TEXT NOT NULL DEFAULT '', -- erased once the charge step is over
    lease_owner  TEXT NOT NULL DEFAULT '',
    lease_until  BIGINT NOT NULL DEFAULT 0,
    done         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sagas_due ON sagas (done, next_at);

CREATE TABLE saga_steps (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id TEXT NOT NULL,
    step     TEXT NOT NULL,
    result   TEXT NOT NULL,
    detail   TEXT NOT NULL DEFAULT '',
    at       TEXT NOT NULL
);
CREATE INDEX saga_steps_by_order ON saga_steps (order_id, seq);

CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE settings;
DROP TABLE idempotency_keys;
DROP TABLE saga_steps;
DROP TABLE sagas;
DROP TABLE orders;
