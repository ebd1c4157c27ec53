package contract_test

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/inventory/inventoryevents"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderevents"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentevents"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shippingevents"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/users"
)

// The event contract: internal/event/asyncapi.yaml describes every topic,
// each producer's payloads are checked against it, and every consumer's
// declared Reads are checked against what the producers promise. Each
// check returns the problems it finds rather than failing the test, so the
// negative tests below can show that it does find them.

// asyncDoc is the part of an AsyncAPI 2.6 document these tests read.
type asyncDoc struct {
	AsyncAPI   string             `json:"asyncapi"`
	Channels   map[string]channel `json:"channels"`
	Components struct {
		Messages map[string]struct {
			Name    string `json:"name"`
			Payload any    `json:"payload"`
		} `json:"messages"`
		Schemas map[string]any `json:"schemas"`
	} `json:"components"`
}

type channel struct {
	Producer  string `json:"x-producer"`
	Consumers []struct {
		Service string `json:"service"`
		Group   string `json:"group"`
	} `json:"x-consumers"`
	Subscribe *struct {
		Message struct {
			Ref string `json:"$ref"`
		} `json:"message"`
	} `json:"subscribe"`
	Publish  any `json:"publish"`
	Bindings struct {
		AMQP struct {
			Is       string `json:"is"`
			Exchange struct {
				Name    string `json:"name"`
				Type    string `json:"type"`
				Durable bool   `json:"durable"`
			} `json:"exchange"`
		} `json:"amqp"`
	} `json:"bindings"`
}

// eventContract is the document loaded, with each topic's schemas.
type eventContract struct {
	doc      asyncDoc
	messages map[string]*openapi3.Schema // topic -> the whole message: envelope and payload
	payloads map[string]*openapi3.Schema // topic -> the payload alone
}

// loadEvents reads an AsyncAPI document (YAML or JSON). The schemas are
// loaded with kin-openapi: the JSON Schema subset the document keeps to
// (type, properties, required, items, enum, format, minimum, allOf, $ref to
// #/components/schemas) means the same in an OpenAPI 3.0 document, so the
// components are lifted into one and validated there.
func loadEvents(raw []byte) (*eventContract, error) {
	var tree any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		return nil, fmt.Errorf("parsing the AsyncAPI document: %w", err)
	}
	if closed := closedObjects(tree, ""); len(closed) > 0 {
		return nil, fmt.Errorf("additionalProperties is false at %v: consumers must be free to ignore fields, and producers to add them", closed)
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return nil, fmt.Errorf("re-encoding the AsyncAPI document: %w", err)
	}
	c := &eventContract{messages: map[string]*openapi3.Schema{}, payloads: map[string]*openapi3.Schema{}}
	if err := json.Unmarshal(b, &c.doc); err != nil {
		return nil, fmt.Errorf("reading the AsyncAPI document: %w", err)
	}
	if c.doc.AsyncAPI != "2.6.0" {
		return nil, fmt.Errorf("asyncapi is %q, want 2.6.0", c.doc.AsyncAPI)
	}
	schemas := map[string]any{}
	for name, s := range c.doc.Components.Schemas {
		schemas[name] = s
	}
	for name, m := range c.doc.Components.Messages {
		if m.Name != name || m.Payload == nil {
			return nil, fmt.Errorf("message %s must have its name and a payload", name)
		}
		schemas["message."+name] = m.Payload
	}
	oas, err := json.Marshal(map[string]any{
		"openapi":    "3.0.3",
		"info":       map[string]any{"title": "events", "version": "1"},
		"paths":      map[string]any{},
		"components": map[string]any{"schemas": schemas},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the schemas: %w", err)
	}
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(oas)
	if err != nil {
		return nil, fmt.Errorf("loading the schemas: %w", err)
	}
	if err := spec.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validating the schemas: %w", err)
	}
	used := map[string]bool{}
	for topic, ch := range c.doc.Channels {
		if ch.Subscribe == nil || ch.Publish != nil {
			return nil, fmt.Errorf("channel %s must have a subscribe operation (what the shop publishes) and no publish one", topic)
		}
		name, ok := strings.CutPrefix(ch.Subscribe.Message.Ref, "#/components/messages/")
		msg := spec.Components.Schemas["message."+name]
		if !ok || msg == nil {
			return nil, fmt.Errorf("channel %s refers to message %q, which is not in components.messages", topic, ch.Subscribe.Message.Ref)
		}
		used[name] = true
		payload := payloadOf(msg.Value)
		if payload == nil {
			return nil, fmt.Errorf("message %s has no payload schema inside its envelope", name)
		}
		c.messages[topic], c.payloads[topic] = msg.Value, payload
	}
	for name := range c.doc.Components.Messages {
		if !used[name] {
			return nil, fmt.Errorf("message %s is on no channel", name)
		}
	}
	return c, nil
}

// closedObjects lists where a schema forbids fields it does not name.
func closedObjects(node any, path string) []string {
	var out []string
	switch n := node.(type) {
	case map[string]any:
		if v, ok := n["additionalProperties"].(bool); ok && !v {
			out = append(out, path)
		}
		for k, v := range n {
			out = append(out, closedObjects(v, path+"/"+k)...)
		}
	case []any:
		for i, v := range n {
			out = append(out, closedObjects(v, path+"/"+strconv.Itoa(i))...)
		}
	}
	return out
}

// payloadOf finds, in a message's schema (the envelope with the message's
// own constraints, under allOf), the schema of the envelope's payload that
// names fields: the envelope's own says only "an object".
func payloadOf(msg *openapi3.Schema) *openapi3.Schema {
	for _, s := range flatten(msg) {
		if p := s.Properties["payload"]; p != nil && len(p.Value.Properties) > 0 {
			return p.Value
		}
	}
	return nil
}

// flatten returns s and every schema it is the allOf of, recursively.
func flatten(s *openapi3.Schema) []*openapi3.Schema {
	out := []*openapi3.Schema{s}
	for _, part := range s.AllOf {
		out = append(out, flatten(part.Value)...)
	}
	return out
}

func required(s *openapi3.Schema) []string {
	var out []string
	for _, part := range flatten(s) {
		out = append(out, part.Required...)
	}
	return out
}

// undocumented lists the fields of v that none of schemas names, as paths:
// the document must describe everything the producer sends.
func undocumented(schemas []*openapi3.Schema, v any, path string) []string {
	var all []*openapi3.Schema
	for _, s := range schemas {
		all = append(all, flatten(s)...)
	}
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, fv := range v {
			var subs []*openapi3.Schema
			for _, s := range all {
				if p := s.Properties[k]; p != nil {
					subs = append(subs, p.Value)
				}
			}
			if len(subs) == 0 {
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, undocumented(subs, fv, path+"."+k)...)
		}
	case []any:
		var items []*openapi3.Schema
		for _, s := range all {
			if s.Items != nil {
				items = append(items, s.Items.Value)
			}
		}
		for i, it := range v {
			out = append(out, undocumented(items, it, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

// unsent lists the fields schemas name that v lacks, as paths: a sample
// must fill every field, and the document must name no field the producer
// never sends.
func unsent(schemas []*openapi3.Schema, v any, path string) []string {
	var all []*openapi3.Schema
	for _, s := range schemas {
		all = append(all, flatten(s)...)
	}
	var out []string
	switch v := v.(type) {
	case map[string]any:
		seen := map[string]bool{}
		for _, s := range all {
			for k, p := range s.Properties {
				fv, ok := v[k]
				if !ok {
					if !seen[k] {
						out = append(out, path+"."+k)
					}
					seen[k] = true
					continue
				}
				out = append(out, unsent([]*openapi3.Schema{p.Value}, fv, path+"."+k)...)
			}
		}
	case []any:
		for _, s := range all {
			if s.Items == nil {
				continue
			}
			for i, it := range v {
				out = append(out, unsent([]*openapi3.Schema{s.Items.Value}, it, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return out
}

// sample is one event as its producer publishes it.
type sample struct {
	producer string
	event    event.Event
}

// producerProblems checks each sample against the message of its topic:
// the envelope and payload validate (types, required fields, enums,
// formats), every field sent is documented, and every documented field is
// sent; and the channel names the sample's producer.
func (c *eventContract) producerProblems(samples []sample) []string {
	var problems []string
	for _, s := range samples {
		topic := s.event.Topic
		msg, ok := c.messages[topic]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s publishes on %s, which has no channel", s.producer, topic))
			continue
		}
		if got := c.doc.Channels[topic].Producer; got != s.producer {
			problems = append(problems, fmt.Sprintf("channel %s names %q as its producer, but %s publishes it", topic, got, s.producer))
		}
		b, err := json.Marshal(s.event)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: encoding the event: %v", topic, err))
			continue
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			problems = append(problems, fmt.Sprintf("%s: decoding the event: %v", topic, err))
			continue
		}
		if err := msg.VisitJSON(v, openapi3.MultiErrors(), openapi3.EnableFormatValidation(), openapi3.DisableSchemaErrorDetails()); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s's event breaks its schema: %v", topic, s.producer, err))
		}
		for _, f := range undocumented([]*openapi3.Schema{msg}, v, "") {
			problems = append(problems, fmt.Sprintf("%s: %s sends %s, which the document does not describe", topic, s.producer, f))
		}
		for _, f := range unsent([]*openapi3.Schema{msg}, v, "") {
			problems = append(problems, fmt.Sprintf("%s: the document describes %s, which %s's event does not carry", topic, f, s.producer))
		}
	}
	return problems
}

// consumer is one service's declared expectations.
type consumer struct {
	service string
	groups  []string
	reads   event.Reads
}

func consumers() []consumer {
	return []consumer{
		{"payments", []string{paymentevents.Group}, paymentevents.Reads},
		{"inventory", []string{inventoryevents.Group}, inventoryevents.Reads},
		{"shipping", []string{shippingevents.Group}, shippingevents.Reads},
		{"orders", []string{orderevents.GroupSaga, orderevents.GroupCatalog, orderevents.GroupView}, orderevents.Reads},
	}
}

// consumerProblems checks every (consumer, topic, field) a consumer
// requires against the producer's schema for that topic: the field must be
// one the producer always sends. It also keeps each channel's list of
// consumers equal to the consumers that read it.
func (c *eventContract) consumerProblems(cons []consumer) []string {
	var problems []string
	reads := map[string]map[string]bool{} // service -> topics it reads
	for _, con := range cons {
		reads[con.service] = map[string]bool{}
		for _, topic := range con.reads.Topics() {
			reads[con.service][topic] = true
			payload, ok := c.payloads[topic]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s reads %s, which has no channel: no producer publishes it", con.service, topic))
				continue
			}
			req := required(payload)
			for _, f := range con.reads[topic] {
				if !slices.Contains(req, f) {
					problems = append(problems, fmt.Sprintf("%s requires %s of %s, which its producer does not promise to send (not a required property)", con.service, f, topic))
				}
			}
			listed := false
			for _, lc := range c.doc.Channels[topic].Consumers {
				listed = listed || (lc.Service == con.service && slices.Contains(con.groups, lc.Group))
			}
			if !listed {
				problems = append(problems, fmt.Sprintf("channel %s does not list %s (groups %v) among its consumers", topic, con.service, con.groups))
			}
		}
	}
	for topic, ch := range c.doc.Channels {
		for _, lc := range ch.Consumers {
			if !reads[lc.Service][topic] {
				problems = append(problems, fmt.Sprintf("channel %s lists %s (group %s) as a consumer, but it declares no Reads for it", topic, lc.Service, lc.Group))
			}
		}
	}
	return problems
}

// publishedTopics greps the services' domain packages for the topics they
// publish on: every constant named Topic... or Cmd... whose value is a
// topic. Consumer packages (internal/<svc>/<svc>events) declare the topics
// they read and are not looked at.
func publishedTopics(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "internal", "*", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string]string{} // topic -> the package that declares it
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) || !(strings.HasPrefix(name.Name, "Topic") || strings.HasPrefix(name.Name, "Cmd")) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					if v, err := strconv.Unquote(lit.Value); err == nil && strings.Count(v, ".") >= 2 {
						topics[v] = f.Name.Name
					}
				}
			}
		}
	}
	if len(topics) < 10 {
		t.Fatalf("found only %d published topics (%v); is the grep looking in the right place?", len(topics), topics)
	}
	return topics
}

// newEvent builds an event as a producer's own helper does, inside a trace.
func newEvent(t *testing.T, source, topic, typ string, version int, key string, payload any) event.Event {
	t.Helper()
	e, err := event.New(source, topic, typ, version, key, payload)
	if err != nil {
		t.Fatal(err)
	}
	e.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	return e
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// producerSamples is one realistic event per topic, its payload built with
// the producer's own Go type and every field filled. The orchestrator's
// commands have no exported type: they are taken from the orchestrator
// itself (orchestratorCommands).
func producerSamples(t *testing.T) []sample {
	order, user, product, payment, shipment := newID(), newID(), newID(), newID(), newID()
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	address := orders.Address{Name: "Ada Lovelace", Line1: "12 St James's Square", City: "London", PostalCode: "SW1Y 4JH", Country: "GB"}
	items := []orders.Item{{ProductID: product, Quantity: 2, PriceCents: 1250}, {ProductID: newID(), Quantity: 1, PriceCents: 499}}
	samples := []sample{
		{"users", newEvent(t, users.Source, users.TopicUserCreated, users.TypeUserCreated, 1, user,
			users.UserCreated{UserID: user, Name: "Ada Lovelace"})},
		{"catalog", newEvent(t, catalog.Source, catalog.TopicProductCreated, catalog.TypeProductCreated, 1, product,
			catalog.ProductCreated{ProductID: product, SKU: "MUG-001", Name: "Mug", PriceCents: 1250, Currency: "USD"})},
		{"catalog", newEvent(t, catalog.Source, catalog.TopicProductPriceChanged, catalog.TypeProductPriceChanged, 1, product,
			catalog.ProductPriceChanged{ProductID: product, OldPriceCents: 1250, PriceCents: 1400, Currency: "USD"})},
		{"orders", newEvent(t, orders.Source, orders.TopicOrderCreated, "OrderCreated", 1, order, orders.OrderCreated{
			OrderID: order, UserID: user, Saga: orders.ModeParallel, Items: items, TotalCents: 2999, Currency: "USD",
			CardToken: "tok_" + newID(), Address: address, CreatedAt: at,
		})},
		{"users", newEvent(t, users.Source, users.TopicUserRenamed, users.TypeUserRenamed, 1, user,
			users.UserRenamed{UserID: user, Name: "Ada King"})},
		{"orders", newEvent(t, orders.Source, orders.TopicOrderImported, "OrderImported", 1, order, orders.OrderImported{
			OrderID: order, UserID: user, Status: orders.Completed, Saga: orders.SagaNone, Origin: orders.OriginLegacy,
			Items: items, TotalCents: 2999, Currency: "USD", CreatedAt: at, UpdatedAt: at,
		})},
		// OrderCompleted is sent without a reason: only a cancellation has one.
		{"orders", newEvent(t, orders.Source, orders.TopicOrderCompleted, "OrderCompleted", 1, order,
			orders.OrderEnded{OrderID: order, UserID: user, Saga: orders.ModeChoreography, UpdatedAt: at})},
		{"orders", newEvent(t, orders.Source, orders.TopicOrderCancelled, "OrderCancelled", 1, order,
			orders.OrderEnded{OrderID: order, UserID: user, Saga: orders.ModeOrchestration, Reason: "card declined", UpdatedAt: at})},
		{"payments", newEvent(t, payments.Source, payments.TopicPaymentProcessed, payments.TypePaymentProcessed, 1, order,
			payments.PaymentProcessed{OrderID: order, PaymentID: payment, AmountCents: 2999, Currency: "USD", Saga: payments.SagaParallel})},
		{"payments", newEvent(t, payments.Source, payments.TopicPaymentFailed, payments.TypePaymentFailed, 1, order,
			payments.PaymentFailed{OrderID: order, Reason: "card declined", Saga: payments.SagaChoreography})},
		{"payments", newEvent(t, payments.Source, payments.TopicPaymentRefunded, payments.TypePaymentRefunded, 1, order,
			payments.PaymentRefunded{OrderID: order, PaymentID: payment, AmountCents: 2999, Status: payments.StatusRefunded, Saga: payments.SagaOrchestration})},
		{"inventory", newEvent(t, inventory.Source, inventory.TopicItemsReserved, inventory.TypeItemsReserved, inventory.EventVersion, order,
			inventory.ItemsReservedPayload{OrderID: order, Items: []inventory.ItemPayload{{ProductID: product, Quantity: 2}}, Saga: inventory.Parallel})},
		{"inventory", newEvent(t, inventory.Source, inventory.TopicReservationFailed, inventory.TypeReservationFailed, inventory.EventVersion, order,
			inventory.FailurePayload{OrderID: order, Reason: "not enough stock of " + product, Saga: inventory.Choreography})},
		{"inventory", newEvent(t, inventory.Source, inventory.TopicItemsReleased, inventory.TypeItemsReleased, inventory.EventVersion, order,
			inventory.OrderPayload{OrderID: order, Saga: inventory.Orchestration})},
		{"inventory", newEvent(t, inventory.Source, inventory.TopicItemsCommitted, inventory.TypeItemsCommitted, inventory.EventVersion, order,
			inventory.OrderPayload{OrderID: order, Saga: inventory.Parallel})},
		{"inventory", newEvent(t, inventory.Source, inventory.TopicCommitFailed, inventory.TypeCommitFailed, inventory.EventVersion, order,
			inventory.FailurePayload{OrderID: order, Reason: "the reservation was released", Saga: inventory.Parallel})},
		{"shipping", newEvent(t, shipping.Source, shipping.TopicDeliveryScheduled, shipping.TypeDeliveryScheduled, shipping.EventVersion, order,
			shipping.DeliveryScheduledPayload{OrderID: order, ShipmentID: shipment, Saga: shipping.Choreography})},
		{"shipping", newEvent(t, shipping.Source, shipping.TopicShipmentRefused, shipping.TypeShipmentRefused, shipping.EventVersion, order,
			shipping.ShipmentRefusedPayload{OrderID: order, Reason: "the shipment was cancelled", Saga: shipping.Orchestration})},
		{"shipping", newEvent(t, shipping.Source, shipping.TopicShipmentCancelled, shipping.TypeShipmentCancelled, shipping.EventVersion, order,
			shipping.ShipmentCancelledPayload{OrderID: order, Saga: shipping.Parallel})},
	}
	o := orders.Order{
		ID: order, UserID: user, Status: orders.Pending, Items: items, TotalCents: 2999, Currency: "USD",
		Saga: orders.ModeOrchestration, Address: address, CreatedAt: at, UpdatedAt: at,
	}
	for _, e := range orchestratorCommands(t, o, "tok_"+newID()) {
		e.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		samples = append(samples, sample{"orders", e})
	}
	return samples
}

// commandRecorder is the orchestrator's store, reduced to what its runner
// calls: it hands out one saga per step once, serves the order, and keeps
// the commands the runner sends.
type commandRecorder struct {
	orders.Store // the runner calls only the methods below
	mu           sync.Mutex
	due          []orders.Saga
	order        orders.Order
	sent         chan event.Event
}

func (r *commandRecorder) ClaimSagas(_ context.Context, _ string, _ time.Time, _ time.Duration, limit int) ([]orders.Saga, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(limit, len(r.due))
	claimed := r.due[:n]
	r.due = r.due[n:]
	return claimed, nil
}

func (r *commandRecorder) Order(_ context.Context, id string) (orders.Order, error) {
	o := r.order
	o.ID = id
	return o, nil
}

func (r *commandRecorder) Advance(_ context.Context, _ orders.Guard, _ orders.Transition, _ []orders.StepRecord, events []event.Event) error {
	for _, e := range events {
		r.sent <- e
	}
	return nil
}

// orchestratorCommands runs the orchestrator's runner over one saga at
// every step that sends a command, and returns the commands it sent, so the
// payloads are the orchestrator's own.
func orchestratorCommands(t *testing.T, o orders.Order, cardToken string) []event.Event {
	t.Helper()
	steps := []orders.Step{orders.StepCharge, orders.StepReserve, orders.StepShip, orders.StepCommit, orders.StepUnship, orders.StepRelease, orders.StepRefund}
	rec := &commandRecorder{order: o, sent: make(chan event.Event, len(steps))}
	now := time.Now()
	for _, step := range steps {
		s := orders.Saga{OrderID: o.ID, Mode: orders.ModeOrchestration, Step: step, NextAt: now}
		if step == orders.StepCharge {
			s.CardToken = cardToken // the token is dropped once the charge is answered
		}
		rec.due = append(rec.due, s)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		orders.NewRunner(rec, slog.New(slog.DiscardHandler)).Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	var sent []event.Event
	guard := time.NewTimer(time.Minute) // a stuck runner fails rather than hangs
	defer guard.Stop()
	for len(sent) < len(steps) {
		select {
		case e := <-rec.sent:
			sent = append(sent, e)
		case <-guard.C:
			t.Fatalf("the runner sent %d commands, want one per step %v", len(sent), steps)
		}
	}
	return sent
}

func loadShopEvents(t *testing.T) *eventContract {
	t.Helper()
	c, err := loadEvents(event.AsyncAPI)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEventDocumentHasAChannelForEveryPublishedTopic(t *testing.T) {
	c := loadShopEvents(t)
	published := publishedTopics(t)
	for topic, pkg := range published {
		ch, ok := c.doc.Channels[topic]
		if !ok {
			t.Errorf("%s publishes on %s, which has no channel in asyncapi.yaml", pkg, topic)
			continue
		}
		if ch.Producer != pkg {
			t.Errorf("channel %s names %q as its producer, but the topic is declared by package %s", topic, ch.Producer, pkg)
		}
	}
	for topic, ch := range c.doc.Channels {
		if _, ok := published[topic]; !ok {
			t.Errorf("channel %s has no producer: no service declares the topic", topic)
		}
		domain, key, _ := strings.Cut(topic, ".")
		amqp := ch.Bindings.AMQP
		if amqp.Is != "routingKey" || amqp.Exchange.Name != domain || amqp.Exchange.Type != "topic" || !amqp.Exchange.Durable {
			t.Errorf("channel %s: amqp binding %+v, want routing key %s on the durable topic exchange %s", topic, amqp, key, domain)
		}
	}
}

func TestProducersKeepTheEventContract(t *testing.T) {
	c := loadShopEvents(t)
	samples := producerSamples(t)
	for _, p := range c.producerProblems(samples) {
		t.Error(p)
	}
	sampled := map[string]bool{}
	for _, s := range samples {
		sampled[s.event.Topic] = true
	}
	for topic := range c.doc.Channels {
		if !sampled[topic] {
			t.Errorf("channel %s has no producer sample here: add one built with the producer's type", topic)
		}
	}
}

func TestConsumersReadOnlyWhatProducersPromise(t *testing.T) {
	c := loadShopEvents(t)
	for _, p := range c.consumerProblems(consumers()) {
		t.Error(p)
	}
	// What a service subscribes to and what it declares it reads are the
	// same topics, so no subscribed topic escapes the check above.
	subscribed := map[string][]string{
		"payments":  paymentevents.Topics(),
		"inventory": inventoryevents.Topics(),
		"shipping":  shippingevents.Topics(),
	}
	for _, con := range consumers() {
		topics, ok := subscribed[con.service]
		if !ok {
			continue // orders subscribes per group, from the topics of its Reads
		}
		topics = slices.Sorted(slices.Values(topics))
		if got := con.reads.Topics(); !slices.Equal(got, topics) {
			t.Errorf("%s reads %v, but subscribes to %v", con.service, got, topics)
		}
	}
}

// TestEventContractChecksCanFail breaks the contract on purpose, on both
// sides, and expects each break to be reported.
func TestEventContractChecksCanFail(t *testing.T) {
	samples := producerSamples(t)
	edit := func(t *testing.T, change func(schemas map[string]any)) *eventContract {
		t.Helper()
		var tree map[string]any
		if err := yaml.Unmarshal(event.AsyncAPI, &tree); err != nil {
			t.Fatal(err)
		}
		change(tree["components"].(map[string]any)["schemas"].(map[string]any))
		b, err := json.Marshal(tree)
		if err != nil {
			t.Fatal(err)
		}
		c, err := loadEvents(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	wantReported := func(t *testing.T, problems []string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
				t.Errorf("problems %q, want one that says %q", problems, w)
			}
		}
	}

	t.Run("the unedited document passes", func(t *testing.T) {
		c := edit(t, func(map[string]any) {})
		if p := append(c.producerProblems(samples), c.consumerProblems(consumers())...); len(p) > 0 {
			t.Errorf("problems %q, want none", p)
		}
	})
	t.Run("a field removed from a schema", func(t *testing.T) {
		c := edit(t, func(schemas map[string]any) {
			s := schemas["OrderCreatedPayload"].(map[string]any)
			delete(s["properties"].(map[string]any), "card_token")
			s["required"] = slices.DeleteFunc(s["required"].([]any), func(f any) bool { return f == "card_token" })
		})
		wantReported(t, c.producerProblems(samples), "orders sends .payload.card_token, which the document does not describe")
		wantReported(t, c.consumerProblems(consumers()), "payments requires card_token of orders.order.created")
	})
	t.Run("a field made optional", func(t *testing.T) {
		c := edit(t, func(schemas map[string]any) {
			s := schemas["PaymentProcessedPayload"].(map[string]any)
			s["required"] = slices.DeleteFunc(s["required"].([]any), func(f any) bool { return f == "saga" })
		})
		wantReported(t, c.consumerProblems(consumers()),
			"inventory requires saga of payments.payment.processed", "shipping requires saga of payments.payment.processed")
	})
	t.Run("a field of another type", func(t *testing.T) {
		c := edit(t, func(schemas map[string]any) {
			props := schemas["ItemsReservedPayload"].(map[string]any)["properties"].(map[string]any)
			props["order_id"] = map[string]any{"type": "integer"}
		})
		wantReported(t, c.producerProblems(samples), "inventory.items.reserved: inventory's event breaks its schema")
	})
	t.Run("a field documented that no producer sends", func(t *testing.T) {
		c := edit(t, func(schemas map[string]any) {
			props := schemas["ShipmentCancelledPayload"].(map[string]any)["properties"].(map[string]any)
			props["carrier"] = map[string]any{"type": "string"}
		})
		wantReported(t, c.producerProblems(samples), "describes .payload.carrier, which shipping's event does not carry")
	})
	t.Run("a consumer reading a field no producer sends", func(t *testing.T) {
		c := loadShopEvents(t)
		cons := consumers()
		reads := event.Reads{}
		for topic, fields := range shippingevents.Reads {
			reads[topic] = fields
		}
		reads[shippingevents.TopicOrderCreated] = append(slices.Clone(reads[shippingevents.TopicOrderCreated]), "gift_wrap")
		reads["shipping.parcel.lost"] = []string{"order_id"}
		cons[2].reads = reads
		wantReported(t, c.consumerProblems(cons),
			"shipping requires gift_wrap of orders.order.created",
			"shipping reads shipping.parcel.lost, which has no channel")
	})
	t.Run("a producer on a topic with no channel", func(t *testing.T) {
		c := loadShopEvents(t)
		stray := newEvent(t, "shipping", "shipping.parcel.lost", "ParcelLost", 1, "o1", map[string]string{"order_id": "o1"})
		wantReported(t, c.producerProblems([]sample{{"shipping", stray}}), "shipping publishes on shipping.parcel.lost, which has no channel")
	})
	t.Run("a closed schema", func(t *testing.T) {
		var tree map[string]any
		if err := yaml.Unmarshal(event.AsyncAPI, &tree); err != nil {
			t.Fatal(err)
		}
		tree["components"].(map[string]any)["schemas"].(map[string]any)["UserCreatedPayload"].(map[string]any)["additionalProperties"] = false
		b, _ := json.Marshal(tree)
		if _, err := loadEvents(b); err == nil || !strings.Contains(err.Error(), "UserCreatedPayload") {
			t.Errorf("loadEvents(closed schema) = %v, want an error naming UserCreatedPayload", err)
		}
	})
}

func TestGatewayServesTheEventDocument(t *testing.T) {
	tokens := newTokens(t)
	proxy, err := gateway.NewProxy(downResolver{}, "http://127.0.0.1:1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	base, client := serve(t, "gateway", gateway.Routes(proxy, nil, upstream.New("gateway", downResolver{})), tokens, gateway.OpenAPI)
	body := call{method: "GET", path: "/api/docs/events", want: http.StatusOK}.do(t, base, client)
	if body != string(event.AsyncAPI) {
		t.Errorf("GET /api/docs/events is not internal/event/asyncapi.yaml")
	}
	resp, err := client.Get(base + "/api/docs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `{"service":"events","url":"/api/docs/events"}`) {
		t.Errorf("GET /api/docs = %s, want it to list the events document", b)
	}
}
