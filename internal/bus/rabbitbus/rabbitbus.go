// Package rabbitbus is the bus on RabbitMQ: a durable topic exchange per
// domain, a durable quorum queue per group, persistent messages published
// with confirms, manual acknowledgements, and a connection that comes back by
// itself after the broker restarts.
//
// Names on the broker: a topic "orders.order.created" goes to the exchange
// "orders" with the routing key "order.created", and a group "inventory"
// consumes the queue "inventory" (and parks in "inventory.dead"). With a
// namespace "ci-7" they are the exchange "ci-7.orders" and the queues
// "ci-7.inventory" and "ci-7.inventory.dead"; routing keys do not change.
package rabbitbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/internal/dispatch"
	"github.com/microshop/microshop/internal/event"
)

// Settings of every queue and publish. They are what the README's broker
// table states.
const (
	// DeliveryLimit is every group queue's x-delivery-limit: after that many
	// deliveries RabbitMQ moves a message to the group's "<group>.dead"
	// queue. The bus itself dead-letters after MaxDeliver attempts and parks
	// a message in "<group>.dead" when the dead-letter handler still fails
	// dispatch.DeadLetterRetries deliveries later; this limit is only the
	// broker's backstop. It is a constant because queue arguments cannot
	// change once the queue exists, while MaxDeliver may.
	DeliveryLimit = 50
	// DefaultPublishTimeout bounds a Publish whose context has no deadline,
	// waiting for a lost connection to come back included.
	DefaultPublishTimeout = 30 * time.Second
	// publishChannels is how many publishes can wait for their confirm at
	// once. Each confirm channel carries one publish at a time, so that a
	// returned (unroutable) message is matched to its publish for certain.
	publishChannels = 8
)

// ErrUnroutable reports a message that no queue was bound to receive. It is
// published with the mandatory flag, so RabbitMQ returns it instead of
// dropping it silently.
var ErrUnroutable = errors.New("no queue is bound to receive it")

// ErrClosed reports a Bus used after Close.
var ErrClosed = errors.New("rabbitmq bus closed")

// errRetry marks a failure that a new channel or connection may cure.
var errRetry = errors.New("connection interrupted")

// Options tune a connection. The zero value works.
type Options struct {
	// Name names the connection on the broker, e.g. the service.
	Name string
	// Log receives connection events; nil discards them.
	Log *slog.Logger
	// PublishTimeout replaces DefaultPublishTimeout when set.
	PublishTimeout time.Duration
	// Namespace, if set, prefixes every exchange and queue this connection
	// uses, so that several shops (test runs, environments) can share one
	// broker without seeing each other's events. It is 1 to
	// bus.MaxNamespace lowercase letters, digits and '-'. Empty means the
	// plain names.
	Namespace string
}

// Bus is a connection to RabbitMQ that reconnects by itself. It implements
// bus.Broker.
type Bus struct {
	url            string
	name           string
	log            *slog.Logger
	publishTimeout time.Duration
	ns             string // namespace, "" for none

	mu       sync.Mutex
	conn     *amqp.Connection // nil while reconnecting
	changed  chan struct{}    // closed, and replaced, whenever conn changes
	declared map[string]bool  // exchanges declared on conn

	pubs      chan *publisher // the confirm channels not in use
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{} // closed when the connection keeper has stopped
}

var _ bus.Broker = (*Bus)(nil)

// Connect connects to RabbitMQ at url (amqp://user:password@host:port/vhost).
// Once connected, it reconnects after every loss for as long as the Bus is
// open: publishes wait for the connection within their deadline, and
// subscriptions declare their queues again and resume.
func Connect(ctx context.Context, url string, opts Options) (*Bus, error) {
	if opts.Namespace != "" {
		if err := bus.ValidateNamespace(opts.Namespace); err != nil {
			return nil, fmt.Errorf("connecting to rabbitmq: %w", err)
		}
	}
	b := &Bus{
		url:            url,
		name:           opts.Name,
		log:            opts.Log,
		publishTimeout: opts.PublishTimeout,
		ns:             opts.Namespace,
		changed:        make(chan struct{}),
		declared:       map[string]bool{},
		pubs:           make(chan *publisher, publishChannels),
		closing:        make(chan struct{}),
		done:           make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.publishTimeout == 0 {
		b.publishTimeout = DefaultPublishTimeout
	}
	for range publishChannels {
		b.pubs <- &publisher{}
	}
	conn, err := b.dial(ctx)
	if err != nil {
		return nil, err
	}
	b.setConn(conn)
	go b.keepConnected(conn)
	return b, nil
}

// dial opens one connection, within ctx's deadline or five seconds.
func (b *Bus) dial(ctx context.Context) (*amqp.Connection, error) {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	props := amqp.NewConnectionProperties()
	if b.name != "" {
		props.SetClientConnectionName(b.name)
	}
	conn, err := amqp.DialConfig(b.url, amqp.Config{
		Heartbeat:  10 * time.Second, // notices a broker that vanished without closing
		Locale:     "en_US",
		Properties: props,
		Dial:       amqp.DefaultDial(timeout),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to rabbitmq at %s: %w", redact(b.url), err)
	}
	return conn, nil
}

// setConn makes conn (or nil, while reconnecting) the current connection and
// wakes whoever waits for a change.
func (b *Bus) setConn(conn *amqp.Connection) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn = conn
	b.declared = map[string]bool{}
	close(b.changed)
	b.changed = make(chan struct{})
}

// keepConnected watches the connection and dials again whenever it is
// lost, until Close.
func (b *Bus) keepConnected(conn *amqp.Connection) {
	defer close(b.done)
	for {
		lost := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-b.closing:
			b.setConn(nil)
			_ = conn.Close()
			return
		case err := <-lost:
			b.log.Warn("rabbitmq connection lost, reconnecting", "err", err)
		}
		b.setConn(nil)
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
			select {
			case <-b.closing:
				return
			case <-time.After(delay):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := b.dial(ctx)
			cancel()
			if err == nil {
				conn = c
				break
			}
			b.log.Debug("reconnecting to rabbitmq", "err", err)
		}
		b.setConn(conn)
		b.log.Info("rabbitmq connection restored")
	}
}

// connection returns the current connection, waiting while it is being
// re-established, within ctx.
func (b *Bus) connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		select {
		case <-b.closing:
			return nil, ErrClosed
		default:
		}
		b.mu.Lock()
		conn, changed := b.conn, b.changed
		b.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-changed:
		case <-b.closing:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the rabbitmq connection: %w", ctx.Err())
		}
	}
}

// Ping reports whether the broker answers: it opens and closes a channel.
func (b *Bus) Ping(ctx context.Context) error {
	conn, err := b.connection(ctx)
	if err != nil {
		return fmt.Errorf("pinging rabbitmq: %w", err)
	}
	answer := make(chan error, 1)
	go func() {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Close()
		}
		answer <- err
	}()
	select {
	case err = <-answer:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("pinging rabbitmq: %w", err)
	}
	return nil
}

// Close closes the connection and stops reconnecting. Subscriptions still
// running return ErrClosed.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() { close(b.closing) })
	<-b.done
	return nil
}

// publisher is a channel in confirm mode, used by one publish at a time.
type publisher struct {
	ch      *amqp.Channel
	returns chan amqp.Return
}

// discard closes the channel, so that a confirm or return still owed for an
// abandoned publish cannot be taken for the next one's.
func (p *publisher) discard() {
	if p.ch != nil {
		_ = p.ch.Close()
	}
	p.ch, p.returns = nil, nil
}

// Publish sends e to its domain's exchange with its routing key, as a
// persistent message whose id is the event id, and returns once the broker
// has confirmed it: stored in every queue it was routed to. A message no
// queue receives is an ErrUnroutable error. If the connection is lost on the
// way, Publish publishes again once it is back, within ctx's deadline (or
// Options.PublishTimeout); a message stored just before the loss is then
// stored twice, which the consumers' inbox absorbs.
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
	msg := amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    e.ID,
		Type:         e.Type,
		AppId:        e.Source,
		Timestamp:    e.Time,
		Body:         body,
	}
	if e.TraceParent != "" {
		msg.Headers = amqp.Table{"traceparent": e.TraceParent} // for tools that read headers only
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.publishTimeout)
		defer cancel()
	}
	var p *publisher
	select {
	case p = <-b.pubs:
	case <-ctx.Done():
		return fmt.Errorf("publishing %s %s to %s: %w", e.Type, e.ID, e.Topic, ctx.Err())
	}
	defer func() { b.pubs <- p }()
	for {
		err := b.publishOnce(ctx, p, b.exchange(e.Domain()), e.RoutingKey(), msg)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errRetry) || !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("publishing %s %s to %s: %w", e.Type, e.ID, e.Topic, err)
		}
		b.log.Debug("publish interrupted, publishing again", "event", e.ID, "err", err)
	}
}

// publishOnce publishes msg on p's channel, opening the channel first if
// needed, and waits for the confirm.
func (b *Bus) publishOnce(ctx context.Context, p *publisher, exchange, key string, msg amqp.Publishing) error {
	if p.ch == nil || p.ch.IsClosed() {
		conn, err := b.connection(ctx)
		if err != nil {
			return err
		}
		ch, err := conn.Channel()
		if err != nil {
			return retryable(fmt.Errorf("opening channel: %w", err))
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return retryable(fmt.Errorf("enabling confirms: %w", err))
		}
		p.ch, p.returns = ch, ch.NotifyReturn(make(chan amqp.Return, 16))
	}
	if err := b.declareExchange(p.ch, exchange); err != nil {
		p.discard()
		return err
	}
	drain(p.returns)
	confirm, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		p.discard()
		return retryable(err)
	}
	acked, err := confirm.WaitContext(ctx)
	switch {
	case err != nil:
		p.discard()
		return fmt.Errorf("waiting for the confirm: %w", err)
	case !acked && p.ch.IsClosed():
		// The channel closed before the broker confirmed; an exchange deleted
		// under us closes it too, so declare it again next time.
		p.discard()
		b.forgetExchange(exchange)
		return retryable(errors.New("channel closed before the confirm"))
	case !acked:
		return errors.New("broker refused the message (nack)")
	}
	select {
	case r := <-p.returns: // a return comes before its confirm, so it is here by now
		if r.MessageId == msg.MessageId {
			return fmt.Errorf("%w: exchange %q, routing key %q", ErrUnroutable, exchange, key)
		}
	default:
	}
	return nil
}

// declareExchange declares a domain's durable topic exchange once per
// connection.
func (b *Bus) declareExchange(ch *amqp.Channel, name string) error {
	b.mu.Lock()
	done := b.declared[name]
	b.mu.Unlock()
	if done {
		return nil
	}
	if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return classify(fmt.Errorf("declaring exchange %s: %w", name, err))
	}
	b.mu.Lock()
	b.declared[name] = true
	b.mu.Unlock()
	return nil
}

func (b *Bus) forgetExchange(name string) {
	b.mu.Lock()
	delete(b.declared, name)
	b.mu.Unlock()
}

// Subscribe consumes s's topics from the quorum queue named after the group
// (one queue per group, bound to each topic's exchange and routing key), so
// every group gets each event and the instances of one group share them.
// Prefetch is s.Concurrency, which bounds the handlers running at once. The
// attempt number is the queue's x-delivery-count plus one; a failed attempt
// waits s.Backoff(attempt) and is then requeued. When the connection is
// lost, Subscribe waits for it, declares its queue again and resumes.
func (b *Bus) Subscribe(ctx context.Context, s bus.Subscription, h bus.Handler) error {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	if s.MaxDeliver+dispatch.DeadLetterRetries >= DeliveryLimit {
		return fmt.Errorf("subscribing %s: MaxDeliver must be below %d", s.Group, DeliveryLimit-dispatch.DeadLetterRetries)
	}
	ready := false
	for {
		err := b.consume(ctx, s, h, func() {
			if !ready && s.Ready != nil {
				s.Ready()
			}
			ready = true
		})
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrClosed), !ready && !errors.Is(err, errRetry):
			// Closed, or the queue cannot be set up at all (it exists with
			// other arguments, access refused): nothing to wait for.
			return fmt.Errorf("subscribing %s: %w", s.Group, err)
		}
		b.log.Warn("consumer interrupted, resuming", "group", s.Group, "err", err)
		if !sleep(ctx, 250*time.Millisecond) {
			return nil
		}
	}
}

// consume runs one channel's consumer until ctx ends or the channel is lost,
// and returns after its handlers have finished. Closing the channel requeues
// what was not acknowledged.
func (b *Bus) consume(ctx context.Context, s bus.Subscription, h bus.Handler, ready func()) error {
	conn, err := b.connection(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return retryable(fmt.Errorf("opening channel: %w", err))
	}
	gone := ch.NotifyClose(make(chan *amqp.Error, 1))
	hctx, cancel := context.WithCancel(ctx) // also ends when the channel is lost: no answer can reach the broker then
	var handlers sync.WaitGroup
	defer func() {
		cancel()
		handlers.Wait()
		_ = ch.Close()
	}()
	if err := ch.Qos(s.Concurrency, 0, false); err != nil {
		return retryable(fmt.Errorf("setting prefetch: %w", err))
	}
	if err := b.declareQueue(ch, s); err != nil {
		return err
	}
	deliveries, err := ch.Consume(b.queue(s.Group), "", false, false, false, false, nil)
	if err != nil {
		return classify(fmt.Errorf("consuming %s: %w", b.queue(s.Group), err))
	}
	ready()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-gone:
			return retryable(fmt.Errorf("channel closed: %w", err))
		case d, ok := <-deliveries:
			if !ok {
				return retryable(errors.New("consumer cancelled by the broker"))
			}
			handlers.Go(func() { b.deliver(hctx, d, s, h) })
		}
	}
}

// exchange is the exchange of a domain: the domain, or
// "<namespace>.<domain>".
func (b *Bus) exchange(domain string) string {
	if b.ns == "" {
		return domain
	}
	return b.ns + "." + domain
}

// Waiting reads the group's queue: the messages ready to be delivered
// (AMQP's count leaves out those delivered and not yet acknowledged, which
// are at most the consumers' prefetch).
func (b *Bus) Waiting(ctx context.Context, s bus.Subscription) (int, error) {
	conn, err := b.connection(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading queue %s: %w", b.queue(s.Group), err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("reading queue %s: %w", b.queue(s.Group), err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(b.queue(s.Group), true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
		return 0, nil // nothing is kept for a group that never subscribed
	}
	if err != nil {
		return 0, fmt.Errorf("reading queue %s: %w", b.queue(s.Group), err)
	}
	return q.Messages, nil
}

// queue is the queue of a group: the group, or "<namespace>.<group>". Its
// dead queue adds ".dead".
func (b *Bus) queue(group string) string {
	if b.ns == "" {
		return group
	}
	return b.ns + "." + group
}

// declareQueue declares the group's quorum queue, its "<group>.dead"
// queue, the exchanges and the bindings. Everything is durable; the queue
// moves messages past DeliveryLimit, or rejected for good, to the dead
// queue at least once.
func (b *Bus) declareQueue(ch *amqp.Channel, s bus.Subscription) error {
	queue := b.queue(s.Group)
	dead := queue + ".dead"
	if _, err := ch.QueueDeclare(dead, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg: amqp.QueueTypeQuorum,
	}); err != nil {
		return classify(fmt.Errorf("declaring queue %s: %w", dead, err))
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
		"x-delivery-limit":          int64(DeliveryLimit),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": dead,
		"x-dead-letter-strategy":    "at-least-once",
		amqp.QueueOverflowArg:       amqp.QueueOverflowRejectPublish, // required by at-least-once dead-lettering
	}); err != nil {
		return classify(fmt.Errorf("declaring queue %s: %w", queue, err))
	}
	for _, t := range s.Topics {
		e := event.Event{Topic: t}
		exchange := b.exchange(e.Domain())
		if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return classify(fmt.Errorf("declaring exchange %s: %w", exchange, err))
		}
		if err := ch.QueueBind(queue, e.RoutingKey(), exchange, false, nil); err != nil {
			return classify(fmt.Errorf("binding %s to %s: %w", queue, t, err))
		}
	}
	return nil
}

// deliver processes one delivery and answers the broker.
func (b *Bus) deliver(ctx context.Context, d amqp.Delivery, s bus.Subscription, h bus.Handler) {
	attempt := deliveryCount(d.Headers) + 1
	v := dispatch.Handle(ctx, s, h, d.Body, attempt)
	var err error
	switch v.Action {
	case dispatch.Ack:
		err = d.Ack(false)
	case dispatch.DeadLettered:
		b.log.Warn("event dead-lettered", "group", s.Group, "routing_key", d.RoutingKey, "attempt", attempt, "err", v.Err)
		err = d.Ack(false)
	case dispatch.Retry:
		if attempt >= s.MaxDeliver+dispatch.DeadLetterRetries {
			b.log.Error("parking a message in "+b.queue(s.Group)+".dead: the dead-letter handler failed on its last delivery",
				"group", s.Group, "routing_key", d.RoutingKey, "attempt", attempt, "err", v.Err)
			err = d.Nack(false, false)
			break
		}
		if !sleep(ctx, v.Delay) {
			return // stopping: closing the channel requeues it
		}
		err = d.Nack(false, true)
	case dispatch.Abandon:
		// Left to the broker, which requeues it when the channel closes.
	}
	if err != nil {
		// The channel is gone, so the broker requeues the message; the
		// consumers' inbox drops a second copy of what was done.
		b.log.Debug("answering the broker", "action", v.Action, "routing_key", d.RoutingKey, "err", err)
	}
}

// deliveryCount reads a quorum queue's count of earlier deliveries.
func deliveryCount(h amqp.Table) int {
	switch n := h["x-delivery-count"].(type) {
	case int64:
		return int(n)
	case int32:
		return int(n)
	case int:
		return n
	}
	return 0
}

// retryable marks err as one a new channel or connection may cure.
func retryable(err error) error { return fmt.Errorf("%w: %w", errRetry, err) }

// classify marks err retryable unless the broker refused for good: access
// refused, not found, or a declaration that contradicts what exists.
func classify(err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Server {
		switch ae.Code {
		case amqp.AccessRefused, amqp.NotFound, amqp.PreconditionFailed, amqp.NotAllowed:
			return err
		}
	}
	return retryable(err)
}

// drain empties a channel of returns left by earlier publishes.
func drain(returns chan amqp.Return) {
	for {
		select {
		case <-returns:
		default:
			return
		}
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

// redact hides the password in a broker address, for error messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "the configured address"
}
