// Package catalogdoc stores the catalog service's products as documents,
// on MongoDB or on the embedded FerretDB (package docdb), one document per
// product in the products collection. The events that announce a change are
// stored in the changed product's document (docdb's document outbox), so
// that they commit with it, and docdb.Relay publishes them.
package catalogdoc

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/docdb"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Collection is where the products are, each under its id.
const Collection = "products"

// Store is a catalog.Store on documents.
type Store struct {
	db       *docdb.DB
	products *mongo.Collection
}

var _ catalog.Store = (*Store)(nil)

// New returns a store over db, whose indexes Migrate must have created.
func New(db *docdb.DB) *Store {
	return &Store{db: db, products: db.Collection(Collection)}
}

// Migrate creates the products collection's indexes unless they exist: a
// unique SKU, and the document outbox's. It is the documents' counterpart
// of SQL migrations, and as safe to run at every start.
func Migrate(ctx context.Context, db *docdb.DB) error {
	return db.EnsureIndexes(ctx, Collection,
		mongo.IndexModel{Keys: bson.D{{Key: "sku", Value: 1}}, Options: options.Index().SetName("sku_unique").SetUnique(true)},
		docdb.OutboxIndex)
}

// product is a product as its document holds it. Times are BSON dates,
// which keep milliseconds: a product read back has its times to the
// millisecond.
type product struct {
	ID          string    `bson:"_id"`
	SKU         string    `bson:"sku"`
	Name        string    `bson:"name"`
	Description string    `bson:"description"`
	Category    string    `bson:"category"`
	PriceCents  int64     `bson:"price_cents"`
	Currency    string    `bson:"currency"`
	CreatedAt   time.Time `bson:"created_at"`
	UpdatedAt   time.Time `bson:"updated_at"`
}

func (p product) domain() catalog.Product {
	return catalog.Product{
		ID: p.ID, SKU: p.SKU, Name: p.Name, Description: p.Description, Category: p.Category,
		PriceCents: p.PriceCents, Currency: p.Currency, CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(),
	}
}

// readProjection leaves the outbox out of what reads return.
var readProjection = bson.D{{Key: docdb.OutboxField, Value: 0}, {Key: docdb.SinceField, Value: 0}}

// Create implements catalog.Store. The product and its events are one
// document, inserted in one write: both or neither.
func (s *Store) Create(ctx context.Context, p catalog.Product, events ...event.Event) error {
	change, err := docdb.Events(ctx, events...)
	if err != nil {
		return err
	}
	doc := change.Insert(bson.D{
		{Key: "_id", Value: p.ID}, {Key: "sku", Value: p.SKU}, {Key: "name", Value: p.Name},
		{Key: "description", Value: p.Description}, {Key: "category", Value: p.Category},
		{Key: "price_cents", Value: p.PriceCents}, {Key: "currency", Value: p.Currency},
		{Key: "created_at", Value: p.CreatedAt.UTC()}, {Key: "updated_at", Value: p.UpdatedAt.UTC()},
	})
	if _, err := s.products.InsertOne(ctx, doc); err != nil {
		// The id is a fresh UUIDv7, so the unique key it ran into is the SKU's.
		if docdb.IsDuplicate(err) {
			return fail.New(fail.Conflict, "a product with sku %s already exists", p.SKU)
		}
		return fmt.Errorf("inserting product: %w", err)
	}
	if !change.Empty() {
		s.db.Committed()
	}
	return nil
}

// ByID implements catalog.Store.
func (s *Store) ByID(ctx context.Context, id string) (catalog.Product, error) {
	return s.one(ctx, bson.D{{Key: "_id", Value: id}})
}

// BySKU implements catalog.Store.
func (s *Store) BySKU(ctx context.Context, sku string) (catalog.Product, error) {
	return s.one(ctx, bson.D{{Key: "sku", Value: sku}})
}

func (s *Store) one(ctx context.Context, filter bson.D) (catalog.Product, error) {
	var p product
	err := s.products.FindOne(ctx, filter, options.FindOne().SetProjection(readProjection)).Decode(&p)
	if docdb.IsNotFound(err) {
		return catalog.Product{}, notFound()
	}
	if err != nil {
		return catalog.Product{}, fmt.Errorf("reading product: %w", err)
	}
	return p.domain(), nil
}

// List implements catalog.Store.
func (s *Store) List(ctx context.Context, after string, limit int) ([]catalog.Product, error) {
	cur, err := s.products.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)).SetProjection(readProjection))
	if err != nil {
		return nil, fmt.Errorf("listing products: %w", err)
	}
	var docs []product
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("listing products: %w", err)
	}
	products := make([]catalog.Product, 0, len(docs))
	for _, d := range docs {
		products = append(products, d.domain())
	}
	return products, nil
}

// UpdatePrice implements catalog.Store. The new price and its events are
// one update of the product's document, conditional on the price it
// replaces, so the events are stored only if the update changed the price,
// and the answer is the document as this update left it.
func (s *Store) UpdatePrice(ctx context.Context, id string, fromCents, toCents int64, at time.Time, events ...event.Event) (catalog.Product, error) {
	change, err := docdb.Events(ctx, events...)
	if err != nil {
		return catalog.Product{}, err
	}
	update := change.Update(bson.D{{Key: "$set", Value: bson.D{
		{Key: "price_cents", Value: toCents}, {Key: "updated_at", Value: at.UTC()},
	}}})
	var p product
	err = s.db.Exclusive(func() error {
		// No projection: FerretDB v1 does not implement one on findAndModify.
		return s.products.FindOneAndUpdate(ctx,
			bson.D{{Key: "_id", Value: id}, {Key: "price_cents", Value: fromCents}}, update,
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&p)
	})
	switch {
	case docdb.IsNotFound(err):
		// Either no such product, or its price moved: tell which.
		if _, err := s.ByID(ctx, id); err != nil {
			return catalog.Product{}, err
		}
		return catalog.Product{}, fail.New(fail.Conflict, "the price of product %s is no longer %d", id, fromCents)
	case err != nil:
		return catalog.Product{}, fmt.Errorf("updating price of product %s: %w", id, err)
	}
	if !change.Empty() {
		s.db.Committed()
	}
	return p.domain(), nil
}

func notFound() error { return fail.New(fail.NotFound, "product not found") }
