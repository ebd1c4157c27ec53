-- +goose Up
-- order_id is UNIQUE: it is what makes a charge happen at most once per order,
-- even when two calls for the same order race each other. A VOIDED row is a
-- refund that came before any charge: it holds no money and no card, and it
-- keeps a late charge for that order from ever being taken. The checks are
-- named, so that a later migration can replace one. Ids are VARCHAR(100), the
-- longest the service accepts, compared byte by byte (utf8mb4_bin) as on the
-- other dialects.
CREATE TABLE payments (
    id             VARCHAR(100) NOT NULL PRIMARY KEY,
    order_id       VARCHAR(100) NOT NULL,
    user_id        VARCHAR(100) NOT NULL,
    amount_cents   BIGINT NOT NULL,
    currency       VARCHAR(3) NOT NULL,
    status         VARCHAR(16) NOT NULL,
    card_last4     VARCHAR(4) NOT NULL,
    decline_reason TEXT NOT NULL DEFAULT '',
    created_at     VARCHAR(40) NOT NULL,
    updated_at     VARCHAR(40) NOT NULL,
    CONSTRAINT payments_order_id UNIQUE (order_id),
    CONSTRAINT payments_amount CHECK (amount_cents BETWEEN 1 AND 100000000 OR (status = 'VOIDED' AND amount_cents = 0)),
    CONSTRAINT payments_currency CHECK (CHAR_LENGTH(currency) = 3),
    CONSTRAINT payments_status CHECK (status IN ('CAPTURED', 'DECLINED', 'REFUNDED', 'VOIDED')),
    CONSTRAINT payments_card_last4 CHECK (CHAR_LENGTH(card_last4) = 4 OR (status = 'VOIDED' AND card_last4 = ''))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A customer's listing walks their payments in id order.
CREATE INDEX payments_user_id ON payments (user_id, id);

-- +goose Down
DROP TABLE payments;
