package api

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// agentRoutes serves GET /agents and POST /agents/{id}/pause, /resume, /login and /logout.
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
	// Login and logout are the agent's own word that they work now; they are kept in Redis, so
	// every daemon rings the same agents and a restart forgets nobody. An agent off shift is
	// never rung, logged in or not.
	presence := func(state queue.PresenceState) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id := r.PathValue("id")
			if err := agents.SetPresence(r.Context(), id, state, "api"); err != nil {
				writeError(w, err)
				return
			}
			log.Info("agent presence changed", zap.String("agent", id), zap.String("presence", string(state)))
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("POST /agents/{id}/login", presence(queue.PresenceLoggedIn))
	mux.HandleFunc("POST /agents/{id}/logout", presence(queue.PresenceLoggedOut))
}
