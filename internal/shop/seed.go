package shop

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

//go:embed seeddata/products.json
var seedProducts []byte

type seedProduct struct {
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Category    string `json:"category"`
	PriceCents  int64  `json:"price_cents"`
	Stock       int64  `json:"stock"`
}

// seed gives a new shop its catalog and stock, through the public API as an
// admin would, so no service's database is touched from outside. Each step
// is skipped when already done, so an interrupted seed completes on the next
// start.
func (b *builder) seed(ctx context.Context) error {
	addr, ok := b.addrs.Load("gateway")
	if !ok {
		return nil
	}
	c := &seedClient{base: "http://" + addr.(string), hc: &http.Client{Timeout: 10 * time.Second}}
	var products []seedProduct
	if err := json.Unmarshal(seedProducts, &products); err != nil {
		return fmt.Errorf("reading seed products: %w", err)
	}
	var existing struct {
		Items []struct {
			ID  string `json:"id"`
			SKU string `json:"sku"`
		} `json:"items"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/products?limit=1000", nil, &existing); err != nil {
		return err
	}
	ids := map[string]string{}
	for _, p := range existing.Items {
		ids[p.SKU] = p.ID
	}
	for _, p := range products {
		if ids[p.SKU] != "" {
			var level struct{}
			err := c.do(ctx, http.MethodGet, "/api/v1/inventory/"+url.PathEscape(ids[p.SKU]), nil, &level)
			if !errors.Is(err, errNotFound) {
				continue // seeded already, or a failure to report below
			}
		}
		if c.token == "" {
			if b.adminPass == "" {
				b.log.Warn("the catalog needs seeding but the admin password is unknown; set MICROSHOP_ADMIN_PASSWORD")
				return nil
			}
			if err := c.login(ctx, b.cfg.AdminEmail, b.adminPass); err != nil {
				return err
			}
		}
		if ids[p.SKU] == "" {
			var created struct {
				ID string `json:"id"`
			}
			body := map[string]any{"sku": p.SKU, "name": p.Name, "description": p.Description, "category": p.Category, "price_cents": p.PriceCents, "currency": "USD"}
			if err := c.do(ctx, http.MethodPost, "/api/v1/products", body, &created); err != nil {
				return fmt.Errorf("creating product %s: %w", p.SKU, err)
			}
			ids[p.SKU] = created.ID
		}
		if err := c.do(ctx, http.MethodPut, "/api/v1/inventory/"+url.PathEscape(ids[p.SKU]), map[string]any{"available": p.Stock}, nil); err != nil {
			return fmt.Errorf("stocking product %s: %w", p.SKU, err)
		}
		b.log.Info("seeded product", slog.String("sku", p.SKU), slog.Int64("stock", p.Stock))
	}
	return nil
}

var errNotFound = errors.New("not found")

type seedClient struct {
	base  string
	hc    *http.Client
	token string
}

func (c *seedClient) login(ctx context.Context, email, password string) error {
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{"email": email, "password": password}, &out); err != nil {
		return fmt.Errorf("logging in as the admin: %w", err)
	}
	c.token = out.AccessToken
	return nil
}

func (c *seedClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return errNotFound
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
