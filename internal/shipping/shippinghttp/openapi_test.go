package shippinghttp_test

import (
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/shipping/shippinghttp"
)

// service is the shipping service as the contract checks see it. Its surface
// is routes.go, the dead-letter admin routes inbox.Mount adds, the fault routes
// fault.Mount adds, and the ops endpoints host adds to every service.
var service = contracttest.Service{
	Name:    "shipping",
	OpenAPI: shippinghttp.OpenAPI,
	Routes:  newRoutes,
	Surface: []string{
		"GET /api/v1/admin/dlq",
		"GET /api/v1/admin/resilience",
		"POST /api/v1/admin/dlq/{id}/replay",
		"GET /api/v1/admin/faults",
		"PUT /api/v1/admin/faults",
		"GET /api/v1/shipments",
		"POST /internal/v1/shipments",
		"POST /internal/v1/shipments/{order_id}/cancel",
		"GET /openapi.yaml",
		"GET /healthz",
		"GET /ready",
		"GET /metrics",
	},
	Authorized: contracttest.Get{Role: auth.RoleCustomer, Path: "/api/v1/shipments"},
	Closed:     []string{"Address", "ScheduleRequest", "FaultSettings"},
}

// TestOpenAPIDescribesTheRoutes checks that the document is valid OpenAPI
// 3.0.3, that it describes exactly the routes, each as its own pattern,
// that internal routes are tagged so, and that every error is a problem.
func TestOpenAPIDescribesTheRoutes(t *testing.T) { service.CheckDocumented(t) }

// TestServedAsTheShopServesIt checks, against the document, what only the
// shop's middleware adds, and the document served as embedded.
func TestServedAsTheShopServesIt(t *testing.T) { service.CheckHosted(t) }

// TestDeadLetterRoutes checks the dead-letter admin routes the shop mounts
// on the shipping mux.
func TestDeadLetterRoutes(t *testing.T) { service.CheckDeadLetters(t) }
