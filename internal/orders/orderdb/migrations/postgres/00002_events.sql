-- +goose Up
-- Sagas now run in three styles over the bus: the orchestrator awaits
-- replies, event-driven sagas record what they have seen, and the card is
-- held as the payments service's token, never as a number.
ALTER TABLE sagas ADD COLUMN mode TEXT NOT NULL DEFAULT 'orchestration';
ALTER TABLE sagas ADD COLUMN awaiting INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sagas ADD COLUMN progress INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sagas ADD COLUMN card_token TEXT NOT NULL DEFAULT '';
DROP INDEX sagas_due;
CREATE INDEX sagas_due ON sagas (done, mode, next_at);

-- Orders' own copy of the catalog's prices, kept from its events.
CREATE TABLE known_products (
    id          TEXT PRIMARY KEY,
    price_cents BIGINT NOT NULL CHECK (price_cents > 0),
    currency    TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- The read model, built only from events and kept apart from the write
-- model above: it can be dropped and rebuilt.
CREATE TABLE order_views (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL,
    items         TEXT NOT NULL DEFAULT '[]',
    total_cents   BIGINT NOT NULL DEFAULT 0,
    currency      TEXT NOT NULL DEFAULT '',
    saga          TEXT NOT NULL DEFAULT '',
    cancel_reason TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL DEFAULT '',
    updated_at    TEXT NOT NULL DEFAULT '',
    created_seen  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX order_views_by_user ON order_views (user_id, id);

-- Orders' own copy of the customers it has heard of (UserCreated): reference
-- data like the prices, not part of the rebuildable views.
CREATE TABLE known_customers (
    user_id TEXT PRIMARY KEY,
    name    TEXT NOT NULL
);

-- +goose Down
DROP TABLE known_customers;
DROP TABLE order_views;
DROP TABLE known_products;
DROP INDEX sagas_due;
CREATE INDEX sagas_due ON sagas (done, next_at);
ALTER TABLE sagas DROP COLUMN card_token;
ALTER TABLE sagas DROP COLUMN progress;
ALTER TABLE sagas DROP COLUMN awaiting;
ALTER TABLE sagas DROP COLUMN mode;
