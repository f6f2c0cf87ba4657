package aritest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/callbackd/callbackd/ari"
)

// wsConn is one /ari/events socket. Events are queued so that a slow reader never blocks the
// fake; a reader that falls far behind is disconnected, as Asterisk's write timeout does.
type wsConn struct {
	q    chan []byte
	once sync.Once
	stop chan struct{}
}

func newWSConn() *wsConn { return &wsConn{q: make(chan []byte, 8192), stop: make(chan struct{})} }

func (c *wsConn) send(data []byte) bool {
	select {
	case c.q <- data:
		return true
	default:
		return false
	}
}

func (c *wsConn) abort() { c.once.Do(func() { close(c.stop) }) }

type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, msg string) error { return &apiError{status: status, msg: msg} }

var (
	errChannelNotFound = fail(http.StatusNotFound, "Channel not found")
	errBridgeNotFound  = fail(http.StatusNotFound, "Bridge not found")
)

type route struct {
	method  string
	pattern *regexp.Regexp
	handle  func(r *http.Request, m []string) (status int, body any, err error)
}

func (s *Server) routes() http.Handler {
	rs := []route{
		{"GET", re(`/ari/asterisk/info`), s.restInfo},
		{"GET", re(`/ari/channels`), s.restListChannels},
		{"POST", re(`/ari/channels`), s.restOriginate},
		{"POST", re(`/ari/channels/create`), s.restCreate},
		{"GET", re(`/ari/channels/([^/]+)`), s.restGetChannel},
		{"DELETE", re(`/ari/channels/([^/]+)`), s.restDeleteChannel},
		{"POST", re(`/ari/channels/([^/]+)/dial`), s.restDial},
		{"POST", re(`/ari/channels/([^/]+)/play`), s.restPlay},
		{"POST", re(`/ari/channels/([^/]+)/variable`), s.restSetVar},
		{"GET", re(`/ari/channels/([^/]+)/variable`), s.restGetVar},
		{"GET", re(`/ari/playbacks/([^/]+)`), s.restGetPlayback},
		{"POST", re(`/ari/bridges`), s.restCreateBridge},
		{"GET", re(`/ari/bridges`), s.restListBridges},
		{"GET", re(`/ari/bridges/([^/]+)`), s.restGetBridge},
		{"DELETE", re(`/ari/bridges/([^/]+)`), s.restDeleteBridge},
		{"POST", re(`/ari/bridges/([^/]+)/addChannel`), s.restAddChannel},
		{"POST", re(`/ari/bridges/([^/]+)/removeChannel`), s.restRemoveChannel},
		{"GET", re(`/ari/applications/([^/]+)`), s.restGetApp},
		{"POST", re(`/ari/applications/([^/]+)/subscription`), s.restSubscribe},
		{"DELETE", re(`/ari/applications/([^/]+)/subscription`), s.restUnsubscribe},
		{"PUT", re(`/ari/applications/([^/]+)/eventFilter`), s.restEventFilter},
		{"GET", re(`/ari/endpoints`), s.restListEndpoints},
		{"GET", re(`/ari/endpoints/([^/]+)/([^/]+)`), s.restGetEndpoint},
		{"GET", re(`/ari/deviceStates/([^/]+)`), s.restGetDevice},
		{"PUT", re(`/ari/deviceStates/([^/]+)`), s.restPutDevice},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorised(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="Asterisk REST Interface"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Authentication required"})
			return
		}
		if r.URL.Path == "/ari/events" {
			s.serveEvents(w, r)
			return
		}
		s.logf("aritest: %s %s", r.Method, r.URL.String())
		pathMatched := false
		// Like Asterisk's res_ari, split the path as sent and decode each segment afterwards,
		// so a device name such as PJSIP%2F1001 stays one segment.
		for _, rt := range rs {
			m := rt.pattern.FindStringSubmatch(r.URL.EscapedPath())
			if m == nil {
				continue
			}
			for i := 1; i < len(m); i++ {
				// Asterisk's legacy URI decoding also reads '+' as a space.
				if v, err := url.PathUnescape(strings.ReplaceAll(m[i], "+", " ")); err == nil {
					m[i] = v
				}
			}
			pathMatched = true
			if rt.method != r.Method {
				continue
			}
			status, body, err := rt.handle(r, m[1:])
			var ae *apiError
			switch {
			case errors.As(err, &ae):
				key := "message"
				if ae.status == http.StatusInternalServerError {
					key = "error"
				}
				writeJSON(w, ae.status, map[string]string{key: ae.msg})
			case err != nil:
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			case status == http.StatusNoContent:
				w.WriteHeader(status)
			default:
				writeJSON(w, status, body)
			}
			return
		}
		if pathMatched {
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "Invalid method"})
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Resource not found"})
	})
}

func re(p string) *regexp.Regexp { return regexp.MustCompile("^" + p + "$") }

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) authorised(r *http.Request) bool {
	if u, p, ok := r.BasicAuth(); ok {
		return u == s.opts.Username && p == s.opts.Password
	}
	return r.URL.Query().Get("api_key") == s.opts.Username+":"+s.opts.Password
}

// params merges the query string with a JSON body's top-level strings, as ARI accepts both;
// "variables" stays apart.
func params(r *http.Request) (url.Values, map[string]string, error) {
	q := r.URL.Query()
	var vars map[string]string
	if r.Body == nil {
		return q, nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || len(strings.TrimSpace(string(data))) == 0 {
		return q, nil, nil
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, nil, fail(http.StatusBadRequest, "Invalid JSON body: "+err.Error())
	}
	for k, raw := range body {
		if k == "variables" {
			if err := json.Unmarshal(raw, &vars); err != nil {
				return nil, nil, fail(http.StatusBadRequest, "variables must be an object of strings")
			}
			continue
		}
		var str string
		if json.Unmarshal(raw, &str) == nil && q.Get(k) == "" {
			q.Set(k, str)
		} else if q.Get(k) == "" {
			q.Set(k, strings.Trim(string(raw), `"`))
		}
	}
	return q, vars, nil
}

func (s *Server) restInfo(*http.Request, []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	startup := s.startup.UTC().Format(ari.TimeLayout)
	return http.StatusOK, map[string]any{
		"build":  map[string]string{"os": "Linux", "kernel": "aritest", "machine": "x86_64", "options": "OPTIONAL_API", "date": "2026-11-22 11:59:17 UTC", "user": "root"},
		"system": map[string]string{"version": "22.10.1", "entity_id": s.opts.AsteriskID},
		"config": map[string]any{"name": "", "default_language": "en", "setid": map[string]string{"user": "", "group": ""}},
		"status": map[string]string{"startup_time": startup, "last_reload_time": startup},
	}, nil
}

func (s *Server) restListChannels(*http.Request, []string) (int, any, error) {
	return http.StatusOK, s.Channels(), nil
}

func (s *Server) restGetChannel(_ *http.Request, m []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[m[0]]
	if ch == nil {
		return 0, nil, errChannelNotFound
	}
	return http.StatusOK, ch.snapshot(), nil
}

// hangupReasons are res/ari/resource_channels.c's convert_reason_to_hangup_code: "timeout" is
// AST_CAUSE_NO_USER_RESPONSE, "failure" AST_CAUSE_FAILURE (network out of order).
var hangupReasons = map[string]int{
	"": 16, "normal": 16, "busy": 17, "congestion": 34, "no_answer": 19, "timeout": 18,
	"rejected": 21, "unallocated": 1, "normal_unspecified": 31, "number_incomplete": 28,
	"codec_mismatch": 58, "interworking": 127, "failure": 38, "answered_elsewhere": 26,
}

func (s *Server) restDeleteChannel(r *http.Request, m []string) (int, any, error) {
	reason := r.URL.Query().Get("reason")
	if _, ok := hangupReasons[reason]; !ok {
		return 0, nil, fail(http.StatusBadRequest, "Invalid reason for hangup provided")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[m[0]]
	if ch == nil {
		return 0, nil, errChannelNotFound
	}
	cause := hangupReasons[reason]
	destroyCause := 16
	if ch.snap.State != "Up" && reason != "" {
		destroyCause = cause
	}
	s.destroyLocked(ch, []hangupRequest{{cause: intp(32), soft: true}}, destroyCause, nil, nil)
	return http.StatusNoContent, nil, nil
}

// controlLocked is res/ari/resource_channels.c's find_control: the channel, which must be in
// a Stasis application for the operations that go through its control.
func (s *Server) controlLocked(id string) (*channel, error) {
	ch := s.channels[id]
	if ch == nil {
		return nil, errChannelNotFound
	}
	if ch.stasisApp == "" {
		return nil, fail(http.StatusConflict, "Channel not in Stasis application")
	}
	return ch, nil
}

func (s *Server) restSetVar(r *http.Request, m []string) (int, any, error) {
	q, _, err := params(r)
	if err != nil {
		return 0, nil, err
	}
	name := q.Get("variable")
	if name == "" {
		return 0, nil, fail(http.StatusBadRequest, "Variable name is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.controlLocked(m[0])
	if err != nil {
		return 0, nil, err
	}
	s.setVarLocked(ch, name, q.Get("value"))
	return http.StatusNoContent, nil, nil
}

func (s *Server) setVarLocked(ch *channel, name, value string) {
	switch name {
	case "CALLERID(num)":
		ch.snap.Caller.Number = value
		s.chanEventLocked(ari.EventChannelCallerID, ch, fields{"caller_presentation": 0, "caller_presentation_txt": "Presentation Allowed, Not Screened"})
	case "CALLERID(name)":
		ch.snap.Caller.Name = value
		s.chanEventLocked(ari.EventChannelCallerID, ch, fields{"caller_presentation": 0, "caller_presentation_txt": "Presentation Allowed, Not Screened"})
	case "CONNECTEDLINE(num)":
		ch.snap.Connected.Number = value
		s.chanEventLocked(ari.EventChannelConnectedLine, ch, nil)
	case "CONNECTEDLINE(name)":
		ch.snap.Connected.Name = value
		s.chanEventLocked(ari.EventChannelConnectedLine, ch, nil)
	default:
		s.varsetLocked(ch, name, value)
	}
}

func (s *Server) restGetVar(r *http.Request, m []string) (int, any, error) {
	name := r.URL.Query().Get("variable")
	if name == "" {
		return 0, nil, fail(http.StatusBadRequest, "Variable name is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[m[0]]
	if ch == nil {
		return 0, nil, fail(http.StatusNotFound, "Provided channel was not found")
	}
	var v string
	var ok bool
	switch name {
	case ari.LinkedIDVar:
		v, ok = ch.snap.ChannelVars[ari.LinkedIDVar], true
	case "CALLERID(num)":
		v, ok = ch.snap.Caller.Number, true
	case "CALLERID(name)":
		v, ok = ch.snap.Caller.Name, true
	default:
		v, ok = ch.vars[name]
	}
	if !ok {
		return 0, nil, fail(http.StatusNotFound, "Provided variable was not found")
	}
	return http.StatusOK, map[string]string{"value": v}, nil
}

func (s *Server) restCreateBridge(r *http.Request, _ []string) (int, any, error) {
	q, _, err := params(r)
	if err != nil {
		return 0, nil, err
	}
	for _, t := range strings.Split(q.Get("type"), ",") {
		switch t {
		case "", "mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single", "sdp_label":
		default:
			return 0, nil, fail(http.StatusBadRequest, "Invalid bridge type "+strconv.Quote(t))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := q.Get("bridgeId")
	if b := s.bridges[id]; id != "" && b != nil {
		return http.StatusOK, b.snapshot(), nil
	}
	b := s.newBridgeLocked(id, q.Get("name"), "stasis", "Stasis")
	return http.StatusOK, b.snapshot(), nil
}

func (s *Server) restListBridges(*http.Request, []string) (int, any, error) {
	return http.StatusOK, s.Bridges(), nil
}

func (s *Server) restGetBridge(_ *http.Request, m []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bridges[m[0]]
	if b == nil {
		return 0, nil, errBridgeNotFound
	}
	return http.StatusOK, b.snapshot(), nil
}

func (s *Server) restDeleteBridge(_ *http.Request, m []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bridges[m[0]]
	if b == nil {
		return 0, nil, errBridgeNotFound
	}
	s.destroyBridgeLocked(b)
	return http.StatusNoContent, nil, nil
}

func (s *Server) bridgeAndChannelsLocked(r *http.Request, m []string) (*bridge, []*channel, error) {
	q, _, err := params(r)
	if err != nil {
		return nil, nil, err
	}
	if q.Get("channel") == "" {
		return nil, nil, fail(http.StatusBadRequest, "Missing parameter channel")
	}
	b := s.bridges[m[0]]
	if b == nil {
		return nil, nil, errBridgeNotFound
	}
	var chs []*channel
	for _, id := range strings.Split(q.Get("channel"), ",") {
		ch := s.channels[id]
		if ch == nil {
			return nil, nil, fail(http.StatusBadRequest, "Channel not found")
		}
		chs = append(chs, ch)
	}
	return b, chs, nil
}

func (s *Server) restAddChannel(r *http.Request, m []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, chs, err := s.bridgeAndChannelsLocked(r, m)
	if err != nil {
		return 0, nil, err
	}
	for _, ch := range chs {
		if ch.stasisApp == "" {
			return 0, nil, fail(http.StatusUnprocessableEntity, "Channel not in Stasis application")
		}
	}
	for _, ch := range chs {
		s.enterBridgeLocked(b, ch)
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) restRemoveChannel(r *http.Request, m []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, chs, err := s.bridgeAndChannelsLocked(r, m)
	if err != nil {
		return 0, nil, err
	}
	for _, ch := range chs {
		if ch.bridge != b.snap.ID {
			return 0, nil, fail(http.StatusUnprocessableEntity, "Channel not in this bridge")
		}
	}
	for _, ch := range chs {
		s.leaveBridgeLocked(ch)
	}
	return http.StatusNoContent, nil, nil
}

// ---- applications ----

func (s *Server) appJSONLocked(a *app) map[string]any {
	chIDs := []string{}
	for _, ch := range s.channelListLocked() {
		if c := s.channels[ch.ID]; c != nil && c.subs[a.name] {
			chIDs = append(chIDs, ch.ID)
		}
	}
	brIDs := []string{}
	for _, b := range s.bridgeListLocked() {
		if s.bridges[b.ID].subs[a.name] {
			brIDs = append(brIDs, b.ID)
		}
	}
	filter := func(m map[string]bool) []map[string]string {
		out := []map[string]string{}
		for _, t := range keys(m) {
			out = append(out, map[string]string{"type": t})
		}
		return out
	}
	eps := keys(a.endpoints)
	devs := keys(a.deviceNames)
	return map[string]any{
		"name": a.name, "channel_ids": chIDs, "bridge_ids": brIDs,
		"endpoint_ids": eps, "device_names": devs,
		"events_allowed": filter(a.allowed), "events_disallowed": filter(a.disallowed),
	}
}

func (s *Server) appLocked(name string) (*app, error) {
	a := s.apps[name]
	if a == nil {
		return nil, fail(http.StatusNotFound, "Application not found")
	}
	return a, nil
}

func (s *Server) restGetApp(_ *http.Request, m []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(m[0])
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.appJSONLocked(a), nil
}

func (s *Server) restSubscribe(r *http.Request, m []string) (int, any, error) {
	return s.subscription(r, m[0], true)
}

func (s *Server) restUnsubscribe(r *http.Request, m []string) (int, any, error) {
	return s.subscription(r, m[0], false)
}

func (s *Server) subscription(r *http.Request, name string, on bool) (int, any, error) {
	q, _, err := params(r)
	if err != nil {
		return 0, nil, err
	}
	sources := q["eventSource"]
	if len(sources) == 0 || q.Get("eventSource") == "" {
		return 0, nil, fail(http.StatusBadRequest, "Missing parameter eventSource")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(name)
	if err != nil {
		return 0, nil, err
	}
	type change func()
	var changes []change
	for _, list := range sources {
		for _, src := range strings.Split(list, ",") {
			kind, id, ok := strings.Cut(src, ":")
			if !ok || id == "" {
				return 0, nil, fail(http.StatusBadRequest, "Invalid event source "+strconv.Quote(src))
			}
			switch kind {
			case "channel":
				ch := s.channels[id]
				if ch == nil {
					return 0, nil, fail(http.StatusUnprocessableEntity, "Event source does not exist")
				}
				changes = append(changes, func() { ch.subs[name] = on })
			case "bridge":
				b := s.bridges[id]
				if b == nil {
					return 0, nil, fail(http.StatusUnprocessableEntity, "Event source does not exist")
				}
				changes = append(changes, func() { b.subs[name] = on })
			case "endpoint":
				if !strings.Contains(id, "/") {
					return 0, nil, fail(http.StatusBadRequest, "Invalid endpoint "+strconv.Quote(id))
				}
				changes = append(changes, func() { setFlag(&a.endpoints, id, on) })
			case "deviceState":
				changes = append(changes, func() { setFlag(&a.deviceNames, id, on) })
			default:
				return 0, nil, fail(http.StatusBadRequest, "Invalid event source type "+strconv.Quote(kind))
			}
		}
	}
	for _, c := range changes {
		c()
	}
	return http.StatusOK, s.appJSONLocked(a), nil
}

func setFlag(m *map[string]bool, k string, on bool) {
	if *m == nil {
		*m = map[string]bool{}
	}
	if on {
		(*m)[k] = true
	} else {
		delete(*m, k)
	}
}

func (s *Server) restEventFilter(r *http.Request, m []string) (int, any, error) {
	var body struct {
		Allowed    []struct{ Type string } `json:"allowed"`
		Disallowed []struct{ Type string } `json:"disallowed"`
	}
	if r.Body != nil {
		data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if len(strings.TrimSpace(string(data))) > 0 {
			if err := json.Unmarshal(data, &body); err != nil {
				return 0, nil, fail(http.StatusBadRequest, "Invalid JSON body: "+err.Error())
			}
		}
	}
	toSet := func(list []struct{ Type string }) (map[string]bool, error) {
		if len(list) == 0 {
			return nil, nil
		}
		out := map[string]bool{}
		for _, f := range list {
			if f.Type == "" {
				return nil, fail(http.StatusBadRequest, "Every event filter needs a \"type\"")
			}
			out[f.Type] = true
		}
		return out, nil
	}
	allowed, err := toSet(body.Allowed)
	if err != nil {
		return 0, nil, err
	}
	disallowed, err := toSet(body.Disallowed)
	if err != nil {
		return 0, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(m[0])
	if err != nil {
		return 0, nil, err
	}
	a.allowed, a.disallowed = allowed, disallowed
	return http.StatusOK, s.appJSONLocked(a), nil
}

// ---- endpoints and device states ----

func (s *Server) endpointJSONLocked(name string, b Behavior) ari.Endpoint {
	tech, res, _ := strings.Cut(name, "/")
	state := "online"
	if b.Unavailable {
		state = "offline"
	}
	ids := []string{}
	for _, ch := range s.channelListLocked() {
		if s.channels[ch.ID].endpoint == name {
			ids = append(ids, ch.ID)
		}
	}
	return ari.Endpoint{Technology: tech, Resource: res, State: state, ChannelIDs: ids}
}

func (s *Server) restListEndpoints(*http.Request, []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []ari.Endpoint{}
	for _, name := range sortedKeys(s.endpoints) {
		out = append(out, s.endpointJSONLocked(name, s.endpoints[name]))
	}
	return http.StatusOK, out, nil
}

func (s *Server) restGetEndpoint(_ *http.Request, m []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := m[0] + "/" + m[1]
	b, ok := s.endpoints[name]
	if !ok {
		return 0, nil, fail(http.StatusNotFound, "Endpoint not found")
	}
	return http.StatusOK, s.endpointJSONLocked(name, b), nil
}

func (s *Server) deviceStateOfLocked(name string) string {
	if st, ok := s.devices[name]; ok {
		return st
	}
	b, ok := s.endpoints[name]
	if !ok {
		return "UNKNOWN"
	}
	if b.Unavailable {
		return "UNAVAILABLE"
	}
	// As chan_pjsip aggregates its channels (ast_state_chan2dev, ast_devstate_aggregate):
	// ringing and in use at once is RINGINUSE.
	var inUse, ringing, busy bool
	for _, ch := range s.channels {
		if ch.endpoint != name {
			continue
		}
		switch ch.snap.State {
		case "Ring", "OffHook", "Dialing", "Dialing Offhook", "Rsrvd", "Up":
			inUse = true
		case "Ringing", "Pre-ring":
			ringing = true
		case "Busy":
			busy = true
		}
	}
	switch {
	case inUse && ringing:
		return "RINGINUSE"
	case ringing:
		return "RINGING"
	case inUse:
		return "INUSE"
	case busy:
		return "BUSY"
	}
	return "NOT_INUSE"
}

var deviceStates = map[string]bool{
	"UNKNOWN": true, "NOT_INUSE": true, "INUSE": true, "BUSY": true, "INVALID": true,
	"UNAVAILABLE": true, "RINGING": true, "RINGINUSE": true, "ONHOLD": true,
}

func (s *Server) restGetDevice(_ *http.Request, m []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return http.StatusOK, ari.DeviceState{Name: m[0], State: s.deviceStateOfLocked(m[0])}, nil
}

func (s *Server) restPutDevice(r *http.Request, m []string) (int, any, error) {
	q, _, err := params(r)
	if err != nil {
		return 0, nil, err
	}
	st := q.Get("deviceState")
	if !deviceStates[st] {
		return 0, nil, fail(http.StatusBadRequest, "Invalid deviceState "+strconv.Quote(st))
	}
	if !strings.HasPrefix(m[0], "Stasis:") {
		return 0, nil, fail(http.StatusConflict, "Uncontrolled device specified")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devices[m[0]] = st
	s.deviceStateLocked(m[0], st)
	return http.StatusNoContent, nil, nil
}

// ---- events socket ----

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var names []string
	for _, n := range strings.Split(q.Get("app"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Missing param: app"})
		return
	}
	all := q.Get("subscribeAll") == "true" || q.Get("subscribeAll") == "1"
	conn := newWSConn()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "closed", http.StatusServiceUnavailable)
		return
	}
	// Register before the handshake completes, so a client that has connected never misses
	// an event caused by its next REST call.
	for _, n := range names {
		s.registerLocked(n, conn, all)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	unregister := func() {
		s.mu.Lock()
		for _, n := range names {
			if a := s.apps[n]; a != nil && a.conn == conn {
				a.conn = nil
				a.subscribeAll = false
			}
		}
		s.mu.Unlock()
	}
	defer unregister()

	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.logf("aritest: events handshake: %v", err)
		return
	}
	s.logf("aritest: events socket for %v connected (subscribeAll=%v)", names, all)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = c.CloseRead(ctx)
	for {
		select {
		case data := <-conn.q:
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Write(wctx, websocket.MessageText, data)
			wcancel()
			if err != nil {
				_ = c.CloseNow()
				return
			}
		case <-conn.stop:
			_ = c.CloseNow()
			s.logf("aritest: events socket for %v dropped", names)
			return
		case <-ctx.Done():
			_ = c.CloseNow()
			return
		case <-s.done:
			_ = c.CloseNow()
			return
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
