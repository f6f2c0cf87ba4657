package aritest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
)

// guard bounds every wait in these tests; it is a failure guard, never a speed assertion.
const guard = 20 * time.Second

var epoch = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// newFake starts a Server on a fake clock that a background driver keeps advancing, so that
// scripted seconds pass in milliseconds of wall time.
func newFake(t *testing.T) (*Server, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(epoch)
	s, err := New(Options{Clock: clk, Logf: t.Logf})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	stop := make(chan struct{})
	driven := make(chan struct{})
	go func() {
		defer close(driven)
		Drive(clk, 50*time.Millisecond, stop, time.Hour)
	}()
	t.Cleanup(func() {
		close(stop)
		<-driven
		s.Close()
	})
	return s, clk
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// eventSocket is a test client of /ari/events that keeps every message it receives, across
// reconnects (reopen).
type eventSocket struct {
	t     *testing.T
	s     *Server
	query string

	mu     sync.Mutex
	events []map[string]any
	conn   *websocket.Conn
	closed chan struct{}
}

func dialEvents(t *testing.T, s *Server, query string) *eventSocket {
	t.Helper()
	es := &eventSocket{t: t, s: s, query: query}
	es.open()
	t.Cleanup(func() { es.close() })
	return es
}

func (es *eventSocket) open() {
	es.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(es.s.URL(), "http")+"/ari/events?"+es.query,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {basicAuth("callbackd", "callbackd-secret")}}})
	if err != nil {
		es.t.Fatalf("connecting events socket %q: %v", es.query, err)
	}
	c.SetReadLimit(1 << 22)
	closed := make(chan struct{})
	es.mu.Lock()
	es.conn, es.closed = c, closed
	es.mu.Unlock()
	go func() {
		defer close(closed)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var ev map[string]any
			if err := json.Unmarshal(data, &ev); err != nil {
				es.t.Errorf("event is not JSON: %v: %s", err, data)
				return
			}
			es.mu.Lock()
			es.events = append(es.events, ev)
			es.mu.Unlock()
		}
	}()
}

// close ends the socket from the client side, as the recorder did in trace 11, and waits for
// its reader to stop.
func (es *eventSocket) close() {
	es.mu.Lock()
	c, closed := es.conn, es.closed
	es.mu.Unlock()
	_ = c.CloseNow()
	<-closed
}

func (es *eventSocket) snapshot() []map[string]any {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]map[string]any(nil), es.events...)
}

// byApp splits what a socket received by the "application" field.
func (es *eventSocket) byApp(app string) []map[string]any {
	var out []map[string]any
	for _, ev := range es.snapshot() {
		if ev["application"] == app {
			out = append(out, ev)
		}
	}
	return out
}

// waitDelivered waits until the socket has received everything the server has sent to app.
func waitDelivered(t *testing.T, s *Server, es *eventSocket, app string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("delivery of %s's events", app), func() bool {
		s.mu.Lock()
		a := s.apps[app]
		sent := 0
		if a != nil {
			sent = a.sent
		}
		s.mu.Unlock()
		return len(es.byApp(app)) >= sent
	})
}

// waitFor polls cond until it holds; explain, if given, says what was missing when it never did.
func waitFor(t *testing.T, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			detail := ""
			for _, e := range explain {
				detail += ": " + e()
			}
			t.Fatalf("gave up waiting for %s%s", what, detail)
		case <-tick.C:
		}
	}
}

// restCall does one authenticated REST request and returns status and decoded body.
func restCall(t *testing.T, s *Server, method, path string, body any) (int, any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("encoding body: %v", err)
		}
		rd = strings.NewReader(string(data))
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, path, err)
	}
	req.SetBasicAuth("callbackd", "callbackd-secret")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, path, err)
	}
	var out any
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: reply is not JSON: %s", method, path, data)
		}
	}
	return resp.StatusCode, out
}

// ---- recordings ----

type traceLine struct {
	Kind     string          `json:"kind"`
	At       time.Time       `json:"at"`
	SentAt   time.Time       `json:"sent_at"`
	App      string          `json:"app"`
	State    string          `json:"state"`
	Event    map[string]any  `json:"event"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Status   int             `json:"status"`
	Request  map[string]any  `json:"request"`
	Response json.RawMessage `json:"response"`
	Text     string          `json:"text"`
}

func loadTrace(t *testing.T, name string) []traceLine {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "traces", name))
	if err != nil {
		t.Fatalf("opening recording: %v", err)
	}
	defer f.Close()
	var out []traceLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var l traceLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: bad line: %v", name, err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return out
}

func recordedEvents(lines []traceLine, app string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l.Kind == "event" && l.App == app {
			out = append(out, l.Event)
		}
	}
	return out
}

// ---- normalisation ----
//
// The fidelity comparison looks at each channel on its own: the sequence of the events that
// matter for that channel (by its name without the sequence suffix, e.g. "PJSIP/1003"), plus
// one sequence for bridge lifecycle and one per playback. Relative order across channels is
// ignored because Asterisk itself does not keep it (channel and bridge topics race, copies
// on two apps interleave). Left out as noise: DeviceStateChanged, ChannelCallerId,
// ChannelConnectedLine, ChannelUnhold, and ChannelVarset of anything but the variables a
// detector or dialer reads. Local ;2 halves are not modelled by the fake and are skipped.

var keptVars = map[string]bool{
	"DIALSTATUS": true, "VMSTATUS": true, "VM_MESSAGEFILE": true, "BLINDTRANSFER": true, "STASISSTATUS": true,
}

var nameSuffix = regexp.MustCompile(`-[0-9a-f]{8}(;[12])?$`)

func role(name string) string {
	m := nameSuffix.FindStringSubmatch(name)
	if m == nil {
		return name
	}
	return strings.TrimSuffix(name, m[0]) + m[1]
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case float64:
		return fmt.Sprintf("%d", int(x))
	default:
		return fmt.Sprint(x)
	}
}

// evType is the type of a decoded event; "" when it has none.
func evType(ev map[string]any) ari.EventType {
	typ, _ := ev["type"].(string)
	return ari.EventType(typ)
}

func obj(ev map[string]any, key string) map[string]any {
	m, _ := ev[key].(map[string]any)
	return m
}

var msgFile = regexp.MustCompile(`msg[0-9]{4}$`)

// normalise turns one app's events into per-channel sequences of comparable keys.
func normalise(events []map[string]any) map[string][]string {
	out := map[string][]string{}
	add := func(group, key string) { out[group] = append(out[group], key) }
	for _, ev := range events {
		typ := evType(ev)
		ch := obj(ev, "channel")
		chRole := role(str(ch["name"]))
		if strings.HasSuffix(chRole, ";2") {
			continue
		}
		switch typ {
		case ari.EventChannelCreated:
			add(chRole, fmt.Sprintf("%s state=%s caller=%s", typ, ch["state"], str(obj(ch, "caller")["number"])))
		case ari.EventChannelDialplan:
			add(chRole, fmt.Sprintf("%s %s(%s)", typ, ev["dialplan_app"], ev["dialplan_app_data"]))
		case ari.EventChannelVarset:
			name := str(ev["variable"])
			if !keptVars[name] {
				continue
			}
			val := str(ev["value"])
			if name == "BLINDTRANSFER" {
				val = role(val)
			}
			val = msgFile.ReplaceAllString(val, "msgNNNN")
			add(chRole, fmt.Sprintf("%s %s=%s", typ, name, val))
		case ari.EventDial:
			peer := obj(ev, "peer")
			if strings.HasSuffix(role(str(peer["name"])), ";2") {
				continue
			}
			_, hasCaller := ev["caller"]
			add(role(str(peer["name"])), fmt.Sprintf("%s %q caller=%v", typ, ev["dialstatus"], hasCaller))
		case ari.EventChannelStateChange:
			add(chRole, fmt.Sprintf("%s %s", typ, ch["state"]))
		case ari.EventChannelHangupRequest:
			add(chRole, fmt.Sprintf("%s cause=%s soft=%s tech=%s", typ, str(ev["cause"]), str(ev["soft"]), str(ev["tech_cause"])))
		case ari.EventChannelDestroyed:
			add(chRole, fmt.Sprintf("%s cause=%s (%s) tech=%s", typ, str(ev["cause"]), ev["cause_txt"], str(ev["tech_cause"])))
		case ari.EventStasisStart:
			add(chRole, fmt.Sprintf("%s args=%v", typ, ev["args"]))
		case ari.EventStasisEnd, ari.EventChannelEnteredBridge, ari.EventChannelLeftBridge:
			add(chRole, string(typ))
		case ari.EventBridgeBlindTransfer:
			add(chRole, fmt.Sprintf("%s %s@%s result=%s external=%v transferee=%s", typ, ev["exten"], ev["context"],
				ev["result"], ev["is_external"], role(str(obj(ev, "transferee")["name"]))))
		case ari.EventBridgeCreated, ari.EventBridgeDestroyed:
			b := obj(ev, "bridge")
			add("bridge "+str(b["bridge_class"]), string(typ))
		case ari.EventPlaybackStarted, ari.EventPlaybackContinuing, ari.EventPlaybackFinished:
			p := obj(ev, "playback")
			add("playback "+str(p["id"]), fmt.Sprintf("%s %s %s", typ, p["media_uri"], p["state"]))
		}
	}
	for _, seq := range out {
		canonicalRinging(seq)
	}
	return out
}

// canonicalRinging puts the start of ringing into one fixed order: Asterisk emits the Dial
// (empty status), Dial RINGING and ChannelStateChange Ringing of a leg from two threads at the
// same instant, and the recordings hold every order (trace 07's agent leg: state change between
// the two Dials; trace 10: both Dials first; trace 13: state change first).
func canonicalRinging(seq []string) {
	rank := func(k string) int {
		switch {
		case strings.HasPrefix(k, `Dial "" `):
			return 1
		case strings.HasPrefix(k, `Dial "RINGING"`):
			return 2
		case k == "ChannelStateChange Ringing":
			return 3
		}
		return 0
	}
	for i := 0; i < len(seq); {
		if rank(seq[i]) == 0 {
			i++
			continue
		}
		j := i
		for j < len(seq) && rank(seq[j]) > 0 {
			j++
		}
		run := seq[i:j]
		sort.SliceStable(run, func(a, b int) bool { return rank(run[a]) < rank(run[b]) })
		i = j
	}
}

// compareSequences reports every channel whose sequence differs.
func compareSequences(t *testing.T, app string, want, got map[string][]string) {
	t.Helper()
	groups := map[string]bool{}
	for g := range want {
		groups[g] = true
	}
	for g := range got {
		groups[g] = true
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		w, gg := want[g], got[g]
		if strings.Join(w, "\n") != strings.Join(gg, "\n") {
			t.Errorf("app %s, %s: event sequence differs from the recording\nrecorded:\n  %s\nfake:\n  %s",
				app, g, strings.Join(w, "\n  "), strings.Join(gg, "\n  "))
		}
	}
}

// jsonKeys is the sorted key set of a JSON object (or of the first element of an array).
func jsonKeys(v any) []string {
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return nil
		}
		return jsonKeys(x[0])
	case map[string]any:
		out := make([]string, 0, len(x))
		for k := range x {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	return nil
}
