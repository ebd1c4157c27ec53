// Package natsbus is the bus on NATS JetStream, embedded in the process or
// external: one stream per domain, one durable pull consumer per group and
// stream, duplicate detection by event id, and bounded redelivery.
//
// Names on the server: a topic "orders.order.created" is the subject of the
// same name, in the stream "ORDERS" (subjects "orders.>"). With a namespace
// "ci-7" the subject is "ci-7.orders.order.created" and the stream
// "CI_7_ORDERS" (subjects "ci-7.orders.>"); consumers are named after the
// group either way, since they live inside a stream.
package natsbus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/internal/dispatch"
	"github.com/microshop/microshop/internal/event"
)

// Settings of every stream. They are what the README's broker table states.
const (
	// DuplicateWindow is how long a stream remembers the event ids it has
	// stored: an event published again within it (an outbox relay that
	// crashed between publishing and marking it sent) is stored once.
	// Later duplicates are delivered again and the consumers' inbox drops
	// them.
	DuplicateWindow = 2 * time.Minute
	// DefaultMaxAge is how long a stream keeps an event when Options.MaxAge
	// is unset: longer than any outage a consumer group is expected to come
	// back from, since an event is removed by age, not when every group has
	// taken it.
	DefaultMaxAge = 7 * 24 * time.Hour
)

// Options tune a connection. The zero value works.
type Options struct {
	// Name names the connection on the server, e.g. the service.
	Name string
	// Log receives connection events; nil discards them.
	Log *slog.Logger
	// MaxAge is how long streams created by this connection keep events;
	// zero means DefaultMaxAge.
	MaxAge time.Duration
	// Namespace, if set, prefixes every subject and stream this connection
	// uses, so that several shops (test runs, environments) can share one
	// server without seeing each other's events. It is 1 to
	// bus.MaxNamespace lowercase letters, digits and '-'. Empty means the
	// plain names.
	Namespace string
}

// Bus is a connection to a JetStream server. It implements bus.Broker.
type Bus struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	log    *slog.Logger
	maxAge time.Duration
	ns     string // namespace, "" for none

	mu      sync.Mutex
	streams map[string]bool // domains whose stream is known to exist
}

var _ bus.Broker = (*Bus)(nil)

// Connect connects to the JetStream server at url (a nats:// address,
// possibly several separated by commas) and checks that JetStream is on.
// Once connected, it reconnects by itself for as long as the Bus is open.
func Connect(ctx context.Context, url string, opts Options) (*Bus, error) {
	if opts.Namespace != "" {
		if err := bus.ValidateNamespace(opts.Namespace); err != nil {
			return nil, fmt.Errorf("connecting to nats: %w", err)
		}
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	nc, err := nats.Connect(url,
		nats.Name(opts.Name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1), // a broker restart must not end the connection
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats connection lost", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats connection restored", "server", nc.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to nats at %s: %w", redact(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("opening jetstream at %s: %w", redact(url), err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("checking jetstream at %s: %w", redact(url), err)
	}
	maxAge := opts.MaxAge
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	return &Bus{nc: nc, js: js, log: log, maxAge: maxAge, ns: opts.Namespace, streams: map[string]bool{}}, nil
}

// Ping reports whether JetStream answers.
func (b *Bus) Ping(ctx context.Context) error {
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("pinging jetstream: %w", err)
	}
	return nil
}

// Close closes the connection. Subscriptions still running return an error.
func (b *Bus) Close() error {
	b.nc.Close()
	return nil
}

// Publish stores e in its domain's stream and returns once JetStream has
// acknowledged it. The event id is the message id, so a second publish of
// the same event within DuplicateWindow is stored once.
func (b *Bus) Publish(ctx context.Context, e event.Event) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	if err := bus.ValidateTopic(e.Topic); err != nil {
		return fmt.Errorf("publishing %s %s: %w", e.Type, e.ID, err)
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", e.Type, e.ID, err)
	}
	msg := &nats.Msg{Subject: b.subject(e.Topic), Data: body, Header: nats.Header{}}
	if e.TraceParent != "" {
		msg.Header.Set("traceparent", e.TraceParent) // for tools that read headers only
	}
	if err := b.publish(ctx, e.Domain(), msg, e.ID); err != nil {
		return fmt.Errorf("publishing %s %s to %s: %w", e.Type, e.ID, e.Topic, err)
	}
	return nil
}

// publish stores msg in the stream of domain, creating the stream first if
// needed, and once more if the stream turns out to have been deleted.
func (b *Bus) publish(ctx context.Context, domain string, msg *nats.Msg, id string) error {
	for try := 0; ; try++ {
		stream, err := b.ensureStream(ctx, domain)
		if err != nil {
			return err
		}
		_, err = b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(stream))
		if errors.Is(err, jetstream.ErrNoStreamResponse) && try == 0 {
			b.forgetStream(domain)
			continue
		}
		return err
	}
}

// subject is the subject that carries topic (or a domain's subjects start
// with): the topic itself, or "<namespace>.<topic>".
func (b *Bus) subject(topic string) string {
	if b.ns == "" {
		return topic
	}
	return b.ns + "." + topic
}

// streamName is the stream that holds a domain's events: "orders" ->
// "ORDERS", or with the namespace "ci-7", "CI_7_ORDERS".
func (b *Bus) streamName(domain string) string {
	if b.ns == "" {
		return strings.ToUpper(domain)
	}
	return strings.ToUpper(strings.ReplaceAll(b.ns+"_"+domain, "-", "_"))
}

// ensureStream creates the stream of domain if it does not exist, with file
// storage, one replica, duplicate detection and age-based retention, and
// returns its name. A stream of that name that holds none of the domain's
// subjects is refused: two namespaced names can spell the same stream
// ("a-b" and "c" as "a" and "b_c"), and publishing there would fail anyway.
func (b *Bus) ensureStream(ctx context.Context, domain string) (string, error) {
	name := b.streamName(domain)
	b.mu.Lock()
	known := b.streams[domain]
	b.mu.Unlock()
	if known {
		return name, nil
	}
	prefix := b.subject(domain) + "."
	description := "microshop events of the " + domain + " domain"
	if b.ns != "" {
		description += " in namespace " + b.ns
	}
	st, err := b.js.Stream(ctx, name)
	if err == nil && !slices.ContainsFunc(st.CachedInfo().Config.Subjects, func(s string) bool { return strings.HasPrefix(s, prefix) }) {
		err = fmt.Errorf("the stream exists for subjects %v, not %s>", st.CachedInfo().Config.Subjects, prefix)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = b.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: description,
			Subjects:    []string{prefix + ">"},
			Storage:     jetstream.FileStorage,
			Replicas:    1,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      b.maxAge,
			Duplicates:  DuplicateWindow,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another process created it first
		}
	}
	if err != nil {
		return "", fmt.Errorf("ensuring stream %s: %w", name, err)
	}
	b.mu.Lock()
	b.streams[domain] = true
	b.mu.Unlock()
	return name, nil
}

func (b *Bus) forgetStream(domain string) {
	b.mu.Lock()
	delete(b.streams, domain)
	b.mu.Unlock()
}

// consumer is one durable consumer of a subscription: its domain's stream
// and its settings.
type consumer struct {
	domain string
	cfg    jetstream.ConsumerConfig
}

// consumers plans the subscription's consumers: one per domain named after
// the group and filtered to its topics there. A server older than 2.10
// cannot filter one consumer on several subjects; there the group gets one
// consumer per topic, named "<group>_<hash of the topic>".
func (b *Bus) consumers(s bus.Subscription) []consumer {
	byDomain := map[string][]string{}
	var domains []string
	for _, t := range s.Topics {
		d, _, _ := strings.Cut(t, ".")
		if _, ok := byDomain[d]; !ok {
			domains = append(domains, d)
		}
		if !slices.Contains(byDomain[d], t) {
			byDomain[d] = append(byDomain[d], t)
		}
	}
	var cs []consumer
	for _, d := range domains {
		topics := byDomain[d]
		if len(topics) == 1 || filterSubjectsSupported(b.nc.ConnectedServerVersion()) {
			subjects := make([]string, len(topics))
			for i, t := range topics {
				subjects[i] = b.subject(t)
			}
			cs = append(cs, consumer{d, consumerConfig(s.Group, s, subjects)})
			continue
		}
		for _, t := range topics {
			sum := sha256.Sum256([]byte(t))
			cs = append(cs, consumer{d, consumerConfig(s.Group+"_"+hex.EncodeToString(sum[:4]), s, []string{b.subject(t)})})
		}
	}
	return cs
}

// filterSubjectsSupported reports whether a server of this version filters
// a consumer on several subjects (2.10 and later). An unknown version is
// taken to be recent.
func filterSubjectsSupported(version string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(version, "%d.%d", &major, &minor); err != nil {
		return true
	}
	return major > 2 || major == 2 && minor >= 10
}

// consumerConfig is a durable consumer named name of subscription s,
// filtered to subjects of one stream. It starts at the beginning of the
// stream, so a group that subscribes for the first time still gets what was
// published before. The broker allows dispatch.DeadLetterRetries deliveries
// beyond MaxDeliver, which never reach the handler (see dispatch); after
// those JetStream stops delivering the message, leaves it in the stream and
// publishes a MAX_DELIVERIES advisory.
func consumerConfig(name string, s bus.Subscription, subjects []string) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "microshop group " + s.Group,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		MaxDeliver:    s.MaxDeliver + dispatch.DeadLetterRetries,
	}
	if len(subjects) == 1 {
		cfg.FilterSubject = subjects[0]
	} else {
		cfg.FilterSubjects = subjects
	}
	return cfg
}

// Subscribe consumes s's topics with one durable pull consumer per domain,
// named after the group, so every group gets each event and the instances
// of one group share them. At most s.Concurrency handlers run at once over
// all domains. A failed attempt is redelivered after s.Backoff(attempt);
// the attempt number is JetStream's delivery count.
func (b *Bus) Subscribe(ctx context.Context, s bus.Subscription, h bus.Handler) error {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	planned := b.consumers(s)
	pullers := make([]jetstream.Consumer, len(planned))
	for i, c := range planned {
		var err error
		if pullers[i], err = b.ensureConsumer(ctx, c); err != nil {
			return fmt.Errorf("subscribing %s: %w", s.Group, err)
		}
	}
	if s.Ready != nil {
		s.Ready()
	}

	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	slots := make(chan struct{}, s.Concurrency)
	var handlers, loops sync.WaitGroup
	for i, c := range planned {
		loops.Go(func() {
			if err := b.consume(ctx, c, pullers[i], s, h, slots, &handlers); err != nil {
				stop(err)
			}
		})
	}
	loops.Wait()
	handlers.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("subscribing %s: %w", s.Group, err)
	}
	return nil
}

// Waiting adds up, over the group's consumers (one per domain), the
// messages not yet delivered and those delivered but not yet acknowledged.
func (b *Bus) Waiting(ctx context.Context, s bus.Subscription) (int, error) {
	total := 0
	for _, c := range b.consumers(s.WithDefaults()) {
		pc, err := b.js.Consumer(ctx, b.streamName(c.domain), c.cfg.Durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // nothing is kept for a consumer that does not exist
		}
		if err != nil {
			return 0, fmt.Errorf("finding consumer %s: %w", c.cfg.Durable, err)
		}
		info, err := pc.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("reading consumer %s: %w", c.cfg.Durable, err)
		}
		total += int(info.NumPending) + info.NumAckPending
	}
	return total, nil
}

// ensureConsumer creates or updates a consumer, creating its stream too if
// it does not exist yet.
func (b *Bus) ensureConsumer(ctx context.Context, c consumer) (jetstream.Consumer, error) {
	stream, err := b.ensureStream(ctx, c.domain)
	if err != nil {
		return nil, err
	}
	pc, err := b.js.CreateOrUpdateConsumer(ctx, stream, c.cfg)
	if err != nil {
		return nil, fmt.Errorf("ensuring consumer %s on %s: %w", c.cfg.Durable, stream, err)
	}
	return pc, nil
}

// consume pulls from one consumer until ctx ends, starting a handler per
// message while a slot is free. When pulling fails (the consumer or stream
// was deleted, the server lost its state) it sets the consumer up again and
// goes on; only a closed connection ends it with an error.
func (b *Bus) consume(ctx context.Context, c consumer, pc jetstream.Consumer, s bus.Subscription, h bus.Handler, slots chan struct{}, handlers *sync.WaitGroup) error {
	for {
		err := b.pull(ctx, pc, s, h, slots, handlers)
		switch {
		case ctx.Err() != nil:
			return nil
		case b.nc.IsClosed():
			return fmt.Errorf("consuming %s: %w", c.cfg.Durable, nats.ErrConnectionClosed)
		}
		b.log.Warn("consumer interrupted, setting it up again", "consumer", c.cfg.Durable, "domain", c.domain, "err", err)
		for {
			if !sleep(ctx, time.Second) {
				return nil
			}
			b.forgetStream(c.domain)
			if pc, err = b.ensureConsumer(ctx, c); err == nil {
				break
			}
			if b.nc.IsClosed() {
				return fmt.Errorf("consuming %s: %w", c.cfg.Durable, nats.ErrConnectionClosed)
			}
			b.log.Warn("setting up consumer", "consumer", c.cfg.Durable, "domain", c.domain, "err", err)
		}
	}
}

// pull runs one message iterator until ctx ends or it fails. The iterator
// buffers at most s.Concurrency messages, so that a message does not spend
// much of its AckWait waiting in the buffer; the ones still buffered when ctx
// ends are handed back to the server at once.
func (b *Bus) pull(ctx context.Context, c jetstream.Consumer, s bus.Subscription, h bus.Handler, slots chan struct{}, handlers *sync.WaitGroup) error {
	it, err := c.Messages(jetstream.PullMaxMessages(s.Concurrency))
	if err != nil {
		return fmt.Errorf("pulling: %w", err)
	}
	defer it.Stop()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			handBack(it)
			return nil
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				handBack(it)
				return nil
			}
			return fmt.Errorf("pulling: %w", err)
		}
		handlers.Go(func() {
			defer func() { <-slots }()
			b.deliver(ctx, msg, s, h)
		})
	}
}

// handBack returns the messages still in the iterator's buffer to the
// server, which then gives them to another instance at once instead of
// after AckWait.
func handBack(it jetstream.MessagesContext) {
	it.Drain()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(100 * time.Millisecond))
		if err != nil {
			return
		}
		_ = msg.Nak() // if it is lost, AckWait redelivers the message anyway
	}
}

// deliver processes one message and answers the server.
func (b *Bus) deliver(ctx context.Context, msg jetstream.Msg, s bus.Subscription, h bus.Handler) {
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	v := dispatch.Handle(ctx, s, h, msg.Data(), attempt)
	var err error
	switch v.Action {
	case dispatch.Ack:
		err = msg.Ack()
	case dispatch.DeadLettered:
		b.log.Warn("event dead-lettered", "group", s.Group, "subject", msg.Subject(), "attempt", attempt, "err", v.Err)
		err = msg.TermWithReason("dead-lettered")
	case dispatch.Retry:
		if attempt >= s.MaxDeliver+dispatch.DeadLetterRetries {
			b.log.Error("giving up on a message: the dead-letter handler failed on its last delivery; it stays in the stream",
				"group", s.Group, "subject", msg.Subject(), "attempt", attempt, "err", v.Err)
		}
		err = msg.NakWithDelay(v.Delay)
	case dispatch.Abandon:
		// Left to the server, which redelivers it after AckWait.
	}
	if err != nil {
		// The server redelivers after AckWait; the consumers' inbox drops a
		// second copy of what was done.
		b.log.Debug("answering the server", "action", v.Action, "subject", msg.Subject(), "err", err)
	}
}

// sleep waits for d or until ctx ends, and reports whether ctx is still on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// redact hides passwords in a server list, for error messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
