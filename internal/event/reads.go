package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Reads is what one consumer requires of the events it applies: for each
// topic it consumes, the payload fields it cannot do without. A consumer
// declares it once and checks every event against it (Check) before the
// effect, and the contract tests compare it with the producers' schemas in
// AsyncAPI, so what the consumer needs and what the contract promises
// cannot drift apart unnoticed.
type Reads map[string][]string

// Check refuses e when its topic is not one r reads, or when its payload
// lacks a field r requires for that topic. The error is not a refusal: the
// broker retries the event and then dead-letters it, where an admin sees it.
func (r Reads) Check(e Event) error {
	fields, ok := r[e.Topic]
	if !ok {
		return fmt.Errorf("event %s (%s) is on topic %q, which this consumer does not read", e.ID, e.Type, e.Topic)
	}
	return Require(e, fields...)
}

// Topics lists the topics r reads, sorted.
func (r Reads) Topics() []string {
	topics := make([]string, 0, len(r))
	for t := range r {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	return topics
}

// Require returns an error naming every one of fields that e's payload
// lacks, so that a consumer refuses an event it cannot apply whole instead
// of applying zero values. A field that is null counts as missing, since it
// decodes to the same zero value; a payload that is not a JSON object lacks
// them all. Only presence is checked: whether a value is valid stays the
// consumer's business.
func Require(e Event, fields ...string) error {
	if len(fields) == 0 {
		return nil
	}
	var payload map[string]json.RawMessage
	if err := json.Unmarshal(e.Payload, &payload); err != nil || payload == nil {
		return fmt.Errorf("event %s (%s on %s) has no payload object, so it lacks %s", e.ID, e.Type, e.Topic, strings.Join(fields, ", "))
	}
	var missing []string
	for _, f := range fields {
		v, ok := payload[f]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("event %s (%s on %s) lacks payload fields %s", e.ID, e.Type, e.Topic, strings.Join(missing, ", "))
	}
	return nil
}
