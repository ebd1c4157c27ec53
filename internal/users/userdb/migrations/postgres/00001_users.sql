-- +goose Up
-- One unique index on email makes "one account per email" hold under
-- concurrent sign-ups: the second insert waits for the first and fails.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'admin')),
    password_hash BYTEA NOT NULL,
    created_at    TEXT NOT NULL
);

-- +goose Down
DROP TABLE users;
