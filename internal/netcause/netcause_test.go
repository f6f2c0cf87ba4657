package netcause

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

type unauthorized struct{}

func (unauthorized) Error() string      { return "401" }
func (unauthorized) Unauthorized() bool { return true }

// Each failure is named as an operator acts on it, through any number of wrappers; real
// failures come from real sockets on loopback.
func TestOfNamesTheCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, refused := net.Dial("tcp", addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()

	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nothing listens", refused, Refused},
		{"refused, wrapped", fmt.Errorf("ari: connecting events socket of x: %w", refused), Refused},
		{"a bounded call ran out of time", fmt.Errorf("reading stats: %w", ctx.Err()), Timeout},
		{"redis wrong password", errors.New("WRONGPASS invalid username-password pair or user is disabled."), AuthFailed},
		{"redis password missing", errors.New("NOAUTH Authentication required."), AuthFailed},
		{"an HTTP 401", fmt.Errorf("resync: %w", unauthorized{}), AuthFailed},
		{"a closed client", errors.New("redis: client is closed"), Closed},
		{"no such host", &net.DNSError{Err: "no such host", Name: "pbx.invalid", IsNotFound: true}, DNS},
		{"something else", errors.New("ERR unknown command"), Unknown},
		{"no error", nil, Unknown},
	}
	for _, tt := range tests {
		if got := Of(tt.err); got != tt.want {
			t.Errorf("%s: Of(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
	}
	if got, want := Describe(refused), "connection refused ("+refused.Error()+")"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}
