-- +goose Up
-- Events each consumer group has applied, recorded in the transaction of the
-- effect, so that a redelivered event is recognised and changes nothing.
CREATE TABLE inbox (
    consumer_group VARCHAR(128) NOT NULL,
    event_id       VARCHAR(64) NOT NULL,
    applied_at     VARCHAR(40) NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Deliveries a consumer gave up on, kept until an admin replays them.
CREATE TABLE dead_letters (
    id             VARCHAR(64) NOT NULL PRIMARY KEY, -- uuid v7: the listing's order and cursor
    consumer_group VARCHAR(128) NOT NULL,
    dedup_key      VARCHAR(128) NOT NULL,  -- the event id, or a hash of bytes that were no event
    event_id       VARCHAR(64) NOT NULL DEFAULT '',
    topic          VARCHAR(255) NOT NULL DEFAULT '',
    type           VARCHAR(255) NOT NULL DEFAULT '',
    envelope       LONGTEXT,               -- the event.Event as JSON; NULL if it could not be read
    raw            LONGBLOB,               -- the bytes as received, when they were no event
    error          TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    created_at     VARCHAR(40) NOT NULL,
    replayed_at    VARCHAR(40),
    UNIQUE (consumer_group, dedup_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE dead_letters;
DROP TABLE inbox;
