package queue

import (
	"errors"
	"testing"
	"time"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

func TestPresenceIsSharedAndSurvivesANewStore(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	clk := clock.NewFake(t0)
	ctx := t.Context()
	a := NewPresences(srv.Client(), "cb", clk)
	changes := a.Changes(ctx)
	steps := []struct {
		agent string
		state PresenceState
		prev  PresenceState
	}{
		{"anna", PresenceLoggedOut, ""},
		{"anna", PresenceLoggedIn, PresenceLoggedOut},
		{"bob", PresencePaused, ""},
	}
	// The subscription is made asynchronously: wait until Redis has it.
	for n := int64(0); n == 0; {
		m, err := srv.Client().PubSubNumSub(ctx, "cb:presence").Result()
		if err != nil {
			t.Fatal(err)
		}
		n = m["cb:presence"]
	}
	for _, s := range steps {
		clk.Advance(time.Minute)
		prev, err := a.Set(ctx, s.agent, s.state, "api")
		if err != nil {
			t.Fatal(err)
		}
		if prev != s.prev {
			t.Errorf("%s → %s: previous %q, want %q", s.agent, s.state, prev, s.prev)
		}
		select {
		case id := <-changes:
			if id != s.agent {
				t.Errorf("change published for %q, want %q", id, s.agent)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no change published for %s", s.agent)
		}
	}
	// Another daemon (another Presences on the same Redis) reads the same.
	got, err := NewPresences(srv.Client(), "cb", clk).Get(ctx, []string{"anna", "bob", "ria"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Presence{
		"anna": {State: PresenceLoggedIn, Since: t0.Add(2 * time.Minute), By: "api"},
		"bob":  {State: PresencePaused, Since: t0.Add(3 * time.Minute), By: "api"},
	}
	if len(got) != len(want) || got["anna"] != want["anna"] || got["bob"] != want["bob"] {
		t.Errorf("Get = %+v, want %+v (ria has none)", got, want)
	}
}

func TestPresenceRefusesBadInputAndChangesNothing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	p := NewPresences(srv.Client(), "cb", clock.NewFake(t0))
	for name, call := range map[string]func() error{
		"unknown state": func() error { _, err := p.Set(ctx, "anna", "asleep", "api"); return err },
		"empty agent":   func() error { _, err := p.Set(ctx, "", PresenceLoggedIn, "api"); return err },
		"agent w space": func() error { _, err := p.Set(ctx, "an na", PresenceLoggedIn, "api"); return err },
		"bad prefix": func() error {
			_, err := NewPresences(srv.Client(), "a b", nil).Set(ctx, "anna", PresenceLoggedIn, "")
			return err
		},
	} {
		if err := call(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if n, err := srv.Client().DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("Redis holds %d keys after refused calls (%v)", n, err)
	}
}
