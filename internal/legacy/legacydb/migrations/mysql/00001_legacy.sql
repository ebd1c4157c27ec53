-- +goose Up
-- The old shop's one database: customers and their orders together. Keys
-- and indexed text are VARCHAR (MySQL indexes no TEXT whole); time stamps
-- VARCHAR(40); every table compares text byte by byte (utf8mb4_bin).

-- The change counter. Every write transaction first bumps its one row and
-- reads it back, and stamps what it writes with that number (seq): the row
-- lock makes writers take their numbers one after another, so the numbers
-- grow in commit order and an export that reads seq > after misses nothing.
CREATE TABLE changes (
    name VARCHAR(32) NOT NULL PRIMARY KEY,
    seq  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO changes (name, seq) VALUES ('all', 0);

-- seq is unique in each table: an export pages on it, so no two rows of
-- one table may share a number (a transaction writes one of each at most).
CREATE TABLE customers (
    id         VARCHAR(64) NOT NULL PRIMARY KEY,  -- the users service's user id
    name       VARCHAR(200) NOT NULL,             -- the name rule allows 100 characters
    email      VARCHAR(254) NOT NULL,
    seq        BIGINT NOT NULL UNIQUE,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE orders (
    order_no            VARCHAR(64) NOT NULL PRIMARY KEY,  -- a UUIDv7
    customer_id         VARCHAR(64) NOT NULL,  -- no foreign key: an order needs no customer row
    status              VARCHAR(16) NOT NULL CHECK (status IN ('CONFIRMED')),
    total_cents         BIGINT NOT NULL CHECK (total_cents >= 0),
    currency            VARCHAR(8) NOT NULL,
    card_last4          VARCHAR(4) NOT NULL,   -- never the card number
    placed_at           VARCHAR(40) NOT NULL,
    deliver_name        TEXT NOT NULL,         -- each 200 runes at most
    deliver_line1       TEXT NOT NULL,
    deliver_city        TEXT NOT NULL,
    deliver_postal_code TEXT NOT NULL,
    deliver_country     VARCHAR(2) NOT NULL,
    seq                 BIGINT NOT NULL UNIQUE,
    INDEX orders_by_customer (customer_id, placed_at, order_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE order_lines (
    order_no         VARCHAR(64) NOT NULL,
    line_no          INTEGER NOT NULL,
    product_id       VARCHAR(64) NOT NULL,
    qty              INTEGER NOT NULL CHECK (qty > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_no, line_no),
    FOREIGN KEY (order_no) REFERENCES orders (order_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A domain handed over to the service that owns its data from then on.
CREATE TABLE handovers (
    domain    VARCHAR(32) NOT NULL PRIMARY KEY,
    service   VARCHAR(64) NOT NULL,
    handed_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE handovers;
DROP TABLE order_lines;
DROP TABLE orders;
DROP TABLE customers;
DROP TABLE changes;
