-- +goose Up
-- Keys and indexed text are VARCHAR (MySQL indexes no TEXT whole); time
-- stamps VARCHAR(40); every table compares text byte by byte (utf8mb4_bin).
CREATE TABLE orders (
    id            VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id       VARCHAR(64) NOT NULL,
    status        VARCHAR(16) NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'CANCELLED')),
    items         LONGTEXT NOT NULL,      -- JSON array of {product_id, quantity, price_cents}
    total_cents   BIGINT NOT NULL CHECK (total_cents >= 0),
    currency      VARCHAR(8) NOT NULL,
    saga          VARCHAR(32) NOT NULL,
    cancel_reason TEXT NOT NULL DEFAULT (''),
    address       TEXT NOT NULL,          -- JSON object
    created_at    VARCHAR(40) NOT NULL,
    updated_at    VARCHAR(40) NOT NULL,
    INDEX orders_by_user (user_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The orchestrator's persisted state: one row per order, leased by the
-- runner working on it.
CREATE TABLE sagas (
    order_id     VARCHAR(64) NOT NULL PRIMARY KEY,
    step         VARCHAR(32) NOT NULL,
    compensating INTEGER NOT NULL DEFAULT 0,
    reason       TEXT NOT NULL DEFAULT (''),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,         -- unix milliseconds
    card         VARCHAR(64) NOT NULL DEFAULT '', -- erased once the charge step is over
    lease_owner  VARCHAR(128) NOT NULL DEFAULT '',
    lease_until  BIGINT NOT NULL DEFAULT 0,
    done         INTEGER NOT NULL DEFAULT 0,
    INDEX sagas_due (done, next_at),
    FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE saga_steps (
    seq      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id VARCHAR(64) NOT NULL,
    step     VARCHAR(32) NOT NULL,
    result   VARCHAR(32) NOT NULL,
    detail   TEXT NOT NULL,
    at       VARCHAR(40) NOT NULL,
    INDEX saga_steps_by_order (order_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE idempotency_keys (
    user_id     VARCHAR(64) NOT NULL,
    `key`       VARCHAR(255) NOT NULL,
    fingerprint VARCHAR(128) NOT NULL,
    order_id    VARCHAR(64) NOT NULL,
    created_at  VARCHAR(40) NOT NULL,
    PRIMARY KEY (user_id, `key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE settings (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value VARCHAR(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE settings;
DROP TABLE idempotency_keys;
DROP TABLE saga_steps;
DROP TABLE sagas;
DROP TABLE orders;
