package console

import "slices"

// Node is one box on the console's diagram, with what a newcomer should
// know about it.
type Node struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"` // gateway, registry, broker, service or legacy
	Summary   string   `json:"summary"`
	Owns      string   `json:"owns"`
	Why       string   `json:"why"`
	Database  string   `json:"database"`
	Publishes []string `json:"publishes"`
	Consumes  []string `json:"consumes"`
	Groups    []string `json:"groups,omitempty"` // the consumer groups it consumes as, whose queues the broker keeps
	API       string   `json:"api"`              // where its OpenAPI document is served, if it has one
}

// Edge joins two nodes: a synchronous call, or events through the broker.
type Edge struct {
	From   string   `json:"from"`
	To     string   `json:"to"`
	Kind   string   `json:"kind"` // http or event
	Topics []string `json:"topics,omitempty"`
}

// Topology is the shop as the console draws it.
type Topology struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Nodes describes every part of the shop. The topics each service publishes
// and consumes are checked against the services' own consumers and the
// AsyncAPI document by the contract tests (TestConsoleTopologyMatchesTheEvents).
var Nodes = []Node{
	{
		Name: "gateway", Kind: "gateway",
		Summary: "The one door: routes every public path to the service that owns it.",
		Owns:    "the route table and each client's rate-limit bucket; nothing durable",
		Why:     "Clients see one address and one API while services move, scale and fail behind it. It verifies tokens, limits rates, caps bodies, and answers 503 at once while an upstream's breaker is open.",
		API:     "/api/docs/gateway",
	},
	{
		Name: "registry", Kind: "registry",
		Summary: "Who runs where: instances announce themselves and keep a TTL lease alive with heartbeats.",
		Owns:    "the live instances of every service, in memory",
		Why:     "Addresses change with every restart and every new instance; callers resolve a name to a healthy instance instead of knowing ports. An instance that stops heartbeating drops out after its TTL.",
		API:     "/api/docs/registry",
	},
	{
		Name: Broker, Kind: "broker",
		Summary: "Carries events between services: at least once, kept until every consumer group has taken them.",
		Owns:    "the streams of events and each consumer group's position in them",
		Why:     "Services that only need to hear about a change should not have to be up at the same moment as the one that made it. The outbox puts events here; the inbox applies each once.",
	},
	{
		Name: "users", Kind: "service",
		Summary:   "Accounts, credentials and roles; signs the access tokens every service verifies.",
		Owns:      "users, bcrypt password hashes, roles, and the signing key ring",
		Why:       "Identity changes for its own reasons (rotation, roles, sign-up rules) and every other service depends on it only through its public keys (JWKS), so it can be replaced or scaled alone.",
		Database:  "users.db (SQLite, embedded)",
		Publishes: []string{"users.user.created", "users.user.renamed"},
		API:       "/api/docs/users",
	},
	{
		Name: "catalog", Kind: "service",
		Summary:   "Products, prices and descriptions: the most read part of the shop.",
		Owns:      "products and their prices",
		Why:       "Read far more than written, it scales and caches on its own; when it is down, the gateway serves the last good copy of a product and orders price from its own copy of the prices.",
		Database:  "documents: FerretDB embedded on SQLite (MongoDB in production)",
		Publishes: []string{"catalog.product.created", "catalog.product.price_changed"},
		API:       "/api/docs/catalog",
	},
	{
		Name: "inventory", Kind: "service",
		Summary:   "Stock per product, and the reservations orders hold on it.",
		Owns:      "stock levels and reservations",
		Why:       "Stock must never go below zero nor be reserved twice: one service owns it and answers for it, and sagas reserve, commit and release through its events.",
		Database:  "inventory.db (SQLite, embedded)",
		Publishes: []string{"inventory.items.reserved", "inventory.reservation.failed", "inventory.items.released", "inventory.items.committed", "inventory.commit.failed"},
		Consumes:  []string{"orders.order.created", "orders.order.cancelled", "payments.payment.processed", "payments.payment.failed", "shipping.delivery.scheduled", "inventory.command.reserve", "inventory.command.commit", "inventory.command.release"},
		Groups:    []string{"inventory"},
		API:       "/api/docs/inventory",
	},
	{
		Name: "orders", Kind: "service",
		Summary:   "Takes orders and runs each one's saga to its end: completed, or cancelled with every step compensated.",
		Owns:      "orders, their saga state, and the order-history read model (CQRS), built from its own events",
		Why:       "An order spans stock, money and delivery owned by others; no transaction can cover them, so orders coordinates them as a saga (choreography, parallel or orchestration) and keeps the state that says how far each got.",
		Database:  "orders.db (SQLite, embedded)",
		Publishes: []string{"orders.order.created", "orders.order.completed", "orders.order.cancelled", "orders.order.imported", "payments.command.charge", "payments.command.refund", "inventory.command.reserve", "inventory.command.commit", "inventory.command.release", "shipping.command.schedule", "shipping.command.cancel"},
		Consumes:  []string{"orders.order.created", "orders.order.completed", "orders.order.cancelled", "orders.order.imported", "users.user.created", "users.user.renamed", "catalog.product.created", "catalog.product.price_changed", "payments.payment.processed", "payments.payment.failed", "payments.payment.refunded", "inventory.items.reserved", "inventory.reservation.failed", "inventory.items.released", "inventory.items.committed", "inventory.commit.failed", "shipping.delivery.scheduled", "shipping.shipment.refused", "shipping.shipment.cancelled"},
		Groups:    []string{"orders", "orders-catalog", "orders-view"},
		API:       "/api/docs/orders",
	},
	{
		Name: "payments", Kind: "service",
		Summary:   "Charges and refunds cards through a (simulated) provider, never twice for one order.",
		Owns:      "card tokens (the only holder of card numbers), charges and refunds",
		Why:       "Money needs the strictest rules and the smallest blast radius: card numbers stay here, behind tokens, and each charge is idempotent by order.",
		Database:  "payments.db (SQLite, embedded)",
		Publishes: []string{"payments.payment.processed", "payments.payment.failed", "payments.payment.refunded"},
		Consumes:  []string{"orders.order.created", "orders.order.cancelled", "inventory.reservation.failed", "inventory.commit.failed", "payments.command.charge", "payments.command.refund"},
		Groups:    []string{"payments"},
		API:       "/api/docs/payments",
	},
	{
		Name: "shipping", Kind: "service",
		Summary:   "Schedules deliveries for paid, reserved orders, and cancels them when a saga compensates.",
		Owns:      "shipments",
		Why:       "Delivery has its own partners and rhythm; it only needs to hear that an order is paid and its items reserved.",
		Database:  "shipping.db (SQLite, embedded)",
		Publishes: []string{"shipping.delivery.scheduled", "shipping.shipment.refused", "shipping.shipment.cancelled"},
		Consumes:  []string{"orders.order.created", "orders.order.cancelled", "inventory.items.reserved", "payments.payment.processed", "shipping.command.schedule", "shipping.command.cancel"},
		Groups:    []string{"shipping"},
		API:       "/api/docs/shipping",
	},
	{
		Name: "legacy", Kind: "service",
		Summary:  "The old shop: one app, one database with customers and their orders together. The gateway's strangler-fig facade moves its routes to the new services one by one.",
		Owns:     "customers and their orders, until each route moves",
		Why:      "It still serves its customers, and a rewrite switched on in one go would change every route and all its data at once; behind a facade each route moves alone, once its data is copied, so a mistake costs one route, not the shop.",
		Database: "legacy.db (SQLite, embedded)",
		API:      "/api/docs/legacy",
	},
}

// calls are the synchronous edges: the gateway forwards to every service
// (the monolith's routes through its facade, until they move), orders asks
// catalog for prices and payments for card tokens, and the monolith asks
// users for the account of a customer it has not seen and catalog for
// prices.
var calls = []Edge{
	{From: "gateway", To: "registry", Kind: "http"},
	{From: "gateway", To: "users", Kind: "http"},
	{From: "gateway", To: "catalog", Kind: "http"},
	{From: "gateway", To: "inventory", Kind: "http"},
	{From: "gateway", To: "orders", Kind: "http"},
	{From: "gateway", To: "payments", Kind: "http"},
	{From: "gateway", To: "shipping", Kind: "http"},
	{From: "orders", To: "catalog", Kind: "http"},
	{From: "orders", To: "payments", Kind: "http"},
	{From: "gateway", To: "legacy", Kind: "http"},
	{From: "legacy", To: "users", Kind: "http"},
	{From: "legacy", To: "catalog", Kind: "http"},
}

// NewTopology returns the diagram of the nodes: their calls, and an event
// edge into the broker from each publisher and out of it to each consumer.
func NewTopology(nodes []Node) Topology {
	t := Topology{Nodes: nodes, Edges: slices.Clone(calls)}
	for _, n := range nodes {
		if len(n.Publishes) > 0 {
			t.Edges = append(t.Edges, Edge{From: n.Name, To: Broker, Kind: "event", Topics: n.Publishes})
		}
		if len(n.Consumes) > 0 {
			t.Edges = append(t.Edges, Edge{From: Broker, To: n.Name, Kind: "event", Topics: n.Consumes})
		}
	}
	return t
}
