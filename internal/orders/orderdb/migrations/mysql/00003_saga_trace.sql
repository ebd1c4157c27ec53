-- +goose Up
-- The trace context of the request that placed the order, so that the
-- orchestrator's steps, which run outside any request, join its trace.
ALTER TABLE sagas ADD COLUMN trace_parent VARCHAR(64) NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sagas DROP COLUMN trace_parent;
