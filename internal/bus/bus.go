// Package bus is the small contract between microshop's services and a
// message broker: publish an event and know the broker has it, and consume a
// durable subscription with acknowledgements, bounded redelivery and a
// dead-letter hand-off. Implementations: natsbus (JetStream, embedded or
// external) and rabbitbus (RabbitMQ).
package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/event"
)

// Publisher sends events to the broker. Publish returns only once the
// broker has stored the event durably (a JetStream ack, a RabbitMQ publisher
// confirm); an error means it may not have, and the caller must try again.
type Publisher interface {
	Publish(ctx context.Context, e event.Event) error
}

// Delivery is one delivery of an event to a subscriber.
type Delivery struct {
	Event   event.Event
	Attempt int // 1 for the first delivery, counted by the broker
}

// Handler processes a delivery. Returning nil acknowledges it; an error
// asks for redelivery later, until Subscription.MaxDeliver attempts have
// been made, after which the delivery goes to the dead-letter handler. An
// error of kind fail.Unavailable (an outage of what the handler needs) is
// first tried again within the same delivery, for up to half of AckWait,
// so that a short outage costs no attempt; the handler must be safe to run
// again, as it must be for a redelivery.
type Handler func(ctx context.Context, d Delivery) error

// DeadLetterHandler receives a delivery that failed MaxDeliver times (or
// could not be decoded at all: then Attempt is 0, Event is zero and only raw
// holds the message), with the last error. If it returns nil the delivery is
// acknowledged and gone from the broker; otherwise it is redelivered, a few
// more times only, so that a dead-letter store that is down for a moment
// loses nothing while a broken one cannot keep a message circling forever.
type DeadLetterHandler func(ctx context.Context, d Delivery, raw []byte, cause error) error

// Subscription says what to consume and how.
type Subscription struct {
	// Group is the durable consumer's name, normally the consuming service:
	// each group gets every event once, and instances of one group share them.
	Group string
	// Topics are the event topics to receive, e.g. "orders.order.created".
	Topics []string
	// MaxDeliver bounds the attempts at one event before it is dead-lettered.
	MaxDeliver int
	// AckWait is how long the broker waits for an acknowledgement before it
	// redelivers (a consumer that crashed mid-handler).
	AckWait time.Duration
	// Backoff is the delay before redelivering after a failed attempt n (1-based).
	Backoff func(attempt int) time.Duration
	// Concurrency bounds the handlers running at once.
	Concurrency int
	// DeadLetter receives what cannot be processed.
	DeadLetter DeadLetterHandler
	// Ready, if set, is called once the subscription exists on the broker:
	// from then on every event published to its topics is kept for it, even
	// while no handler runs. It lets a service report itself ready only when
	// it cannot miss events, and tests publish without racing the set-up.
	Ready func()
}

// Subscriber consumes subscriptions.
type Subscriber interface {
	// Subscribe creates or joins the durable subscription and runs h on
	// each delivery until ctx ends; it returns after the handlers in flight
	// have finished. It returns nil when ctx ends and an error when the
	// subscription cannot be set up or the broker connection was closed; a
	// broker that goes away for a while does not end it. Each handler gets a
	// context that ends after AckWait or when ctx ends; a handler that fails
	// because ctx ended leaves its delivery to the broker, which redelivers
	// it as it would after a crash.
	Subscribe(ctx context.Context, s Subscription, h Handler) error
}

// Broker is a connection that can publish and subscribe.
type Broker interface {
	Publisher
	Subscriber
	// Ping reports whether the broker is reachable, for health checks.
	Ping(ctx context.Context) error
	// Waiting reports how many messages the broker keeps for the
	// subscription's group that it has not yet seen settled: its queue's
	// depth. It reads the broker's state and changes nothing: a group that
	// never subscribed (to some of the topics) has nothing kept there.
	Waiting(ctx context.Context, s Subscription) (int, error)
	// Close releases the connection.
	Close() error
}

// Defaults for a subscription that leaves fields unset.
const (
	DefaultMaxDeliver  = 5
	DefaultAckWait     = 30 * time.Second
	DefaultConcurrency = 16
)

// WithDefaults fills unset fields of s.
func (s Subscription) WithDefaults() Subscription {
	if s.MaxDeliver == 0 {
		s.MaxDeliver = DefaultMaxDeliver
	}
	if s.AckWait == 0 {
		s.AckWait = DefaultAckWait
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.Backoff == nil {
		s.Backoff = func(attempt int) time.Duration {
			return min(100*time.Millisecond<<min(attempt, 10), 5*time.Second)
		}
	}
	return s
}

// Validate reports a subscription that cannot work. A group name is made of
// letters, digits, '-' and '_', because it names a JetStream consumer and a
// RabbitMQ queue, and neither may hold '.' or wildcards there.
func (s Subscription) Validate() error {
	switch {
	case s.Group == "":
		return errors.New("subscription needs a group")
	case !validName(s.Group, true):
		return fmt.Errorf("subscription group %q may hold only letters, digits, '-' and '_'", s.Group)
	case len(s.Topics) == 0:
		return errors.New("subscription needs topics")
	case s.DeadLetter == nil:
		return errors.New("subscription needs a dead-letter handler")
	case s.MaxDeliver < 1 || s.AckWait <= 0 || s.Concurrency < 1:
		return errors.New("subscription needs MaxDeliver, AckWait and Concurrency above zero")
	}
	for _, t := range s.Topics {
		if err := ValidateTopic(t); err != nil {
			return err
		}
	}
	return nil
}

// ValidateTopic reports a topic that both brokers cannot carry the same way:
// a topic is a domain and a key, "<domain>.<key>", each part made of lowercase
// letters, digits, '-' and '_' and separated by dots. Wildcards are refused
// because JetStream and RabbitMQ spell and match them differently.
func ValidateTopic(topic string) error {
	parts := strings.Split(topic, ".")
	if len(parts) < 2 {
		return fmt.Errorf("topic %q is not of the form domain.key", topic)
	}
	for _, p := range parts {
		if !validName(p, false) {
			return fmt.Errorf("topic %q: every dot-separated part must be lowercase letters, digits, '-' or '_'", topic)
		}
	}
	return nil
}

// MaxNamespace is the longest namespace, so that the names built from it
// (streams, exchanges, queues) stay well within the brokers' limits.
const MaxNamespace = 32

// ValidateNamespace reports a namespace that cannot prefix broker names: one
// of 1 to MaxNamespace lowercase letters, digits and '-'. A namespace lets
// several shops (test runs, environments) share one broker without seeing
// each other's events; the empty namespace, the default, is not validated
// here since it means no prefix at all.
func ValidateNamespace(ns string) error {
	if ns == "" || len(ns) > MaxNamespace {
		return fmt.Errorf("namespace %q must be 1 to %d characters", ns, MaxNamespace)
	}
	for _, r := range ns {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("namespace %q may hold only lowercase letters, digits and '-'", ns)
		}
	}
	return nil
}

// validName reports whether s is non-empty and made of lowercase letters,
// digits, '-' and '_' (and uppercase letters if upper is set).
func validName(s string, upper bool) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
		case upper && r >= 'A' && r <= 'Z':
		default:
			return false
		}
	}
	return true
}
