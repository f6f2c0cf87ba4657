package api

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/queue"
)

func (h *v1) listAgents(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	agents := h.agents.Agents()
	if agents == nil {
		agents = []dialer.AgentView{}
	}
	writeJSON(w, http.StatusOK, struct {
		Agents []dialer.AgentView `json:"agents"`
	}{agents})
	return nil
}

// presenceOf is the presence each action records. Pause and resume are presence like login
// and logout: kept in Redis, so a pause holds across a restart and on every daemon.
var presenceOf = map[string]queue.PresenceState{
	"login": queue.PresenceLoggedIn, "logout": queue.PresenceLoggedOut,
	"pause": queue.PresencePaused, "resume": queue.PresenceLoggedIn,
}

func (h *v1) setPresence(action string) func(http.ResponseWriter, *http.Request) error {
	state := presenceOf[action]
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		if err := h.agents.SetPresence(r.Context(), id, state, "api:"+rolesOf(r).Name); err != nil {
			return err
		}
		h.log.Info("agent presence changed", zap.String("agent", id), zap.String("presence", string(state)),
			zap.String("by", rolesOf(r).Name))
		for _, a := range h.agents.Agents() {
			if a.ID == id {
				writeJSON(w, http.StatusOK, a)
				return nil
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
