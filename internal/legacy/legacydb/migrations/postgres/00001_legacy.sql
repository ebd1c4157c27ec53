-- +goose Up
-- The old shop's one database: customers and their orders together.

-- The change counter. Every write transaction first bumps its one row and
-- reads it back, and stamps what it writes with that number (seq): the row
-- lock makes writers take their numbers one after another, so the numbers
-- grow in commit order and an export that reads seq > after misses nothing.
CREATE TABLE changes (
    name TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
);
INSERT INTO changes (name, seq) VALUES ('all', 0);

-- seq is unique in each table: an export pages on it, so no two rows of
-- one table may share a number (a transaction writes one of each at most).
CREATE TABLE customers (
    id         TEXT PRIMARY KEY,     -- the users service's user id
    name       TEXT NOT NULL,
    email      TEXT NOT NULL,
    seq        BIGINT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE orders (
    order_no            TEXT PRIMARY KEY,  -- a UUIDv7
    customer_id         TEXT NOT NULL,     -- no foreign key: an order needs no customer row
    status              TEXT NOT NULL CHECK (status IN ('CONFIRMED')),
    total_cents         BIGINT NOT NULL CHECK (total_cents >= 0),
    currency            TEXT NOT NULL,
    card_last4          TEXT NOT NULL,     -- never the card number
    placed_at           TEXT NOT NULL,
    deliver_name        TEXT NOT NULL,
    deliver_line1       TEXT NOT NULL,
    deliver_city        TEXT NOT NULL,
    deliver_postal_code TEXT NOT NULL,
    deliver_country     TEXT NOT NULL,
    seq                 BIGINT NOT NULL UNIQUE
);
CREATE INDEX orders_by_customer ON orders (customer_id, placed_at, order_no);

CREATE TABLE order_lines (
    order_no         TEXT NOT NULL REFERENCES orders (order_no),
    line_no          INTEGER NOT NULL,
    product_id       TEXT NOT NULL,
    qty              INTEGER NOT NULL CHECK (qty > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_no, line_no)
);

-- A domain handed over to the service that owns its data from then on.
CREATE TABLE handovers (
    domain    TEXT PRIMARY KEY,
    service   TEXT NOT NULL,
    handed_at TEXT NOT NULL
);

-- +goose Down
DROP TABLE handovers;
DROP TABLE order_lines;
DROP TABLE orders;
DROP TABLE customers;
DROP TABLE changes;
