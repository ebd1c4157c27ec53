-- +goose Up
-- The checks restate the inventory invariant, so that no bug in the store
-- can commit stock that is negative or does not add up. Ids compare byte by
-- byte (COLLATE "C"), as on SQLite, so pages follow the same order on every
-- dialect.
CREATE TABLE stock (
    product_id TEXT COLLATE "C" PRIMARY KEY,
    available  BIGINT NOT NULL CHECK (available >= 0),
    reserved   BIGINT NOT NULL CHECK (reserved >= 0),
    sold       BIGINT NOT NULL CHECK (sold >= 0),
    supplied   BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (available + reserved + sold = supplied)
);

CREATE TABLE reservations (
    order_id   TEXT COLLATE "C" PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED', 'REJECTED')),
    reason     TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE reservation_items (
    order_id   TEXT COLLATE "C" NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    product_id TEXT COLLATE "C" NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

-- +goose Down
DROP TABLE reservation_items;
DROP TABLE reservations;
DROP TABLE stock;
