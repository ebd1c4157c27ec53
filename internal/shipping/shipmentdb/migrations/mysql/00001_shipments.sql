-- +goose Up
-- order_id is UNIQUE: an order has one shipment, and a cancel that came first
-- leaves a CANCELLED tombstone (no user, no address) that refuses a late
-- schedule. Ids are VARCHAR(100), the longest the service accepts; address
-- fields VARCHAR(200), its longest address field (characters, not bytes).
-- Everything compares byte by byte (utf8mb4_bin), as on the other dialects.
CREATE TABLE shipments (
    id          VARCHAR(100) NOT NULL PRIMARY KEY,
    order_id    VARCHAR(100) NOT NULL,
    user_id     VARCHAR(100) NOT NULL DEFAULT '',
    status      VARCHAR(16) NOT NULL,
    name        VARCHAR(200) NOT NULL DEFAULT '',
    line1       VARCHAR(200) NOT NULL DEFAULT '',
    city        VARCHAR(200) NOT NULL DEFAULT '',
    postal_code VARCHAR(200) NOT NULL DEFAULT '',
    country     VARCHAR(200) NOT NULL DEFAULT '',
    created_at  VARCHAR(40) NOT NULL,
    updated_at  VARCHAR(40) NOT NULL,
    CONSTRAINT shipments_order_id UNIQUE (order_id),
    CONSTRAINT shipments_status CHECK (status IN ('SCHEDULED', 'CANCELLED')),
    -- Only a cancelled shipment may lack its user or address.
    CONSTRAINT shipments_address CHECK (status = 'CANCELLED' OR (user_id <> '' AND name <> '' AND line1 <> '' AND city <> ''
                                    AND postal_code <> '' AND CHAR_LENGTH(country) = 2))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A customer's listing walks their shipments in id order.
CREATE INDEX shipments_user_id ON shipments (user_id, id);

-- +goose Down
DROP TABLE shipments;
