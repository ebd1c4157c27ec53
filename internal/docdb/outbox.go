package docdb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/telemetry"
)

// The document outbox: a document whose change announces events keeps them,
// until the relay has published them, in two fields of its own. Without
// multi-document transactions (FerretDB v1 has none, and a MongoDB
// deployment need not either), the document is the unit that commits
// atomically, so it is where the events go.
const (
	// OutboxField holds the document's unpublished events, oldest first.
	OutboxField = "outbox"
	// SinceField is when the oldest of them was added; it is absent when
	// there are none, so the relay finds the documents with events by it
	// (with the index OutboxIndex) and the oldest first.
	SinceField = "outbox_since"
)

// OutboxIndex is the index the relay finds pending events by: every
// collection whose documents take events needs it (EnsureIndexes).
var OutboxIndex = indexModel(SinceField, "outbox_pending")

// entry is one unpublished event as a document keeps it: the envelope as
// JSON text, exactly as it will be published, and when it was added.
type entry struct {
	ID       string    `bson:"id"`
	Topic    string    `bson:"topic"`
	Type     string    `bson:"type"`
	Envelope string    `bson:"envelope"`
	AddedAt  time.Time `bson:"added_at"`
}

// Change is the outbox part of one write: the events the write stores with
// its change. The zero Change stores none.
type Change struct {
	entries bson.A
	at      time.Time
}

// Events prepares events to be stored by one write, carrying the trace of
// ctx (the work that made them) unless they carry one already, as
// outbox.Add does. Each event must be a valid envelope with an id of its
// own; the relay publishes a document's events in the order given.
func Events(ctx context.Context, events ...event.Event) (Change, error) {
	c := Change{at: time.Now().UTC()}
	trace := telemetry.TraceParent(ctx)
	for _, e := range events {
		if e.TraceParent == "" {
			e.TraceParent = trace
		}
		if err := e.Validate(); err != nil {
			return Change{}, fmt.Errorf("adding event to the outbox: %w", err)
		}
		envelope, err := json.Marshal(e)
		if err != nil {
			return Change{}, fmt.Errorf("encoding event %s: %w", e.ID, err)
		}
		c.entries = append(c.entries, entry{ID: e.ID, Topic: e.Topic, Type: e.Type, Envelope: string(envelope), AddedAt: c.at})
	}
	return c, nil
}

// Empty reports whether the change stores no event.
func (c Change) Empty() bool { return len(c.entries) == 0 }

// Insert returns doc, a new document, with the change's events in it.
func (c Change) Insert(doc bson.D) bson.D {
	entries := c.entries
	if entries == nil {
		entries = bson.A{}
	}
	doc = append(doc, bson.E{Key: OutboxField, Value: entries})
	if !c.Empty() {
		doc = append(doc, bson.E{Key: SinceField, Value: c.at})
	}
	return doc
}

// Update returns update, the operators of an update of one document, with
// the operators that append the change's events to it. update must not
// use $push or $min itself.
func (c Change) Update(update bson.D) bson.D {
	if c.Empty() {
		return update
	}
	return append(update,
		bson.E{Key: "$push", Value: bson.D{{Key: OutboxField, Value: bson.D{{Key: "$each", Value: c.entries}}}}},
		// The oldest pending event's time stays if there is one already.
		bson.E{Key: "$min", Value: bson.D{{Key: SinceField, Value: c.at}}},
	)
}

// Pending reports the outbox backlog of a collection, for health checks,
// metrics and the console.
func Pending(ctx context.Context, db *DB, collection string) (outbox.Backlog, error) {
	cur, err := db.Collection(collection).Find(ctx, bson.D{{Key: SinceField, Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetProjection(bson.D{{Key: OutboxField, Value: 1}, {Key: SinceField, Value: 1}}))
	if err != nil {
		return outbox.Backlog{}, fmt.Errorf("measuring the outbox backlog of %s: %w", collection, err)
	}
	defer cur.Close(ctx)
	var b outbox.Backlog
	for cur.Next(ctx) {
		var d struct {
			Outbox []bson.Raw `bson:"outbox"`
			Since  time.Time  `bson:"outbox_since"`
		}
		if err := cur.Decode(&d); err != nil {
			return outbox.Backlog{}, fmt.Errorf("measuring the outbox backlog of %s: %w", collection, err)
		}
		b.Count += len(d.Outbox)
		if len(d.Outbox) > 0 && (b.Oldest.IsZero() || d.Since.Before(b.Oldest)) {
			b.Oldest = d.Since
		}
	}
	if err := cur.Err(); err != nil {
		return outbox.Backlog{}, fmt.Errorf("measuring the outbox backlog of %s: %w", collection, err)
	}
	return b, nil
}
