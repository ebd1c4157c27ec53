-- +goose Up
-- One unique index on email makes "one account per email" hold under
-- concurrent sign-ups: the second insert waits for the first and fails.
-- utf8mb4_bin compares emails byte by byte, as SQLite and PostgreSQL do.
CREATE TABLE users (
    id            VARCHAR(64) NOT NULL PRIMARY KEY,
    email         VARCHAR(254) NOT NULL UNIQUE,  -- users.maxEmailBytes
    name          VARCHAR(200) NOT NULL,         -- users.maxNameRunes is 100
    role          VARCHAR(16) NOT NULL CHECK (role IN ('customer', 'admin')),
    password_hash VARBINARY(255) NOT NULL,       -- a bcrypt hash is 60 bytes
    created_at    VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE users;
