-- +goose Up
-- order_id is UNIQUE: it is what makes a charge happen at most once per order,
-- even when two calls for the same order race each other. A VOIDED row is a
-- refund that came before any charge: it holds no money and no card, and it
-- keeps a late charge for that order from ever being taken.
CREATE TABLE payments (
    id             TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL UNIQUE,
    user_id        TEXT NOT NULL,
    amount_cents   INTEGER NOT NULL CHECK (amount_cents BETWEEN 1 AND 100000000 OR (status = 'VOIDED' AND amount_cents = 0)),
    currency       TEXT NOT NULL CHECK (length(currency) = 3),
    status         TEXT NOT NULL CHECK (status IN ('CAPTURED', 'DECLINED', 'REFUNDED', 'VOIDED')),
    card_last4     TEXT NOT NULL CHECK (length(card_last4) = 4 OR (status = 'VOIDED' AND card_last4 = '')),
    decline_reason TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- A customer's listing walks their payments in id order.
CREATE INDEX payments_user_id ON payments (user_id, id);

-- +goose Down
DROP TABLE payments;
