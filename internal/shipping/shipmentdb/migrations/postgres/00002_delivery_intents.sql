-- +goose Up
-- What shipping has seen of an order in the two event-driven sagas, in
-- whichever order the events arrived: OrderCreated (with the user and the
-- address), ItemsReserved and PaymentProcessed. One row per order, merged by
-- upsert, so that two events of one order applied at once both see the
-- other's part.
CREATE TABLE delivery_intents (
    order_id    TEXT COLLATE "C" PRIMARY KEY,
    saga        TEXT NOT NULL,
    user_id     TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL DEFAULT '',
    line1       TEXT NOT NULL DEFAULT '',
    city        TEXT NOT NULL DEFAULT '',
    postal_code TEXT NOT NULL DEFAULT '',
    country     TEXT NOT NULL DEFAULT '',
    created     SMALLINT NOT NULL DEFAULT 0 CHECK (created IN (0, 1)),
    reserved    SMALLINT NOT NULL DEFAULT 0 CHECK (reserved IN (0, 1)),
    paid        SMALLINT NOT NULL DEFAULT 0 CHECK (paid IN (0, 1)),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    -- Once the order is seen, its user and address are known.
    CHECK (created = 0 OR (user_id <> '' AND name <> '' AND line1 <> '' AND city <> ''
                           AND postal_code <> '' AND length(country) = 2))
);

-- +goose Down
DROP TABLE delivery_intents;
