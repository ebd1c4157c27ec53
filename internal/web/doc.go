// Package web holds the HTTP building blocks every microshop service shares:
// problem-details errors, strict JSON decoding, middleware, health and
// readiness, RED metrics and a server that shuts down gracefully. It knows
// nothing of the shop's business.
package web
