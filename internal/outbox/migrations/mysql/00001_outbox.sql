-- +goose Up
-- Events a service has committed, until the relay has handed each to the
-- broker. seq is given when the row is inserted, not when its transaction
-- commits, so a relay may see seq 6 before seq 5 commits: it publishes 5 on
-- a later pass. Nothing is lost; order across concurrent transactions was
-- never promised.
CREATE TABLE outbox (
    seq          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id     VARCHAR(64) NOT NULL UNIQUE,
    topic        VARCHAR(255) NOT NULL,
    type         VARCHAR(255) NOT NULL,
    envelope     LONGTEXT NOT NULL,      -- the event.Event as JSON, published as is
    created_at   VARCHAR(40) NOT NULL,
    published_at VARCHAR(40),            -- NULL until the broker has acknowledged it
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   VARCHAR(1000) NOT NULL DEFAULT '',
    -- No partial indexes here: the relay's scan and the purge each walk
    -- one of these from its start.
    INDEX outbox_unpublished (published_at, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The one lease that makes one relay the publisher at a time.
CREATE TABLE outbox_relay (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    holder     VARCHAR(255) NOT NULL,
    expires_at BIGINT NOT NULL            -- unix milliseconds
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO outbox_relay (id, holder, expires_at) VALUES (1, '', 0);

-- +goose Down
DROP TABLE outbox_relay;
DROP TABLE outbox;
