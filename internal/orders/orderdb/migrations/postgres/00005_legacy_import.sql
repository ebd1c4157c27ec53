-- +goose Up
-- Orders imported from the legacy monolith ran no saga here. origin says
-- where an order comes from: '' for one placed here, 'legacy' for one
-- imported; the read model shows it too.
ALTER TABLE orders ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE order_views ADD COLUMN origin TEXT NOT NULL DEFAULT '';
-- When a known customer's name was given (its event's time, a sqldb
-- stamp), so that a late UserCreated never undoes a UserRenamed, nor an
-- older rename a newer one. '' is older than any stamp.
ALTER TABLE known_customers ADD COLUMN named_at TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE known_customers DROP COLUMN named_at;
ALTER TABLE order_views DROP COLUMN origin;
ALTER TABLE orders DROP COLUMN origin;
