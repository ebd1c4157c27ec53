-- +goose Up
-- Events a service has committed, in the order it committed them, until the
-- relay has handed each to the broker.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so order is commit order
    event_id     TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    type         TEXT NOT NULL,
    envelope     TEXT NOT NULL,          -- the event.Event as JSON, published as is
    created_at   TEXT NOT NULL,
    published_at TEXT,                   -- NULL until the broker has acknowledged it
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- The one lease that makes one relay the publisher at a time, so that two
-- relays on one database publish in order and do not both publish a row.
CREATE TABLE outbox_relay (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL            -- unix milliseconds
);
INSERT INTO outbox_relay (id, holder, expires_at) VALUES (1, '', 0);

-- +goose Down
DROP TABLE outbox_relay;
DROP TABLE outbox;
