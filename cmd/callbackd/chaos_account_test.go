package main

// The chaos suite's account: what the faults cost, counted from the fake PBX's record of
// every channel and bridge it had and from Redis (chaos_helpers_test.go runs the schedule).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/queue"
)

// chaosReport is the account of one run. Every field under "must be 0" fails the run.
type chaosReport struct {
	Seed   uint64
	Calls  int
	Faults map[faultKind]int

	Expected  int // calls that owed a promise while a daemon watched them from start to end
	Unwatched int // calls that owed one but no daemon lived through them (cannot be seen)
	Made      int // promises in Redis
	Outcomes  map[queue.State]int
	// NotReached: customers who would have answered but whose promise ended unreachable.
	NotReached int
	// GapVoicemails: greeting hang-ups promised all the same because their end fell in an
	// ARI gap or a restart (detect.VoicemailGapNote): by design, not invented.
	GapVoicemails int

	// must be 0
	Lost, Invented, Stuck                               int
	DialledConcurrently, DialledAfterTalk, BeyondMax    int
	AgentsRungConcurrently, StuckAgents                 int
	ChannelsLeft, BridgesLeft, ReservationsLeft, Leases int
	// SlowRecoveries: promises of a killed daemon taken back later than lease + 1 s although
	// another daemon ran and Redis answered all that time.
	SlowRecoveries int

	TakenBack, RungAgain []time.Duration
	// TakenBackServed: of TakenBack, the kills after which a daemon ran and Redis answered
	// until lease + 1 s (the others wait for a daemon or for Redis, not for the lease).
	TakenBackServed   []time.Duration
	Details, Problems []string
}

// mustBeZero names the counts that fail a run, in the table's order.
func (rep chaosReport) mustBeZero() []struct {
	name string
	n    int
} {
	return []struct {
		name string
		n    int
	}{
		{"promises lost", rep.Lost}, {"promises without a missed call", rep.Invented}, {"promises stuck open", rep.Stuck},
		{"customers dialled twice at once", rep.DialledConcurrently}, {"customers dialled after a conversation", rep.DialledAfterTalk},
		{"customer legs beyond max_attempts", rep.BeyondMax}, {"agents rung twice at once", rep.AgentsRungConcurrently},
		{"agents stuck (not free at rest)", rep.StuckAgents}, {"channels left on the PBX", rep.ChannelsLeft},
		{"bridges left on the PBX", rep.BridgesLeft}, {"agent reservations left", rep.ReservationsLeft}, {"leases left", rep.Leases},
		{"promises taken back later than lease + 1 s", rep.SlowRecoveries},
	}
}

func (rep chaosReport) failures() []string {
	var out []string
	for _, f := range rep.mustBeZero() {
		if f.n > 0 {
			out = append(out, fmt.Sprintf("%s: %d", f.name, f.n))
		}
	}
	return append(out, rep.Problems...)
}

// table is the report as printed.
func (rep chaosReport) table() string {
	var b strings.Builder
	row := func(name string, v any) { fmt.Fprintf(&b, "  %-46s %v\n", name, v) }
	fmt.Fprintf(&b, "chaos seed %d: %d calls; faults:", rep.Seed, rep.Calls)
	for _, k := range faultOrder {
		if rep.Faults[k] > 0 {
			fmt.Fprintf(&b, " %s ×%d,", k, rep.Faults[k])
		}
	}
	b.WriteString("\n")
	row("promises expected (watched calls)", rep.Expected)
	row("calls no daemon lived through (not counted)", rep.Unwatched)
	row("promises made", rep.Made)
	row("  kept / late / unreachable", fmt.Sprintf("%d / %d / %d", rep.Outcomes[queue.StateKept], rep.Outcomes[queue.StateLate], rep.Outcomes[queue.StateUnreachable]))
	row("  answering customers ended unreachable", rep.NotReached)
	row("greeting hang-ups promised after a gap", rep.GapVoicemails)
	for _, f := range rep.mustBeZero() {
		row(f.name, f.n)
	}
	row("kill -9 → promise taken back (median/max)", medianMax(rep.TakenBack))
	row("  … with a daemon up and Redis answering", medianMax(rep.TakenBackServed))
	row("kill -9 → customer rung again (median/max)", medianMax(rep.RungAgain))
	return b.String()
}

func medianMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("%.1f s / %.1f s (n=%d)", s[len(s)/2].Seconds(), s[len(s)-1].Seconds(), len(s))
}

// account counts what happened, once the run has come to rest at end.
func (r *chaosRun) account(calls []*chaosCall, end time.Time) chaosReport {
	t := r.t
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := chaosReport{Seed: r.plan.Seed, Calls: len(calls), Faults: r.faultsDone, Outcomes: map[queue.State]int{},
		Problems: append([]string(nil), r.problems...)}

	history := r.pbx.ChannelHistory()
	legs := map[string][]aritest.ChannelRecord{}
	byID := map[string]aritest.ChannelRecord{}
	for _, c := range history {
		legs[c.Endpoint] = append(legs[c.Endpoint], c)
		byID[c.ID] = c
	}
	jobs, err := r.rds.store.List(context.Background(), e2eQueue, queue.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatalf("listing promises: %v", err)
	}
	byNumber := map[string][]queue.Job{}
	for _, j := range jobs {
		byNumber[j.Number] = append(byNumber[j.Number], j)
	}
	rep.Made = len(jobs)

	for _, c := range calls {
		in := byID[c.inbound.Channel.ID]
		promised := byNumber[c.Number]
		switch {
		case !c.Kind.promises() && c.Kind == callGreetingHangup && len(promised) > 0 && gapVoicemails(promised):
			rep.GapVoicemails++
		case !c.Kind.promises():
			if len(promised) > 0 {
				rep.Invented++
				rep.Details = append(rep.Details, fmt.Sprintf("%s (%s): promise %s without a missed call", c.Number, c.Kind, promised[0].ID))
			}
		case !r.watchedLocked(in.Created, in.Destroyed):
			rep.Unwatched++
		default:
			rep.Expected++
			if len(promised) == 0 {
				rep.Lost++
				rep.Details = append(rep.Details, fmt.Sprintf("%s (%s, call %s–%s): no promise", c.Number, c.Kind,
					r.offset(in.Created), r.offset(in.Destroyed)))
			}
		}
		for _, j := range promised {
			if j.State.Open() {
				rep.Stuck++
				rep.Details = append(rep.Details, fmt.Sprintf("%s: %s still open", c.Number, describeJob(j)))
				continue
			}
			rep.Outcomes[j.State]++
			if c.Answer == answersCallback && j.State == queue.StateUnreachable {
				rep.NotReached++
				rep.Details = append(rep.Details, fmt.Sprintf("%s answers, but %s", c.Number, describeJob(j)))
			}
		}
		customer := legs[customerPhone(c.Number)]
		if n := overlaps(customer, end); n > 0 {
			rep.DialledConcurrently += n
			rep.Details = append(rep.Details, fmt.Sprintf("%s dialled while a leg to them was alive (%d)", c.Number, n))
		}
		for i, leg := range customer {
			for _, earlier := range customer[:i] {
				if !earlier.Answered.IsZero() && leg.Created.After(earlier.Answered) {
					rep.DialledAfterTalk++
					rep.Details = append(rep.Details, fmt.Sprintf("%s dialled at %s after answering at %s", c.Number, r.offset(leg.Created), r.offset(earlier.Answered)))
					break
				}
			}
		}
		if extra := len(customer) - r.plan.MaxAttempts; extra > 0 {
			rep.BeyondMax += extra
			rep.Details = append(rep.Details, fmt.Sprintf("%s dialled %d times (max_attempts %d)", c.Number, len(customer), r.plan.MaxAttempts))
		}
	}
	for i := 0; i < r.plan.Agents; i++ {
		ep := fmt.Sprintf("PJSIP/%d", 1001+i)
		if n := overlaps(legs[ep], end); n > 0 {
			rep.AgentsRungConcurrently += n
			rep.Details = append(rep.Details, fmt.Sprintf("agent %s rung while already on a callback leg (%d)", ep, n))
		}
	}
	for _, ch := range r.pbx.Channels() {
		rep.ChannelsLeft++
		rep.Details = append(rep.Details, fmt.Sprintf("channel left: %s %s in %s(%s)", ch.ID, ch.Name, ch.Dialplan.AppName, ch.Dialplan.AppData))
	}
	for _, b := range r.pbx.Bridges() {
		rep.BridgesLeft++
		rep.Details = append(rep.Details, fmt.Sprintf("bridge left: %s %q with %d channels", b.ID, b.Name, len(b.Channels)))
	}
	rep.ReservationsLeft = len(r.rds.reservations(t))
	leases, err := r.rds.rdb.ZCard(context.Background(), "callbackd:{"+e2eQueue+"}:leases").Result()
	if err != nil {
		t.Fatalf("reading leases: %v", err)
	}
	rep.Leases = int(leases)
	for _, d := range r.daemons[:2] {
		if d == nil {
			continue
		}
		status, body := httpGet(d.http, "/metrics")
		free, ok := findSample(body, "callbackd_agents", map[string]string{"state": "free"})
		if status != 200 || !ok {
			rep.Problems = append(rep.Problems, fmt.Sprintf("daemon %d: no callbackd_agents{state=free} in /metrics (%d)", d.slot, status))
			continue
		}
		// An agent in cooldown or wrap-up is held for a bounded time, shared by the daemons and
		// kept across restarts (a kill -9 mid-ring costs the agent a cooldown): resting, not
		// stuck. Stuck is an agent left calling or busy with nothing on the PBX.
		held := 0.0
		for _, st := range []string{"cooldown", "wrap_up"} {
			if n, ok := findSample(body, "callbackd_agents", map[string]string{"state": st}); ok {
				held += n
			}
		}
		if stuck := r.plan.Agents - int(free+held); stuck > rep.StuckAgents {
			rep.StuckAgents = stuck
		}
		if r.plan.Agents > int(free+held) {
			rep.Details = append(rep.Details, r.unrestedAgents(d)...)
		}
	}

	killedHolding := func(id string) (killRecord, bool) {
		for _, k := range r.kills {
			for _, held := range k.held {
				if held == id {
					return k, true
				}
			}
		}
		return killRecord{}, false
	}
	for _, j := range jobs {
		if k, ok := killedHolding(j.ID); ok {
			for _, h := range j.History {
				if h.At.After(k.at) && (strings.Contains(h.Result, "lease expired") || strings.Contains(h.Detail, "lease expired")) {
					took := h.At.Sub(k.at)
					rep.TakenBack = append(rep.TakenBack, took)
					bound := r.lease + time.Second
					served := r.recoverableLocked(k.at, k.at.Add(bound))
					if served {
						rep.TakenBackServed = append(rep.TakenBackServed, took)
					}
					if took > bound && served {
						rep.SlowRecoveries++
						rep.Details = append(rep.Details, fmt.Sprintf("promise %s of the daemon killed at %s taken back after %.1f s (lease %s + 1 s)",
							j.ID, r.offset(k.at), took.Seconds(), r.lease))
					}
					break
				}
			}
			for _, leg := range legs[customerPhone(j.Number)] {
				if leg.Created.After(k.at) {
					rep.RungAgain = append(rep.RungAgain, leg.Created.Sub(k.at))
					break
				}
			}
		}
	}
	return rep
}

// watchedLocked reports whether one daemon process lived through a call from its start until it
// ended and Redis could take the promise (plus a moment to write it).
func (r *chaosRun) watchedLocked(from, to time.Time) bool {
	if to.IsZero() {
		return false
	}
	for _, d := range r.redisDown {
		if !to.Before(d.from) && !to.After(d.to) {
			to = d.to
		}
	}
	to = to.Add(2 * time.Second)
	for _, l := range r.lives {
		if l.slot < 2 && !l.ready.After(from) && (l.ended.IsZero() || l.ended.After(to)) {
			return true
		}
	}
	return false
}

// recoverableLocked reports whether a daemon could take promises back all through [from, to]:
// one ran from before until after it, and Redis answered.
func (r *chaosRun) recoverableLocked(from, to time.Time) bool {
	for _, d := range r.redisDown {
		if d.from.Before(to) && d.to.After(from) {
			return false
		}
	}
	for _, l := range r.lives {
		if !l.ready.After(from) && (l.ended.IsZero() || l.ended.After(to)) {
			return true
		}
	}
	return false
}

func (r *chaosRun) offset(at time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.1fs", at.Sub(r.start).Seconds())
}

// overlaps counts the legs created while an earlier leg of the same endpoint was still up
// (a leg never destroyed lives until end).
func overlaps(legs []aritest.ChannelRecord, end time.Time) int {
	n := 0
	for i, leg := range legs {
		for _, earlier := range legs[:i] {
			gone := earlier.Destroyed
			if gone.IsZero() {
				gone = end
			}
			if leg.Created.Before(gone) {
				n++
				break
			}
		}
	}
	return n
}

// checkChaos runs plan and fails on anything the account says must be 0; it logs the table.
func checkChaos(t *testing.T, plan chaosPlan) chaosReport {
	t.Helper()
	r := newChaosRun(t, plan)
	rep := r.run()
	t.Logf("\n%s", rep.table())
	_ = os.WriteFile(filepath.Join(r.dir, "report.txt"), []byte(rep.table()+strings.Join(rep.Details, "\n")+"\n"), 0o600)
	if fails := rep.failures(); len(fails) > 0 {
		for _, d := range rep.Details {
			t.Log(d)
		}
		t.Errorf("seed %d: %s", plan.Seed, strings.Join(fails, "; "))
	}
	return rep
}

// gapVoicemails reports promises all made from a voicemail whose end the detector did not see.
func gapVoicemails(jobs []queue.Job) bool {
	for _, j := range jobs {
		if j.Reason() != queue.ReasonVoicemail || j.Note != detect.VoicemailGapNote {
			return false
		}
	}
	return true
}

// unrestedAgents describes the agents a daemon holds neither free nor resting, beside what the
// PBX says of their devices, so that a stuck agent's report says where its state went wrong.
func (r *chaosRun) unrestedAgents(d *chaosDaemon) []string {
	status, body := httpGet(d.http, "/agents")
	if status != 200 {
		return []string{fmt.Sprintf("daemon %d: GET /agents answered %d: %s", d.slot, status, body)}
	}
	var agents []struct {
		ID, State, Endpoint string
		EndpointState       string `json:"endpoint_state"`
		DeviceState         string `json:"device_state"`
	}
	if err := json.Unmarshal([]byte(body), &agents); err != nil {
		return []string{fmt.Sprintf("daemon %d: GET /agents: %v", d.slot, err)}
	}
	var out []string
	for _, a := range agents {
		switch a.State {
		case "free", "cooldown", "wrap_up":
			continue
		}
		out = append(out, fmt.Sprintf("daemon %d: agent %s %s (endpoint %q, device %q; the PBX says device %q)",
			d.slot, a.ID, a.State, a.EndpointState, a.DeviceState, r.pbx.DeviceState(a.Endpoint)))
	}
	return out
}
