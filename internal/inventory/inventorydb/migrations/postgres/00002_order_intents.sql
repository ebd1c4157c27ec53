-- +goose Up
-- What inventory has seen of a choreographed order before it reserves: the
-- items from OrderCreated and whether PaymentProcessed came, in whichever
-- order they arrived. One row per order, merged by upsert, so that two events
-- of one order applied at once both see the other's part.
CREATE TABLE order_intents (
    order_id   TEXT COLLATE "C" PRIMARY KEY,
    saga       TEXT NOT NULL,
    items      TEXT,                   -- JSON [{"product_id","quantity"}]; NULL until the order is seen
    paid       SMALLINT NOT NULL DEFAULT 0 CHECK (paid IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- +goose Down
DROP TABLE order_intents;
