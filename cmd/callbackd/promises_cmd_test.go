package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
	"github.com/redis/go-redis/v9"
)

// promisesFixture is a config file pointing at a real redis-server holding two open promises
// and one finished one.
func promisesFixture(t *testing.T) (cfgFile string, environ []string, clk *clock.Fake) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	cfgFile = filepath.Join(t.TempDir(), "callbackd.yml")
	if err := os.WriteFile(cfgFile, []byte(demo.ConfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	environ = []string{"CALLBACKD_REDIS_ADDR=" + srv.Addr()}
	clk = clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	store, err := queue.New(srv.Client(), queue.Options{Clock: clk, Queues: []string{"reception", "support"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range []queue.Request{
		{Queue: "support", Number: "+31201234502", Reason: queue.ReasonVoicemail, Target: "1003", Deadline: clk.Now().Add(2 * time.Hour), MaxAttempts: 3},
		{Queue: "reception", Number: "+31201234505", Reason: queue.ReasonUnansweredTransfer, Target: "1004", Deadline: clk.Now().Add(time.Hour), MaxAttempts: 3},
		{Queue: "support", Number: "+31201234509", Reason: queue.ReasonVoicemail, Target: "1003", Deadline: clk.Now().Add(3 * time.Hour), MaxAttempts: 3},
	} {
		if _, _, err := store.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Resolve(ctx, "support", "+31201234509", "called in"); err != nil {
		t.Fatal(err)
	}
	return cfgFile, environ, clk
}

func TestPromisesListsOpenPromisesEarliestDeadlineFirstPerQueue(t *testing.T) {
	cfgFile, environ, clk := promisesFixture(t)
	cases := []struct {
		name    string
		args    []string
		want    []string // words of the lines after the header, in order
		notWant []string
	}{
		{"open promises of every queue, masked", []string{}, []string{"reception +31*******05", "support +31*******02"}, []string{"+31201234502", "resolved"}},
		{"one queue", []string{"--queue", "support"}, []string{"+31*******02 voicemail"}, []string{"reception"}},
		{"finished ones on request", []string{"--state", "resolved"}, []string{"+31*******09 voicemail 1003 resolved"}, []string{"pending"}},
		{"numbers in full when asked", []string{"--queue", "support", "--unmask"}, []string{"+31201234502"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runPromisesWithEnv(context.Background(), append([]string{"-c", cfgFile}, tc.args...), environ, clk, &out, &errOut)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if !strings.HasPrefix(lines[0], "ID") || len(lines)-1 != len(tc.want) {
				t.Fatalf("got %d promise lines, want %d:\n%s", len(lines)-1, len(tc.want), out.String())
			}
			for i, w := range tc.want {
				// Columns are padded for the eye; compare words.
				if !strings.Contains(strings.Join(strings.Fields(lines[i+1]), " "), w) {
					t.Errorf("line %d %q lacks %q", i+1, lines[i+1], w)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(out.String(), nw) {
					t.Errorf("output shows %q:\n%s", nw, out.String())
				}
			}
		})
	}
}

func TestPromisesAsJSON(t *testing.T) {
	cfgFile, environ, clk := promisesFixture(t)
	var out, errOut bytes.Buffer
	if code := runPromisesWithEnv(context.Background(), []string{"-c", cfgFile, "--json", "--queue", "reception"}, environ, clk, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	if got["number"] != "+31*******05" || got["state"] != "pending" || got["queue"] != "reception" {
		t.Errorf("JSON promise %v", got)
	}
}

func TestPromisesRefusesBadInput(t *testing.T) {
	cfgFile, environ, clk := promisesFixture(t)
	redisDown := []string{"CALLBACKD_REDIS_ADDR=127.0.0.1:1"} // nothing listens there
	cases := []struct {
		args []string
		env  []string // nil: the fixture's Redis
		code int
		msg  string
	}{
		{[]string{"-c", cfgFile, "--state", "waiting"}, nil, 2, `unknown state "waiting"`},
		{[]string{"-c", cfgFile, "--limit", "0"}, nil, 2, "--limit must be 1…1000"},
		{[]string{"-c", cfgFile, "--queue", "sales"}, nil, 1, `no queue named "sales"`},
		{[]string{}, nil, 2, "-c FILE is required"},
		{[]string{"-c", cfgFile, "--queue", "support"}, redisDown, 1, "listing jobs of queue support"},
	}
	for _, tc := range cases {
		env := environ
		if tc.env != nil {
			env = tc.env
		}
		var out, errOut bytes.Buffer
		code := runPromisesWithEnv(context.Background(), tc.args, env, clk, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.msg) || out.Len() != 0 {
			t.Errorf("promises %v: exit %d, stderr %q; want exit %d mentioning %q, nothing on stdout", tc.args, code, errOut.String(), tc.code, tc.msg)
		}
	}
}

// A promise whose record cannot be read is left out of the list, named on stderr, and the
// exit code says so; the other promises are listed all the same.
func TestPromisesListsTheRestPastABrokenRecord(t *testing.T) {
	cfgFile, environ, clk := promisesFixture(t)
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(environ[0], "CALLBACKD_REDIS_ADDR=")})
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "callbackd:{support}:job:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var broken string
	for _, k := range keys {
		if rdb.HGet(ctx, k, "number").Val() == "+31201234502" {
			broken = strings.TrimPrefix(k, "callbackd:{support}:job:")
			rdb.HSet(ctx, k, "reasons", "[voicemail")
		}
	}
	if broken == "" {
		t.Fatal("the fixture's support promise is not in Redis")
	}
	var out, errOut bytes.Buffer
	code := runPromisesWithEnv(ctx, []string{"-c", cfgFile}, environ, clk, &out, &errOut)
	if code != 1 {
		t.Errorf("exit %d; want 1, for the promise left out", code)
	}
	if !strings.Contains(out.String(), "+31*******05") || strings.Contains(out.String(), broken) {
		t.Errorf("the list does not show the readable promise alone:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), broken) || strings.Contains(errOut.String(), "+31201234502") {
		t.Errorf("stderr does not name the promise left out (with no number in full): %s", errOut.String())
	}
}
