-- +goose Up
-- order_id is UNIQUE: an order has one shipment, and a cancel that came first
-- leaves a CANCELLED tombstone (no user, no address) that refuses a late schedule.
CREATE TABLE shipments (
    id          TEXT COLLATE "C" PRIMARY KEY,
    order_id    TEXT COLLATE "C" NOT NULL UNIQUE,
    user_id     TEXT COLLATE "C" NOT NULL DEFAULT '',
    status      TEXT NOT NULL CHECK (status IN ('SCHEDULED', 'CANCELLED')),
    name        TEXT NOT NULL DEFAULT '',
    line1       TEXT NOT NULL DEFAULT '',
    city        TEXT NOT NULL DEFAULT '',
    postal_code TEXT NOT NULL DEFAULT '',
    country     TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    -- Only a cancelled shipment may lack its user or address.
    CHECK (status = 'CANCELLED' OR (user_id <> '' AND name <> '' AND line1 <> '' AND city <> ''
                                    AND postal_code <> '' AND length(country) = 2))
);

-- A customer's listing walks their shipments in id order.
CREATE INDEX shipments_user_id ON shipments (user_id, id);

-- +goose Down
DROP TABLE shipments;
