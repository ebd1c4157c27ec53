-- +goose Up
-- order_id is UNIQUE: it is what makes a charge happen at most once per order,
-- even when two calls for the same order race each other. A VOIDED row is a
-- refund that came before any charge: it holds no money and no card, and it
-- keeps a late charge for that order from ever being taken. The checks are
-- named, so that a later migration can replace one.
CREATE TABLE payments (
    id             TEXT COLLATE "C" PRIMARY KEY,
    order_id       TEXT COLLATE "C" NOT NULL UNIQUE,
    user_id        TEXT COLLATE "C" NOT NULL,
    amount_cents   BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    status         TEXT NOT NULL,
    card_last4     TEXT NOT NULL,
    decline_reason TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CONSTRAINT payments_amount CHECK (amount_cents BETWEEN 1 AND 100000000 OR (status = 'VOIDED' AND amount_cents = 0)),
    CONSTRAINT payments_currency CHECK (length(currency) = 3),
    CONSTRAINT payments_status CHECK (status IN ('CAPTURED', 'DECLINED', 'REFUNDED', 'VOIDED')),
    CONSTRAINT payments_card_last4 CHECK (length(card_last4) = 4 OR (status = 'VOIDED' AND card_last4 = ''))
);

-- A customer's listing walks their payments in id order.
CREATE INDEX payments_user_id ON payments (user_id, id);

-- +goose Down
DROP TABLE payments;
