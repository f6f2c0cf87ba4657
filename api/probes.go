package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callbackd/callbackd/config"
)

// probeTimeout bounds a readiness check, so a hung Redis makes /readyz fail instead of hang.
const probeTimeout = 2 * time.Second

// probeRoutes serves /metrics, /healthz (the process answers) and /readyz (the daemon can
// work; if not, 503 and one line per problem; either way a "warning:" line for each warning).
// /readyz needs no token, but without it the answer is only the verdict ("ready" or "not
// ready"): its details name hosts, ports and causes, which are the operator's, not a probe's.
func probeRoutes(mux *http.ServeMux, o Options, tokens *Tokens) {
	// GET (and HEAD, which the mux serves with it) only: a probe or a scrape never writes, and
	// anything else at these paths is a client to refuse (405), not to answer.
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{Registry: o.Registerer}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
		defer cancel()
		var warnings []string
		if o.Warnings != nil {
			warnings = o.Warnings()
		}
		problems := o.Ready(ctx)
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		} else {
			problems = []string{"ready"}
		}
		if roles, ok := tokens.rolesFor(r); !ok || !roles.Has(config.RoleRead) {
			if problems[0] != "ready" {
				fmt.Fprintln(w, "not ready")
			} else {
				fmt.Fprintln(w, "ready")
			}
			return
		}
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
		for _, warning := range warnings {
			fmt.Fprintln(w, "warning: "+warning)
		}
	})
}
