package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbackd/callbackd/api"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/phone"
)

type sseMessage struct {
	ID, Event string
	Data      struct {
		Type, Queue, Promise, Number string
	}
	Comment string
}

// stream is one open GET /events, read message by message.
type stream struct {
	r        *rig
	req      *http.Request
	cancel   context.CancelFunc
	messages chan sseMessage
	done     chan struct{}

	closing sync.Once
	mu      sync.Mutex
	code    int
	header  http.Header
	raw     bytes.Buffer
}

// openStream opens GET /api/v1/events+query on srv (nil: the rig's) with token and Last-Event-ID
// last, and waits until the server has fixed where it reads from.
func (r *rig) openStream(srv *httptest.Server, query, token, last string) *stream {
	r.t.Helper()
	if srv == nil {
		srv = r.srv
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/events"+query, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	s := &stream{r: r, req: req, cancel: cancel, messages: make(chan sseMessage, 100), done: make(chan struct{})}
	resp, err := srv.Client().Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	s.code, s.header = resp.StatusCode, resp.Header
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var m sseMessage
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.raw.WriteString(line + "\n")
			s.mu.Unlock()
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "":
				if line == "" {
					s.messages <- m
					m = sseMessage{}
				} else {
					m.Comment = value
				}
			case "id":
				m.ID = value
			case "event":
				m.Event = value
			case "data":
				if err := json.Unmarshal([]byte(value), &m.Data); err != nil {
					r.t.Errorf("event data %q: %v", value, err)
				}
			}
		}
	}()
	r.t.Cleanup(s.close)
	if s.code == 200 {
		s.next(func(m sseMessage) bool { return m.Comment != "" }) // the opening comment
	}
	return s
}

// next waits for the first message that want accepts, skipping the others.
func (s *stream) next(want func(sseMessage) bool) sseMessage {
	s.r.t.Helper()
	guard := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-s.messages:
			if !ok {
				s.r.t.Fatal("the stream ended")
			}
			if want(m) {
				return m
			}
		case <-guard:
			s.r.t.Fatal("gave up waiting for an event")
		}
	}
}

// close ends the stream as a client going away does, and checks the exchange against the
// document.
func (s *stream) close() { s.closing.Do(s.end) }

func (s *stream) end() {
	s.cancel()
	go func() {
		for range s.messages {
		}
	}()
	<-s.done
	close(s.messages)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.code != 0 {
		s.r.check(s.req, nil, answer{s.code, s.header, s.raw.String()}, false)
		s.code = 0
	}
}

// A promise made over the API is watched through its life to kept, on the stream a client
// resumes with Last-Event-ID; numbers are masked unless the token has pii.
func TestV1EventsFollowAPromiseToKeptAndResume(t *testing.T) {
	r := newRig(t)
	const customer = "+31201234509"
	r.pbx.SetEndpoint("PJSIP/"+customer+"@provider", aritest.Behavior{Answer: true, AnswerAfter: time.Second, HangupAfter: 2 * time.Second})
	s := r.openStream(nil, "", reader, "")
	if ct := s.header.Get("Content-Type"); s.code != 200 || ct != "text/event-stream" {
		t.Fatalf("GET /events = %d %s", s.code, ct)
	}
	m := r.make(t, map[string]any{"number": customer, "queue": "reception"})
	ofIt := func(types ...string) func(sseMessage) bool {
		return func(e sseMessage) bool {
			for _, ty := range types {
				if e.Data.Promise == m.Promise.ID && e.Event == ty && e.Data.Type == ty {
					return true
				}
			}
			return false
		}
	}
	made := s.next(ofIt("made"))
	if made.Data.Number != phone.Mask(customer) || made.ID == "" {
		t.Errorf("made = %+v, want the number masked and an id", made)
	}
	for _, ty := range []string{"claimed", "customer_dialled", "connected", "kept"} {
		s.next(ofIt(ty))
	}
	s.close()

	resumed := r.openStream(nil, "?types=kept,late", admin, made.ID)
	if kept := resumed.next(ofIt("kept", "late")); kept.Event != "kept" || kept.Data.Number != customer {
		t.Errorf("resumed after made: %+v, want kept with the number in full", kept)
	}
	for _, tc := range []struct {
		name, query, last string
		field             string
	}{
		{"a cursor that is none", "", "nonsense", "Last-Event-ID"},
		{"a queue that is none", "", "sales=1-0", "Last-Event-ID"},
		{"a type that is none", "?types=won", "", "types"},
	} {
		h := http.Header{}
		if tc.last != "" {
			h.Set("Last-Event-ID", tc.last)
		}
		a := r.call("GET", "/events"+tc.query, reader, nil, h)
		if a.Code != 400 || len(a.problem(t).fields()) != 1 || a.problem(t).fields()[0] != tc.field {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, a.Code, a.Body, tc.field)
		}
	}
}

// An idle stream says it is alive, so a proxy does not drop it.
func TestV1EventsHeartbeat(t *testing.T) {
	r := newRig(t)
	srv := httptest.NewServer(api.New(api.Options{Events: r.d.Store(), Heartbeat: 20 * time.Millisecond,
		Tokens: []api.Token{{Name: "reader", Secret: reader, Roles: []config.Role{config.RoleRead}}}}))
	t.Cleanup(srv.Close)
	s := r.openStream(srv, "", reader, "")
	s.next(func(m sseMessage) bool { return m.Comment == "heartbeat" })
	s.next(func(m sseMessage) bool { return m.Comment == "heartbeat" })
}
