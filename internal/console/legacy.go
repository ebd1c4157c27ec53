package console

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/web"
)

// legacyService is the legacy monolith's name in the registry.
const legacyService = "legacy"

// legacyStatsPath is the monolith's own admin route for its figures. The
// gateway routes only the monolith's old public paths, not this one, so the
// console asks the monolith directly.
const legacyStatsPath = "/admin/stats"

// LegacyStats is the monolith's own account of itself: the customers and
// orders in its one database, and the domains it has handed over to the
// services that own them now.
type LegacyStats struct {
	Customers int        `json:"customers"`
	Orders    int        `json:"orders"`
	Handovers []Handover `json:"handovers"`
}

// Handover is the monolith's record that it gave a domain's data to a
// service, and refuses writes to it from then on.
type Handover struct {
	Domain   string    `json:"domain"`
	Service  string    `json:"service"`
	HandedAt time.Time `json:"handed_at"`
}

// legacy answers the monolith's figures for the console's Monolith view.
// They are decoded into LegacyStats, not passed through, so the console
// answers a shape it documents whatever else the monolith says.
func (c *Console) legacy(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Ask == nil {
		unreachable(w, r, errors.New("the console has no way to ask services"))
		return
	}
	token, _, _ := auth.BearerToken(r)
	ctx, cancel := context.WithTimeout(r.Context(), pollTimeout)
	defer cancel()
	var st LegacyStats
	if err := c.cfg.Ask(ctx, legacyService, legacyStatsPath, token, &st); err != nil {
		unreachable(w, r, err)
		return
	}
	if st.Handovers == nil {
		st.Handovers = []Handover{}
	}
	web.JSON(w, http.StatusOK, st)
}

// unreachable answers 503 for the monolith, whatever went wrong between the
// console and it: the console depends on it and cannot answer for it now.
// The cause is logged as a warning, not sent: a monolith that is down or
// retired is expected, and the console's view asks every few seconds.
func unreachable(w http.ResponseWriter, r *http.Request, cause error) {
	web.LoggerFrom(r.Context()).WarnContext(r.Context(), "the legacy monolith did not give its figures", slog.Any("err", cause))
	web.WriteProblem(w, r, http.StatusServiceUnavailable, "the legacy monolith cannot be reached for its figures")
}
