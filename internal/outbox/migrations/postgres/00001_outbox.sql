-- +goose Up
-- Events a service has committed, until the relay has handed each to the
-- broker. seq comes from a sequence when the row is inserted, not when its
-- transaction commits, so a relay may see seq 6 before seq 5 commits: it
-- publishes 5 on a later pass. Nothing is lost; order across concurrent
-- transactions was never promised.
CREATE TABLE outbox (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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

-- The one lease that makes one relay the publisher at a time.
CREATE TABLE outbox_relay (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL            -- unix milliseconds
);
INSERT INTO outbox_relay (id, holder, expires_at) VALUES (1, '', 0);

-- +goose Down
DROP TABLE outbox_relay;
DROP TABLE outbox;
