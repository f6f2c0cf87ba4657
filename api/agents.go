package api

import (
	"net/http"

	"go.uber.org/zap"
)

// agentRoutes serves GET /agents and POST /agents/{id}/pause and /resume.
func agentRoutes(mux *http.ServeMux, agents Agents, log *zap.Logger) {
	mux.HandleFunc("GET /agents", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, agents.Agents())
	})
	pause := func(paused bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id := r.PathValue("id")
			if err := agents.SetPaused(id, paused); err != nil {
				writeError(w, err)
				return
			}
			log.Info("agent pause changed", zap.String("agent", id), zap.Bool("paused", paused))
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("POST /agents/{id}/pause", pause(true))
	mux.HandleFunc("POST /agents/{id}/resume", pause(false))
}
