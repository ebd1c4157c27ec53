-- +goose Up
-- "key" is a reserved word in MySQL: one column name for every dialect.
ALTER TABLE idempotency_keys RENAME COLUMN key TO idem_key;

-- +goose Down
ALTER TABLE idempotency_keys RENAME COLUMN idem_key TO key;
