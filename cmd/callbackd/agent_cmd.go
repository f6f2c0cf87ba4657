package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// agentVerbs maps the agent subcommand's verbs to the presence they record; list only reads.
var agentVerbs = map[string]queue.PresenceState{
	"login":  queue.PresenceLoggedIn,
	"logout": queue.PresenceLoggedOut,
	"pause":  queue.PresencePaused,
	"resume": queue.PresenceLoggedIn,
}

// runAgent sets or shows agents' presence. Presence lives in Redis, and every daemon follows
// its changes there, so this works the same with the daemon running or stopped, and on any
// host that reaches Redis.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runAgentWithEnv(ctx, args, os.Environ(), clock.Real{}, stdout, stderr)
}

func runAgentWithEnv(ctx context.Context, args, environ []string, clk clock.Clock, stdout, stderr io.Writer) int {
	usage := func(fs *flag.FlagSet) {
		fmt.Fprintln(stderr, "usage: callbackd agent login|logout|pause|resume -c FILE [--by NAME] [--json] AGENT")
		fmt.Fprintln(stderr, "       callbackd agent list -c FILE [--json]")
		fmt.Fprintln(stderr, "Presence is kept in Redis: every daemon rings only agents on shift and logged in (resume = log in).")
		if fs != nil {
			fs.PrintDefaults()
		}
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := configFlag(fs, "", "configuration `file` (Redis address, agents)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	by := fs.String("by", "", "who says so, kept with the presence (default: cli:<user>)")
	fs.Usage = func() { usage(fs) }
	verb, code, done := parseVerb(fs, args, []string{"login", "logout", "pause", "resume", "list"}, stderr)
	if done {
		return code
	}
	if *configPath == "" || (verb != "list" && fs.NArg() != 1) || (verb == "list" && fs.NArg() != 0) {
		fmt.Fprintf(stderr, "callbackd agent %s: -c FILE is required, and one AGENT id (none for list)\n", verb)
		usage(fs)
		return 2
	}
	cfg, err := config.LoadEnvironFor(config.UseOffline, *configPath, environ)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd agent %s: loading %s: %v\n", verb, *configPath, err)
		return 1
	}
	rdb, err := daemon.RedisClient(cfg.Redis)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd agent %s: %v\n", verb, err)
		return 1
	}
	defer rdb.Close()
	presences := queue.NewPresences(rdb, cfg.Redis.KeyPrefix, clk)
	if verb == "list" {
		return listAgents(ctx, cfg, presences, clk.Now(), *asJSON, stdout, stderr)
	}
	id := fs.Arg(0)
	if !knownAgent(cfg, id) {
		fmt.Fprintf(stderr, "callbackd agent %s: no agent %q in %s (agents: %s)\n", verb, id, *configPath, strings.Join(agentIDs(cfg), ", "))
		return 1
	}
	if *by == "" {
		*by = "cli"
		if u, err := user.Current(); err == nil {
			*by = "cli:" + u.Username
		}
	}
	state := agentVerbs[verb]
	prev, err := presences.Set(ctx, id, state, *by)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd agent %s: %v\n", verb, err)
		return 1
	}
	if prev == "" {
		prev = queue.PresenceLoggedIn // none recorded: logged in, as the pool reads it
	}
	if *asJSON {
		_ = json.NewEncoder(stdout).Encode(map[string]string{"agent": id, "presence": string(state), "was": string(prev), "by": *by})
		return 0
	}
	fmt.Fprintf(stdout, "agent %s: %s (was %s)\n", id, state, prev)
	return 0
}

func knownAgent(cfg *config.Config, id string) bool {
	for _, a := range cfg.Agents {
		if a.ID == id {
			return true
		}
	}
	return false
}

func agentIDs(cfg *config.Config) []string {
	ids := make([]string, len(cfg.Agents))
	for i, a := range cfg.Agents {
		ids[i] = a.ID
	}
	return ids
}

// agentRow is one agent as `agent list` shows it: the configuration's and Redis' view. What
// the phone does (ringing, busy) only a running daemon knows: GET /agents.
type agentRow struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Queues   []string  `json:"queues"`
	Presence string    `json:"presence"`
	Since    time.Time `json:"since,omitzero"`
	By       string    `json:"by,omitempty"`
}

func listAgents(ctx context.Context, cfg *config.Config, presences *queue.Presences, _ time.Time, asJSON bool, stdout, stderr io.Writer) int {
	got, err := presences.Get(ctx, agentIDs(cfg))
	if err != nil {
		fmt.Fprintf(stderr, "callbackd agent list: %v\n", err)
		return 1
	}
	rows := make([]agentRow, 0, len(cfg.Agents))
	for _, a := range cfg.Agents {
		r := agentRow{ID: a.ID, Name: a.Name, Queues: a.Queues, Presence: string(queue.PresenceLoggedIn)}
		if r.Queues == nil {
			r.Queues = []string{}
		}
		if p, ok := got[a.ID]; ok {
			r.Presence, r.Since, r.By = string(p.State), p.Since, p.By
		}
		rows = append(rows, r)
	}
	if asJSON {
		_ = json.NewEncoder(stdout).Encode(rows)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tNAME\tQUEUES\tPRESENCE\tSINCE\tBY")
	for _, r := range rows {
		qs := strings.Join(r.Queues, ",")
		if qs == "" {
			qs = "(all)"
		}
		since := "-"
		if !r.Since.IsZero() {
			since = r.Since.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, qs, r.Presence, since, r.By)
	}
	_ = tw.Flush()
	return 0
}
