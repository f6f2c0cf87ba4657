package api

import (
	"net/http"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/phone"
)

// A customer's export is theirs to have in full: it needs the pii role and is never masked.
func (h *v1) exportCustomer(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	rec, err := h.admin.ExportCustomer(r.Context(), r.PathValue("number"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}

// The erasure answers what it deleted; its number is masked unless the token has pii, as
// everywhere.
func (h *v1) eraseCustomer(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	erased, err := h.admin.EraseCustomer(r.Context(), r.PathValue("number"))
	if err != nil {
		return err
	}
	erased.Number = mask(r, erased.Number)
	if !rolesOf(r).Has(config.RolePII) {
		for i, k := range erased.RateLimits {
			erased.RateLimits[i] = phone.MaskText(k) // the counters' keys name the number
		}
	}
	writeJSON(w, http.StatusOK, erased)
	return nil
}
