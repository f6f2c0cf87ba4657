package api

import (
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/queue"
)

type queueView struct {
	Name string `json:"name"`
	// Open counts the open promises by state.
	Open map[queue.State]int64 `json:"open"`
	// Due and Waiting split the pending promises: due now, or waiting for their not-before.
	Due     int64 `json:"due"`
	Waiting int64 `json:"waiting"`
	AtRisk  int   `json:"at_risk"`
	// KeptRatio is null while nothing that counts finished in the window.
	KeptRatio       *float64              `json:"kept_ratio"`
	KeptRatioWindow float64               `json:"kept_ratio_window_seconds"`
	Outcomes        map[queue.State]int64 `json:"outcomes"`
	// Quotes is the honest deadline now per reason; a reason with none keepable is absent.
	Quotes map[queue.Reason]time.Time `json:"quotes"`
}

func (h *v1) listQueues(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	sums, err := h.admin.Summaries(r.Context())
	if err != nil {
		return err
	}
	out := struct {
		Queues []queueView `json:"queues"`
	}{Queues: []queueView{}}
	for _, s := range sums {
		v := queueView{Name: s.Name, Due: s.Due, Waiting: s.Waiting, AtRisk: s.AtRisk,
			Open:            map[queue.State]int64{queue.StatePending: s.Pending, queue.StateDialing: s.Dialing, queue.StateConnected: s.Connected},
			KeptRatioWindow: s.Window.Seconds(), Outcomes: s.Outcomes, Quotes: s.Quotes}
		if v.Outcomes == nil {
			v.Outcomes = map[queue.State]int64{}
		}
		if !math.IsNaN(s.KeptRatio) {
			k := s.KeptRatio
			v.KeptRatio = &k
		}
		out.Queues = append(out.Queues, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type quoteView struct {
	Queue    string       `json:"queue"`
	Reason   queue.Reason `json:"reason"`
	Deadline time.Time    `json:"deadline"`
}

func (h *v1) quote(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "queue", "reason"); err != nil {
		return err
	}
	name := q.Get("queue")
	if name == "" {
		return &dialer.FieldError{Field: "queue", Err: fmt.Errorf("%w: required", errMalformed)}
	}
	reason := queue.Reason(q.Get("reason"))
	if reason == "" {
		reason = queue.ReasonAPI
	}
	t, err := h.admin.Quote(r.Context(), name, reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, quoteView{Queue: name, Reason: reason, Deadline: t})
	return nil
}
