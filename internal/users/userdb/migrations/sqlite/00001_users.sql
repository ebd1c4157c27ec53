-- +goose Up
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'admin')),
    password_hash BLOB NOT NULL,
    created_at    TEXT NOT NULL
);

-- +goose Down
DROP TABLE users;
