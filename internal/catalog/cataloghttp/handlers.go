package cataloghttp

import (
	"net/http"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/web"
)

type handlers struct {
	svc *catalog.Service
}

// productV1 is the v1 view of a product: what a product list shows.
type productV1 struct {
	ID         string `json:"id"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Currency   string `json:"currency"`
}

// productV2 adds the description and category.
type productV2 struct {
	productV1
	Description string `json:"description"`
	Category    string `json:"category"`
}

func viewV1(p catalog.Product) productV1 {
	return productV1{ID: p.ID, SKU: p.SKU, Name: p.Name, PriceCents: p.PriceCents, Currency: p.Currency}
}

func viewV2(p catalog.Product) productV2 {
	return productV2{productV1: viewV1(p), Description: p.Description, Category: p.Category}
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	after, limit, err := web.PageParams(r, catalog.DefaultPageLimit, catalog.MaxPageLimit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	p, err := h.svc.List(r.Context(), after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(p.Items, p.Next, viewV1))
}

func (h *handlers) getV1(w http.ResponseWriter, r *http.Request) {
	p, err := h.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewV1(p))
}

func (h *handlers) getV2(w http.ResponseWriter, r *http.Request) {
	p, err := h.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewV2(p))
}

// create adds a product. The caller is checked before the body is read, so a
// stranger learns nothing about what a valid body looks like.
func (h *handlers) create(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	var in struct {
		SKU         string `json:"sku"`
		Name        string `json:"name"`
		Description string `json:"description"`
		Category    string `json:"category"`
		PriceCents  int64  `json:"price_cents"`
		Currency    string `json:"currency"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	p, err := h.svc.Create(r.Context(), catalog.NewProduct{
		SKU: in.SKU, Name: in.Name, Description: in.Description, Category: in.Category,
		PriceCents: in.PriceCents, Currency: in.Currency,
	})
	if err != nil {
		web.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/products/"+p.ID)
	web.JSON(w, http.StatusCreated, viewV2(p))
}

func (h *handlers) changePrice(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	var in struct {
		// A pointer tells a missing price from a zero one, so each gets its own message.
		PriceCents *int64 `json:"price_cents"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	if in.PriceCents == nil {
		web.Error(w, r, fail.New(fail.Invalid, "price_cents is required"))
		return
	}
	p, err := h.svc.ChangePrice(r.Context(), r.PathValue("id"), *in.PriceCents)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewV2(p))
}
