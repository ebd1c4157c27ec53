package paymenthttp

import (
	"net/http"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/payments/simprovider"
	"github.com/microshop/microshop/internal/web"
)

// ProviderModes reads and switches the mode of the simulated card provider.
type ProviderModes interface {
	Mode() simprovider.Mode
	SetMode(simprovider.Mode) error
}

type providerHandlers struct{ p ProviderModes }

// providerState is the provider's mode as the admin API answers it, with
// what payments does in it.
type providerState struct {
	Mode   simprovider.Mode   `json:"mode"`
	Modes  []simprovider.Mode `json:"modes"`
	Expect string             `json:"expect"`
}

func stateOf(m simprovider.Mode) providerState {
	return providerState{Mode: m, Modes: simprovider.Modes, Expect: m.Expect()}
}

// get answers GET /api/v1/admin/provider.
func (h *providerHandlers) get(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, stateOf(h.p.Mode()))
}

// put answers PUT /api/v1/admin/provider {"mode"}: ok, timeout or fail.
func (h *providerHandlers) put(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	var in struct {
		Mode string `json:"mode"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	mode, err := simprovider.ParseMode(in.Mode)
	if err == nil {
		err = h.p.SetMode(mode)
	}
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.LoggerFrom(r.Context()).WarnContext(r.Context(), "card provider mode switched", "mode", mode)
	web.JSON(w, http.StatusOK, stateOf(mode))
}
