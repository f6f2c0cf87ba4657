package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callbackd/callbackd/api/apiclient"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
)

// runPromise makes, lists, shows, cancels and reschedules promises through the running
// daemon's admin API: the daemon quotes the deadline and screens the number as it does for a
// CRM, which a command reading Redis alone could not (it does not know who is busy now).
func runPromise(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runPromiseWithEnv(ctx, args, os.Environ(), clock.Real{}, stdout, stderr)
}

// promiseVerbs says which verbs take a promise id.
var promiseVerbs = map[string]bool{"create": false, "list": false, "show": true, "cancel": true, "reschedule": true}

func runPromiseWithEnv(ctx context.Context, args, environ []string, clk clock.Clock, stdout, stderr io.Writer) int {
	usage := func(fs *flag.FlagSet) {
		fmt.Fprintln(stderr, "usage: callbackd promise create -c FILE --number N [--queue Q] [--name S] [--deadline T] [--not-before T] [--note S] [--external-ref S] [--force] [--idempotency-key K] [--json]")
		fmt.Fprintln(stderr, "       callbackd promise list -c FILE [--queue Q] [--state S] [--number N] [--limit N] [--cursor C] [--json]")
		fmt.Fprintln(stderr, "       callbackd promise show|cancel -c FILE [--detail S] [--json] ID")
		fmt.Fprintln(stderr, "       callbackd promise reschedule -c FILE [--deadline T] [--not-before T] [--force] [--detail S] [--json] ID")
		fmt.Fprintln(stderr, "Calls the running daemon's API at http.listen (or --url) with the token in --token-file, else http.token (CALLBACKD_HTTP_TOKEN).")
		fmt.Fprintln(stderr, "T is RFC 3339 (2026-12-02T15:00:00+01:00) or from now (+2h, +90m). Without --deadline: the daemon's honest quote.")
		if fs != nil {
			fs.PrintDefaults()
		}
	}
	fs := flag.NewFlagSet("promise", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := configFlag(fs, "", "configuration `file` (http.listen, http.token)")
	asJSON := fs.Bool("json", false, "print the API's answer as JSON")
	base := fs.String("url", "", "the daemon's address (default: from http.listen)")
	tokenFile := fs.String("token-file", "", "read the bearer token from `file` (one of http.tokens; default: http.token)")
	number := fs.String("number", "", "create: the customer's number (national numbers in detector.default_country); list: only this number's")
	queueName := fs.String("queue", "", "the callback queue (create: default by detector.routes)")
	name := fs.String("name", "", "create: the customer's name, for the agent")
	deadline := fs.String("deadline", "", "create, reschedule: call back by `T`; refused when earlier than the quote, unless --force")
	notBefore := fs.String("not-before", "", "create, reschedule: not before `T`")
	note := fs.String("note", "", "create: a note for the agent")
	extRef := fs.String("external-ref", "", "create: your reference (CRM ticket)")
	force := fs.Bool("force", false, "create, reschedule: promise the deadline even if the quote says it will be missed")
	key := fs.String("idempotency-key", "", "create: the same key again answers the same promise")
	detail := fs.String("detail", "", "cancel, reschedule: why, kept in the promise's history")
	state := fs.String("state", "", "list: only promises in this state")
	limit := fs.Int("limit", 0, "list: at most this many (default: the API's)")
	cursor := fs.String("cursor", "", "list: go on from a previous list's next cursor")
	fs.Usage = func() { usage(fs) }
	verb, code, done := parseVerb(fs, args, []string{"create", "list", "show", "cancel", "reschedule"}, stderr)
	if done {
		return code
	}
	takesID := promiseVerbs[verb]
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "callbackd promise %s: %s\n", verb, fmt.Sprintf(format, a...))
		return code
	}
	switch {
	case *configPath == "" && *base == "":
		return fail(2, "-c FILE (or --url) is required")
	case takesID && fs.NArg() != 1:
		return fail(2, "one promise ID is required")
	case !takesID && fs.NArg() != 0:
		return fail(2, "takes no arguments, only flags (got %q)", strings.Join(fs.Args(), " "))
	case verb == "create" && *number == "":
		return fail(2, "--number is required")
	}
	c := apiclient.Client{Base: *base, Token: envValue(environ, "CALLBACKD_HTTP_TOKEN")}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fail(1, "reading the token: %v", err)
		}
		c.Token = strings.TrimSpace(string(b))
	}
	if *configPath != "" {
		cfg, err := config.LoadEnvironFor(config.UseOffline, *configPath, environ)
		if err != nil {
			return fail(1, "loading %s: %v", *configPath, err)
		}
		if c.Base == "" {
			if c.Base, err = apiclient.BaseFor(cfg.HTTP.Listen); err != nil {
				return fail(1, "%v", err)
			}
		}
		if *tokenFile == "" {
			c.Token = cfg.HTTP.Token.Reveal()
		}
		if *number != "" {
			// Typed as the caller said it: read in the configured country, as the detector does.
			n, err := customerNumber(*number, cfg.Detector.DefaultCountry)
			if err != nil {
				return fail(2, "--number: %v", err)
			}
			*number = n
		}
	}
	now := clk.Now()
	window := map[string]string{}
	for flagName, v := range map[string]string{"deadline": *deadline, "not_before": *notBefore} {
		if v == "" {
			continue
		}
		t, err := parseWhen(v, now)
		if err != nil {
			return fail(2, "--%s: %v", strings.ReplaceAll(flagName, "_", "-"), err)
		}
		window[flagName] = t.Format(time.RFC3339)
	}
	var (
		method, path = http.MethodGet, ""
		query        = url.Values{}
		header       = http.Header{}
		body         map[string]any
	)
	switch verb {
	case "create":
		method, path = http.MethodPost, "/promises"
		body = map[string]any{"number": *number}
		for k, v := range map[string]string{"queue": *queueName, "name": *name, "note": *note, "external_ref": *extRef} {
			if v != "" {
				body[k] = v
			}
		}
		if len(window) > 0 {
			body["window"] = window
		}
		if *force {
			body["force"] = true
		}
		if *key != "" {
			header.Set("Idempotency-Key", *key)
		}
	case "list":
		path = "/promises"
		for k, v := range map[string]string{"queue": *queueName, "state": *state, "number": *number, "cursor": *cursor} {
			if v != "" {
				query.Set(k, v)
			}
		}
		if *limit != 0 {
			query.Set("limit", strconv.Itoa(*limit))
		}
	case "show":
		path = "/promises/" + url.PathEscape(fs.Arg(0))
	case "cancel":
		method, path = http.MethodPost, "/promises/"+url.PathEscape(fs.Arg(0))+"/cancel"
		body = map[string]any{}
		if *detail != "" {
			body["detail"] = *detail
		}
	case "reschedule":
		method, path = http.MethodPost, "/promises/"+url.PathEscape(fs.Arg(0))+"/reschedule"
		body = map[string]any{"window": window}
		if *force {
			body["force"] = true
		}
		if *detail != "" {
			body["detail"] = *detail
		}
	}
	var send any
	if body != nil {
		send = body
	}
	status, out, err := c.Do(ctx, method, path, query, header, send)
	if err != nil {
		if *asJSON && apiclient.IsProblem(err) {
			stdout.Write(out)
		}
		return fail(1, "%v", err)
	}
	if *asJSON {
		stdout.Write(out)
		return 0
	}
	return printPromiseAnswer(verb, status, out, stdout, stderr)
}

// promiseLine is what the human output reads of a promise.
type promiseLine struct {
	ID         string    `json:"id"`
	Queue      string    `json:"queue"`
	Number     string    `json:"number"`
	State      string    `json:"state"`
	Deadline   time.Time `json:"deadline"`
	Attempts   int       `json:"attempts"`
	Max        int       `json:"max_attempts"`
	Agent      string    `json:"agent"`
	Prediction *struct {
		SlackSeconds *float64 `json:"slack_seconds"`
		AtRisk       bool     `json:"at_risk"`
	} `json:"prediction"`
	History []struct {
		At     time.Time `json:"at"`
		Result string    `json:"result"`
		Detail string    `json:"detail"`
	} `json:"history"`
}

func (p promiseLine) slack() string {
	if p.Prediction == nil {
		return "-"
	}
	s := "no agent in sight"
	if p.Prediction.SlackSeconds != nil {
		s = (time.Duration(*p.Prediction.SlackSeconds) * time.Second).String()
	}
	if p.Prediction.AtRisk {
		s += " (at risk)"
	}
	return s
}

func printPromiseAnswer(verb string, status int, out []byte, stdout, stderr io.Writer) int {
	bad := func(err error) int {
		fmt.Fprintf(stderr, "callbackd promise %s: unreadable answer (HTTP %d): %v\n", verb, status, err)
		return 1
	}
	switch verb {
	case "create", "reschedule":
		var a struct {
			Promise  promiseLine `json:"promise"`
			Merged   bool        `json:"merged"`
			Replayed bool        `json:"replayed"`
		}
		if err := json.Unmarshal(out, &a); err != nil {
			return bad(err)
		}
		how := map[string]string{"create": "made", "reschedule": "rescheduled"}[verb]
		switch {
		case a.Replayed:
			how = "already made (same idempotency key)"
		case a.Merged:
			how = "merged into the open promise"
		}
		p := a.Promise
		fmt.Fprintf(stdout, "promise %s in %s for %s: %s; deadline %s\n", p.ID, p.Queue, p.Number, how, p.Deadline.UTC().Format(time.RFC3339))
	case "list":
		var a struct {
			Promises   []promiseLine `json:"promises"`
			NextCursor string        `json:"next_cursor"`
		}
		if err := json.Unmarshal(out, &a); err != nil {
			return bad(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tQUEUE\tNUMBER\tSTATE\tDEADLINE\tATTEMPTS\tPREDICTED SLACK")
		for _, p := range a.Promises {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", p.ID, p.Queue, p.Number, p.State,
				p.Deadline.UTC().Format(time.RFC3339), p.Attempts, p.Max, p.slack())
		}
		_ = tw.Flush()
		if a.NextCursor != "" {
			fmt.Fprintf(stdout, "more: --cursor %s\n", a.NextCursor)
		}
	case "show", "cancel":
		var p promiseLine
		if err := json.Unmarshal(out, &p); err != nil {
			return bad(err)
		}
		fmt.Fprintf(stdout, "promise %s in %s for %s: %s; deadline %s; attempts %d of %d; predicted slack %s\n",
			p.ID, p.Queue, p.Number, p.State, p.Deadline.UTC().Format(time.RFC3339), p.Attempts, p.Max, p.slack())
		for _, h := range p.History {
			fmt.Fprintf(stdout, "  %s  %s  %s\n", h.At.UTC().Format(time.RFC3339), h.Result, h.Detail)
		}
	}
	return 0
}

// parseWhen reads a time as RFC 3339 or as a duration from now ("+2h").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil || d <= 0 {
			return time.Time{}, fmt.Errorf("%q is not a positive duration from now (+2h, +90m)", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-12-02T15:00:00+01:00) nor +DURATION", s)
	}
	return t, nil
}

// envValue is the value of name in environ ("" when unset).
func envValue(environ []string, name string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}
