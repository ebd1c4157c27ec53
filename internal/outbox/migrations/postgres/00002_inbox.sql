-- +goose Up
-- Events each consumer group has applied, recorded in the transaction of the
-- effect, so that a redelivered event is recognised and changes nothing.
CREATE TABLE inbox (
    consumer_group TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    applied_at     TEXT NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);

-- Deliveries a consumer gave up on, kept until an admin replays them.
CREATE TABLE dead_letters (
    id             TEXT PRIMARY KEY,      -- uuid v7: the listing's order and cursor
    consumer_group TEXT NOT NULL,
    dedup_key      TEXT NOT NULL,         -- the event id, or a hash of bytes that were no event
    event_id       TEXT NOT NULL DEFAULT '',
    topic          TEXT NOT NULL DEFAULT '',
    type           TEXT NOT NULL DEFAULT '',
    envelope       TEXT,                  -- the event.Event as JSON; NULL if it could not be read
    raw            BYTEA,                 -- the bytes as received, when they were no event
    error          TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    replayed_at    TEXT,
    UNIQUE (consumer_group, dedup_key)
);

-- +goose Down
DROP TABLE dead_letters;
DROP TABLE inbox;
