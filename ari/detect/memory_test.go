package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/trace"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// readRecording is a recording's monitor events, in order.
func readRecording(t *testing.T, path string, mutate func(*ari.Event)) []*ari.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	apps, err := trace.ScanApps(bytes.NewReader(data))
	if err != nil || len(apps.Monitor) != 1 {
		t.Fatalf("%s: want one subscribeAll app, got %+v (err %v)", path, apps, err)
	}
	var events []*ari.Event
	if _, err := trace.Read(bytes.NewReader(data), apps.Monitor[0], func(ev *ari.Event) {
		if mutate != nil {
			mutate(ev)
		}
		events = append(events, ev)
	}); err != nil {
		t.Fatal(err)
	}
	return events
}

// pbxState is what Asterisk would list over REST after events: the channels not destroyed,
// as last shown, and the bridges with their members.
func pbxState(asteriskID string, events []*ari.Event, at time.Time) ari.Snapshot {
	chans := map[string]ari.Channel{}
	var order []string
	bridges := map[string][]string{}
	for _, ev := range events {
		for _, c := range []*ari.Channel{ev.Channel, ev.Peer, ev.Caller, ev.Transferee, ev.TransferTarget,
			ev.TransfererFirstLeg, ev.TransfererSecondLeg} {
			if c != nil && c.ID != "" {
				if _, seen := chans[c.ID]; !seen {
					order = append(order, c.ID)
				}
				chans[c.ID] = *c
			}
		}
		switch {
		case ev.Type == ari.EventChannelDestroyed && ev.Channel != nil:
			delete(chans, ev.Channel.ID)
			for b, m := range bridges {
				bridges[b] = slices.DeleteFunc(m, func(id string) bool { return id == ev.Channel.ID })
			}
		case ev.Type == ari.EventChannelEnteredBridge && ev.Bridge != nil && ev.Channel != nil:
			if !slices.Contains(bridges[ev.Bridge.ID], ev.Channel.ID) {
				bridges[ev.Bridge.ID] = append(bridges[ev.Bridge.ID], ev.Channel.ID)
			}
		case ev.Type == ari.EventChannelLeftBridge && ev.Bridge != nil && ev.Channel != nil:
			bridges[ev.Bridge.ID] = slices.DeleteFunc(bridges[ev.Bridge.ID], func(id string) bool { return id == ev.Channel.ID })
		case ev.Type == ari.EventBridgeDestroyed && ev.Bridge != nil:
			delete(bridges, ev.Bridge.ID)
		}
	}
	snap := ari.Snapshot{AsteriskID: asteriskID, At: at}
	for _, id := range order {
		if c, ok := chans[id]; ok {
			snap.Channels = append(snap.Channels, c)
		}
	}
	for id, m := range bridges {
		if len(m) > 0 {
			snap.Bridges = append(snap.Bridges, ari.Bridge{ID: id, Channels: m})
		}
	}
	return snap
}

// process is one daemon's detector, keeping its calls in Redis.
type process struct {
	det *Detector
	mem *queue.CallMemory
	clk *clock.Fake
}

func startProcess(t *testing.T, rdb redis.UniversalClient, rec *recorder, clk *clock.Fake) process {
	t.Helper()
	mem := queue.NewCallMemory(rdb, queue.CallMemoryOptions{Clock: clk})
	return process{det: New(Options{Sink: rec, Clock: clk, Memory: mem}), mem: mem, clk: clk}
}

func (p process) feed(events []*ari.Event) {
	for _, ev := range events {
		if tm, err := ev.Time(); err == nil {
			p.clk.Set(tm)
		}
		p.det.HandleEvent(ev)
	}
}

// restore is what the daemon does at start: every kept call back into the detector.
func (p process) restore(t *testing.T) (restored int, problems []error) {
	t.Helper()
	calls, refused, err := p.mem.Load(context.Background())
	if err != nil {
		t.Fatalf("loading kept calls: %v", err)
	}
	problems = refused
	for _, c := range calls {
		if err := p.det.Restore(c.AsteriskID, c.LinkedID, c.Record); err != nil {
			problems = append(problems, err)
			continue
		}
		restored++
	}
	return restored, problems
}

func (p process) flush(t *testing.T) {
	t.Helper()
	if err := p.mem.Flush(context.Background()); err != nil {
		t.Fatalf("writing kept calls: %v", err)
	}
}

// expectedIn reads the expected requests of the recordings in dir.
func expectedIn(t *testing.T, dir string) map[string][]expectedRequest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp map[string][]expectedRequest
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatalf("parsing %s/expected.json: %v", dir, err)
	}
	return exp
}

// A daemon restarted between any two events of any recorded or synthetic call — its memory
// gone, only what it kept in Redis left, and the PBX resynced as it then is, as every
// connection does — makes exactly the promises the uninterrupted daemon makes. The Redis of
// each restart is empty at the start, and is empty again when every call is over.
func TestARestartBetweenAnyTwoEventsMakesTheSamePromises(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	ctx := context.Background()
	var files []string
	exp := map[string][]expectedRequest{}
	for _, dir := range []string{tracesDir, scenariosDir} {
		found, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
		if err != nil || len(found) == 0 {
			t.Fatalf("no recordings in %s (%v)", dir, err)
		}
		files = append(files, found...)
		maps.Copy(exp, expectedIn(t, dir))
	}
	for _, f := range files {
		name := filepath.Base(f)
		if _, ok := exp[name]; !ok {
			t.Fatalf("%s has no expected requests", name)
		}
		for _, variant := range []struct {
			name   string
			mutate func(*ari.Event)
		}{
			{"with linkedid", nil},
			{"without linkedid", stripLinkedID},
		} {
			t.Run(name+"/"+variant.name, func(t *testing.T) {
				events := readRecording(t, f, variant.mutate)
				want := expectedSummary(exp[name])
				for k := 1; k < len(events); k++ {
					if err := rdb.FlushAll(ctx).Err(); err != nil {
						t.Fatal(err)
					}
					rec := &recorder{}
					clk := clock.NewFake(time.Time{})
					before := startProcess(t, rdb, rec, clk)
					before.feed(events[:k])
					before.flush(t)

					after := startProcess(t, rdb, rec, clk)
					if _, problems := after.restore(t); len(problems) > 0 {
						t.Fatalf("restart after event %d: %v", k, problems)
					}
					after.det.Resync(pbxState(events[0].AsteriskID, events[:k], clk.Now()))
					after.feed(events[k:])
					after.flush(t)
					if got := rec.summary(); !slices.Equal(got, want) {
						t.Fatalf("restart after event %d (%s): requests\n got %s\nwant %s", k, events[k-1].Type, join(got), join(want))
					}
					if after.det.Tracked() == 0 {
						if left := rdb.Keys(ctx, "callbackd:call*").Val(); len(left) > 0 {
							t.Fatalf("restart after event %d: every call is over, Redis still keeps %v", k, left)
						}
					}
				}
			})
		}
	}
}

// A detector whose memory cannot reach Redis detects as if it had none: Keep and Drop wait
// for nothing, the notes wait for Redis.
func TestTheDetectorWorksInMemoryWhileRedisIsDown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rdb := srv.Client()
	srv.Stop()
	exp := loadExpected(t)
	f := filepath.Join(tracesDir, "02-dial-noanswer-voicemail.jsonl")
	rec := &recorder{}
	p := startProcess(t, rdb, rec, clock.NewFake(time.Time{}))
	p.feed(readRecording(t, f, nil))
	if got, want := rec.summary(), expectedSummary(exp[filepath.Base(f)]); !slices.Equal(got, want) {
		t.Errorf("requests with Redis down: %s; want %s", join(got), join(want))
	}
	if err := p.mem.Flush(context.Background()); err == nil {
		t.Errorf("a flush with Redis down succeeded")
	}
	if p.mem.Pending() == 0 {
		t.Errorf("nothing waits for Redis: the call was never noted")
	}
}

// A kept call that does not read back is refused with an error naming the call and the
// problem, and skipped: the calls beside it are restored and make their promises, and the
// refused record is left as it was (it expires with its TTL).
func TestABadCallRecordIsRefusedAndSkipped(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	ctx := context.Background()
	events := readRecording(t, filepath.Join(tracesDir, "01-dial-noanswer.jsonl"), nil)
	ast := events[0].AsteriskID
	// Half way through, the call is kept; the restart sees it and the bad records beside it.
	half := len(events) / 2
	rec := &recorder{}
	clk := clock.NewFake(time.Time{})
	before := startProcess(t, rdb, rec, clk)
	before.feed(events[:half])
	before.flush(t)
	good, err := rdb.Keys(ctx, "callbackd:call:*").Result()
	if err != nil || len(good) != 1 {
		t.Fatalf("kept calls %v (%v); want the recorded call", good, err)
	}
	record := rdb.Get(ctx, good[0]).Val()
	if !strings.HasPrefix(record, `{"v":1,`) {
		t.Errorf("a call without a voicemail in progress is kept as %s; want version 1, which older daemons read", record)
	}
	bad := []struct {
		linkedID, record, want string
	}{
		{"9.1", `{"v":1,"a":"` + ast + `"`, "not a call record: unexpected EOF"},
		{"9.2", `{"v":3,"a":"` + ast + `","l":"9.2","o":{"i":"9.2","u":"+31201234501"},"m":[{"i":"9.2"}]}`,
			"format version 3, this daemon reads 1 to 2"},
		{"9.3", `{"v":1,"a":"` + ast + `","l":"9.3","o":{"i":"9.3"},"m":[{"i":"9.3"}]}`,
			"the customer channel has no caller number"},
		{"9.4", `{"v":1,"a":"` + ast + `","l":"9.4","o":{"i":"9.4","u":"+31201234501"},"m":[]}`, "no channel up"},
		{"9.5", strings.Replace(record, `"l":"`, `"l":"x`, 1), `it describes call "x`},
		{"9.6", `{"v":1,"a":"` + ast + `","l":"9.6","o":{"i":"9.6","u":"+31201234501"},"m":[{"i":"9.6"}],"t":[{"k":""}]}`,
			"target 0 has no extension"},
		{"9.7", `{"v":1,"a":"` + ast + `","l":"9.7","o":{"i":"9.7","u":"+31201234501"},"m":[{"i":"9.7"}],"zz":1}`,
			`unknown field "zz"`},
		{"9.8", `{"v":2,"a":"` + ast + `","l":"9.8","o":{"i":"9.8","u":"+31201234501"},"m":[{"i":"9.8","vm":[""]}]}`,
			"channel 9.8 runs a VoiceMail() with an empty mailbox"},
	}
	stale := float64(clk.Now().Add(time.Hour).UnixMilli())
	for _, b := range bad {
		key := "callbackd:call:" + ast + ":" + b.linkedID
		rdb.Set(ctx, key, b.record, time.Hour)
		rdb.ZAdd(ctx, "callbackd:calls", redis.Z{Score: stale, Member: ast + " " + b.linkedID})
	}

	after := startProcess(t, rdb, rec, clk)
	restored, problems := after.restore(t)
	if restored != 1 {
		t.Errorf("restored %d calls; want the good one", restored)
	}
	for _, b := range bad {
		found := false
		for _, p := range problems {
			if errors.Is(p, ErrBadRecord) && strings.Contains(p.Error(), "restoring call "+b.linkedID+" of asterisk "+ast) &&
				strings.Contains(p.Error(), b.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("record %s: no error saying %q among %v", b.linkedID, b.want, problems)
		}
		if got := rdb.Get(ctx, "callbackd:call:"+ast+":"+b.linkedID).Val(); got != b.record {
			t.Errorf("record %s was changed to %q", b.linkedID, got)
		}
	}
	if len(problems) != len(bad) {
		t.Errorf("%d problems for %d bad records: %v", len(problems), len(bad), problems)
	}
	if after.det.Tracked() != 1 {
		t.Errorf("tracking %d calls; a refused record must add none", after.det.Tracked())
	}
	after.feed(events[half:])
	if got, want := rec.summary(), expectedSummary(loadExpected(t)["01-dial-noanswer.jsonl"]); !slices.Equal(got, want) {
		t.Errorf("requests: %s; want %s", join(got), join(want))
	}
}
