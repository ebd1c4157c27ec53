-- +goose Up
-- The checks restate the inventory invariant, so that no bug in the store
-- can commit stock that is negative or does not add up (MariaDB enforces
-- CHECK). Ids are VARCHAR(100), the longest the service accepts, in a binary
-- collation: opaque strings, compared byte by byte as on the other dialects,
-- so "p1" and "P1" are two products and pages follow the same order.
CREATE TABLE stock (
    product_id VARCHAR(100) NOT NULL PRIMARY KEY,
    available  BIGINT NOT NULL,
    reserved   BIGINT NOT NULL,
    sold       BIGINT NOT NULL,
    supplied   BIGINT NOT NULL,
    updated_at VARCHAR(40) NOT NULL,
    CONSTRAINT stock_available CHECK (available >= 0),
    CONSTRAINT stock_reserved CHECK (reserved >= 0),
    CONSTRAINT stock_sold CHECK (sold >= 0),
    CONSTRAINT stock_balanced CHECK (available + reserved + sold = supplied)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE reservations (
    order_id   VARCHAR(100) NOT NULL PRIMARY KEY,
    status     VARCHAR(16) NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL,
    CONSTRAINT reservations_status CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED', 'REJECTED'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE reservation_items (
    order_id   VARCHAR(100) NOT NULL,
    product_id VARCHAR(100) NOT NULL,
    quantity   BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id),
    CONSTRAINT reservation_items_order FOREIGN KEY (order_id) REFERENCES reservations (order_id) ON DELETE CASCADE,
    CONSTRAINT reservation_items_quantity CHECK (quantity > 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down
DROP TABLE reservation_items;
DROP TABLE reservations;
DROP TABLE stock;
