// Package event is the one envelope every microshop event travels in: an id
// that consumers deduplicate by, a type and version that say how to read the
// payload, the source service, the time, the trace context, and the payload.
package event

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Event is an envelope with its payload.
type Event struct {
	ID          string          `json:"id"`                    // unique; consumers apply an event at most once by it
	Type        string          `json:"type"`                  // e.g. "OrderCreated"
	Version     int             `json:"version"`               // the payload schema's version
	Source      string          `json:"source"`                // the service that published it
	Time        time.Time       `json:"time"`                  // when it happened
	Topic       string          `json:"topic"`                 // where it is published: "<domain>.<key>", e.g. "orders.order.created"
	Key         string          `json:"key"`                   // what it is about, e.g. the order id; keeps one order's events together
	TraceParent string          `json:"traceparent,omitempty"` // W3C trace context of the work that published it
	Payload     json.RawMessage `json:"payload"`
}

// New returns an event of type typ about key, published by source on topic,
// with payload encoded as JSON.
func New(source, topic, typ string, version int, key string, payload any) (Event, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return Event{}, fmt.Errorf("encoding %s payload: %w", typ, err)
	}
	return Event{
		ID: uuid.Must(uuid.NewV7()).String(), Type: typ, Version: version, Source: source,
		Time: time.Now().UTC(), Topic: topic, Key: key, Payload: b,
	}, nil
}

// Decode reads the payload into v. Consumers decode only the fields they
// read, so a producer can add fields without breaking them.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return fmt.Errorf("decoding %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// Domain is the first part of the topic: the exchange (RabbitMQ) or stream
// (JetStream) it is published to, named after the domain that owns it.
func (e Event) Domain() string {
	d, _, _ := strings.Cut(e.Topic, ".")
	return d
}

// RoutingKey is the rest of the topic, e.g. "order.created".
func (e Event) RoutingKey() string {
	_, k, _ := strings.Cut(e.Topic, ".")
	return k
}

// Validate checks that an envelope is complete, so that a malformed message
// is refused at the edge of the consumer rather than half-applied.
func (e Event) Validate() error {
	switch {
	case e.ID == "" || len(e.ID) > 100:
		return fmt.Errorf("event id must be 1 to 100 characters")
	case e.Type == "":
		return fmt.Errorf("event %s has no type", e.ID)
	case e.Version < 1:
		return fmt.Errorf("event %s has no version", e.ID)
	case !strings.Contains(e.Topic, "."):
		return fmt.Errorf("event %s has no topic of the form domain.key", e.ID)
	case len(e.Payload) == 0:
		return fmt.Errorf("event %s has no payload", e.ID)
	}
	return nil
}
