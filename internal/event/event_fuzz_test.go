package event_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/event"
)

// FuzzEnvelope feeds any bytes to the envelope decoding every consumer does
// (JSON, then Validate): it never panics; what it accepts is complete, and
// reads back the same after it is written again, so a relay that republishes
// it cannot turn it into a poison message.
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(`{"id":"e1","type":"OrderCreated","version":1,"source":"orders","time":"2026-01-01T00:00:00Z","topic":"orders.order.created","key":"o1","payload":{"order_id":"o1"}}`))
	f.Add([]byte(`{"id":"e1","type":"T","version":1,"topic":"a.b","payload":null}`))
	f.Add([]byte(`{"id":"","type":"T","version":0,"topic":"nodot","payload":{}}`))
	f.Add([]byte(`{"id":"e1","type":"T","version":1,"topic":"a.b","time":"not a time","payload":1}`))
	f.Add([]byte(`{"id":"e1","type":"T","version":99999999999999999999,"topic":"a.b","payload":[]}`))
	f.Add([]byte(`{not json`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e event.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return
		}
		_ = e.Domain()
		_ = e.RoutingKey()
		var anything any
		_ = e.Decode(&anything)
		if err := e.Validate(); err != nil {
			return
		}
		if e.ID == "" || len(e.ID) > 100 || e.Type == "" || e.Version < 1 || !strings.Contains(e.Topic, ".") || len(e.Payload) == 0 {
			t.Fatalf("Validate accepted an incomplete envelope %+v", e)
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("an accepted envelope cannot be written again: %v", err)
		}
		var back event.Event
		if err := json.Unmarshal(again, &back); err != nil {
			t.Fatalf("an accepted envelope, written again, cannot be read: %v\n%s", err, again)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("an accepted envelope, written again, is refused: %v\n%s", err, again)
		}
		if back.ID != e.ID || back.Type != e.Type || back.Version != e.Version || back.Topic != e.Topic || back.Key != e.Key || !back.Time.Equal(e.Time) {
			t.Fatalf("round trip changed %+v into %+v", e, back)
		}
	})
}
