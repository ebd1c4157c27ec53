-- +goose Up
-- What inventory has seen of a choreographed order before it reserves: the
-- items from OrderCreated and whether PaymentProcessed came, in whichever
-- order they arrived. One row per order, merged by upsert, so that two events
-- of one order applied at once both see the other's part.
CREATE TABLE order_intents (
    order_id   VARCHAR(100) NOT NULL PRIMARY KEY,
    saga       VARCHAR(32) NOT NULL,
    items      TEXT,                   -- JSON [{"product_id","quantity"}]; NULL until the order is seen
    paid       TINYINT NOT NULL DEFAULT 0,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL,
    CONSTRAINT order_intents_paid CHECK (paid IN (0, 1))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down
DROP TABLE order_intents;
