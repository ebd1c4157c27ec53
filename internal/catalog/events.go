package catalog

import (
	"fmt"

	"github.com/microshop/microshop/internal/event"
)

// Source names the catalog service as the publisher of its events.
const Source = "catalog"

// The events the catalog publishes: their types and the topics they go to.
const (
	TypeProductCreated      = "ProductCreated"
	TypeProductPriceChanged = "ProductPriceChanged"

	TopicProductCreated      = "catalog.product.created"
	TopicProductPriceChanged = "catalog.product.price_changed"
)

// ProductCreated is the payload (v1) of a new product.
type ProductCreated struct {
	ProductID  string `json:"product_id"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Currency   string `json:"currency"`
}

// ProductPriceChanged is the payload (v1) of a new price, with the one it
// replaced.
type ProductPriceChanged struct {
	ProductID     string `json:"product_id"`
	OldPriceCents int64  `json:"old_price_cents"`
	PriceCents    int64  `json:"price_cents"`
	Currency      string `json:"currency"`
}

// productCreated is the event that announces p.
func productCreated(p Product) (event.Event, error) {
	return newEvent(TopicProductCreated, TypeProductCreated, p.ID, ProductCreated{
		ProductID: p.ID, SKU: p.SKU, Name: p.Name, PriceCents: p.PriceCents, Currency: p.Currency,
	})
}

// priceChanged is the event that announces p's price becoming priceCents.
func priceChanged(p Product, priceCents int64) (event.Event, error) {
	return newEvent(TopicProductPriceChanged, TypeProductPriceChanged, p.ID, ProductPriceChanged{
		ProductID: p.ID, OldPriceCents: p.PriceCents, PriceCents: priceCents, Currency: p.Currency,
	})
}

func newEvent(topic, typ, productID string, payload any) (event.Event, error) {
	e, err := event.New(Source, topic, typ, 1, productID, payload)
	if err != nil {
		return event.Event{}, fmt.Errorf("building %s of product %s: %w", typ, productID, err)
	}
	return e, nil
}
