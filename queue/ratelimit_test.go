package queue

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/internal/redistest"
)

func TestRateLimitsCountEveryLimitOrNone(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	// Two daemons on one Redis share the counters.
	d1, d2 := NewRateLimits(rdb, "test"), NewRateLimits(rdb, "test")
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	number := func(n string) []Limit {
		return []Limit{
			{Name: "promises_per_number", Subject: n, Max: 2, Window: 24 * time.Hour},
			{Name: "promises_per_block", Subject: n[:9], Max: 3, Window: time.Hour},
		}
	}
	steps := []struct {
		name      string
		rl        *RateLimits
		at        time.Time
		number    string
		wantLimit string // "" when allowed
	}{
		{"first promise for a number", d1, t0, "+31201234501", ""},
		{"second, by the other daemon", d2, t0.Add(time.Minute), "+31201234501", ""},
		{"third for the number: the daily limit", d1, t0.Add(2 * time.Minute), "+31201234501", "promises_per_number"},
		{"another number of the block (its third event: the refused one was not counted)", d1, t0.Add(3 * time.Minute), "+31201234502", ""},
		{"a fourth from the block: the hourly block limit", d2, t0.Add(4 * time.Minute), "+31201234503", "promises_per_block"},
		{"a number of another block", d2, t0.Add(5 * time.Minute), "+31611111111", ""},
		{"the next hour opens the block again", d1, t0.Add(time.Hour), "+31201234503", ""},
		{"but not the number's day", d1, t0.Add(2 * time.Hour), "+31201234501", "promises_per_number"},
		{"the next day opens the number again", d1, t0.Add(24 * time.Hour), "+31201234501", ""},
	}
	for _, s := range steps {
		err := s.rl.Take(ctx, s.at, number(s.number)...)
		var rle *RateLimitedError
		switch {
		case s.wantLimit == "" && err != nil:
			t.Fatalf("%s: %v; want allowed", s.name, err)
		case s.wantLimit != "" && (!errors.As(err, &rle) || rle.Limit.Name != s.wantLimit || !errors.Is(err, ErrRateLimited)):
			t.Fatalf("%s: %v; want refused by %s", s.name, err, s.wantLimit)
		case s.wantLimit != "" && strings.Contains(err.Error(), s.number):
			t.Fatalf("%s: error %q carries the unmasked number", s.name, err)
		}
	}
	// Every counter expires with its window, so nothing about a number outlives a day.
	keys, err := rdb.Keys(ctx, "test:{ratelimit}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	for _, k := range keys {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > 24*time.Hour {
			t.Errorf("%s has TTL %v; want one no longer than its window", k, ttl)
		}
	}
}

func TestRateLimitsRefuseBadLimitsAndIgnoreDisabledOnes(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	rl := NewRateLimits(rdb, "test")
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	if err := rl.Take(ctx, now, Limit{Name: "off", Subject: "all", Max: 0, Window: time.Hour}); err != nil {
		t.Errorf("a limit with Max 0 is off: %v", err)
	}
	if err := rl.Take(ctx, now, Limit{Name: "x", Subject: "all", Max: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a limit without a window: %v; want ErrInvalid", err)
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Errorf("%d keys written by refused or disabled limits", n)
	}
	if err := NewRateLimits(rdb, "bad{prefix}").Take(ctx, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad prefix: %v; want ErrInvalid", err)
	}
}

// One missed call is one event, however many daemons watch it: the second daemon to screen the
// same call hears the first one's verdict and counts nothing, so two daemons do not halve a
// limit. The record of the call names no number and lives as long as the longest window.
func TestRateLimitsCountOneEventOnceWhoeverSeesIt(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	d1, d2 := NewRateLimits(rdb, "test"), NewRateLimits(rdb, "test")
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	limit := []Limit{{Name: "promises_per_number", Subject: "+31201234501", Max: 2, Window: 24 * time.Hour}}
	steps := []struct {
		name      string
		rl        *RateLimits
		event     string
		wantLimit bool
	}{
		{"call A, first daemon", d1, "ast-1 1700000000.1", false},
		{"call A, second daemon: the same event", d2, "ast-1 1700000000.1", false},
		{"call B: the number's second promise", d2, "ast-1 1700000000.2", false},
		{"call C: the third, refused", d1, "ast-1 1700000000.3", true},
		{"call C, the other daemon: refused as well", d2, "ast-1 1700000000.3", true},
		{"call B again (a restart): still allowed, counts nothing", d1, "ast-1 1700000000.2", false},
	}
	for _, s := range steps {
		err := s.rl.TakeOnce(ctx, t0, s.event, limit...)
		if got := errors.Is(err, ErrRateLimited); got != s.wantLimit || (err != nil && !got) {
			t.Fatalf("%s: %v; want refused=%v", s.name, err, s.wantLimit)
		}
	}
	counter := "test:{ratelimit}:promises_per_number:+31201234501:" + strconv.FormatInt(t0.UnixMilli()/(24*time.Hour).Milliseconds(), 10)
	if n, _ := rdb.Get(ctx, counter).Int(); n != 2 {
		t.Errorf("counted %d events; want 2 (calls A and B, each once)", n)
	}
	keys, _ := rdb.Keys(ctx, "test:{ratelimit}:once:*").Result()
	for _, k := range keys {
		if strings.Contains(k, "1234501") {
			t.Errorf("the record of an event %q names the number", k)
		}
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > 24*time.Hour {
			t.Errorf("%s has TTL %v; want the longest window", k, ttl)
		}
	}
	if len(keys) != 3 {
		t.Errorf("records of events %v; want one per call", keys)
	}
}
