-- +goose Up
-- What shipping has seen of an order in the two event-driven sagas, in
-- whichever order the events arrived: OrderCreated (with the user and the
-- address), ItemsReserved and PaymentProcessed. One row per order, merged by
-- upsert, so that two events of one order applied at once both see the
-- other's part.
CREATE TABLE delivery_intents (
    order_id    VARCHAR(100) NOT NULL PRIMARY KEY,
    saga        VARCHAR(32) NOT NULL,
    user_id     VARCHAR(100) NOT NULL DEFAULT '',
    name        VARCHAR(200) NOT NULL DEFAULT '',
    line1       VARCHAR(200) NOT NULL DEFAULT '',
    city        VARCHAR(200) NOT NULL DEFAULT '',
    postal_code VARCHAR(200) NOT NULL DEFAULT '',
    country     VARCHAR(200) NOT NULL DEFAULT '',
    created     TINYINT NOT NULL DEFAULT 0,
    reserved    TINYINT NOT NULL DEFAULT 0,
    paid        TINYINT NOT NULL DEFAULT 0,
    created_at  VARCHAR(40) NOT NULL,
    updated_at  VARCHAR(40) NOT NULL,
    CONSTRAINT delivery_intents_created CHECK (created IN (0, 1)),
    CONSTRAINT delivery_intents_reserved CHECK (reserved IN (0, 1)),
    CONSTRAINT delivery_intents_paid CHECK (paid IN (0, 1)),
    -- Once the order is seen, its user and address are known.
    CONSTRAINT delivery_intents_address CHECK (created = 0 OR (user_id <> '' AND name <> '' AND line1 <> '' AND city <> ''
                           AND postal_code <> '' AND CHAR_LENGTH(country) = 2))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down
DROP TABLE delivery_intents;
