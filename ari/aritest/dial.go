package aritest

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// Behavior is how a scripted endpoint reacts when it is dialled. The zero value rings and
// never answers (a phone on manual answer that nobody picks up, like 1003 in the recordings).
type Behavior struct {
	// Unavailable: not registered. Originate → HTTP 500 {"error":"Allocation failed"} and no
	// event at all; dialplan Dial → no Dial event, only DIALSTATUS=CHANUNAVAIL.
	Unavailable bool
	// Answer after AnswerAfter of ringing.
	Answer      bool
	AnswerAfter time.Duration
	// Busy: rejects with SIP 486 after BusyAfter of ringing (a Local channel: Hangup(17) at
	// once, without ringing).
	Busy      bool
	BusyAfter time.Duration
	// HangupAfter, when > 0, makes the far end hang up that long after answering (a customer
	// who talks and hangs up, or a mobile voicemail that takes a message).
	HangupAfter time.Duration
	// CallerName and CallerNumber are the endpoint's own caller id ("Agent 1001" <1001>).
	CallerName, CallerNumber string
	// Digits, when set, are keyed by the far end of an ARI-dialled leg (originate or /dial)
	// once it has answered: the first DigitsAfter after the answer, the rest digitGap apart,
	// each a ChannelDtmfReceived (an agent accepting a callback with "1", say). Digits not yet
	// keyed when the leg hangs up are never sent.
	Digits      string
	DigitsAfter time.Duration
}

// digitGap is the pause between two keyed digits, and dtmfDurationMs how long each is held:
// a person typing a short code, not a machine.
const (
	digitGap       = 300 * time.Millisecond
	dtmfDurationMs = 100
)

// Answers is an endpoint that answers after d.
func Answers(d time.Duration) Behavior { return Behavior{Answer: true, AnswerAfter: d} }

// AnswersAndPresses is an endpoint that answers after d and, a second later (time to hear a
// prompt start), keys digits.
func AnswersAndPresses(d time.Duration, digits string) Behavior {
	return Behavior{Answer: true, AnswerAfter: d, Digits: digits, DigitsAfter: time.Second}
}

// Rings is an endpoint that rings and is never answered.
func Rings() Behavior { return Behavior{} }

// Busy is an endpoint that rejects with 486 after ringing d.
func Busy(d time.Duration) Behavior { return Behavior{Busy: true, BusyAfter: d} }

// Unavailable is an endpoint that is not registered.
func Unavailable() Behavior { return Behavior{Unavailable: true} }

// Voicemail is an endpoint whose voicemail answers after d and hangs up after the message
// (msg) has been left — from the caller's side an answered call.
func Voicemail(d, msg time.Duration) Behavior {
	return Behavior{Answer: true, AnswerAfter: d, HangupAfter: msg}
}

// SetEndpoint scripts how endpoint (e.g. "PJSIP/1001", "Local/noanswer@test") behaves from
// now on. Endpoints never set are unavailable to originate and dial.
//
// Setting an endpoint for the first time, or moving it between Unavailable and available,
// is a phone registering or going away: apps subscribed to endpoint:TECH/RES get an
// EndpointStateChange (online or offline), and the subscribeAll apps and deviceState:
// subscribers a DeviceStateChanged with the device's new state (UNAVAILABLE offline,
// NOT_INUSE online and idle). A change between two available behaviours (Rings to
// Answers) emits nothing: the phone was registered all along.
func (s *Server) SetEndpoint(endpoint string, b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, known := s.endpoints[endpoint]
	s.endpoints[endpoint] = b
	if known && prev.Unavailable == b.Unavailable {
		return
	}
	s.emitLocked(ari.EventEndpointStateChange, fields{"endpoint": s.endpointJSONLocked(endpoint, b)}, s.endpointSubsLocked(endpoint))
	s.deviceStateLocked(endpoint, s.deviceStateOfLocked(endpoint))
}

func (s *Server) behaviorLocked(endpoint string) (Behavior, bool) {
	b, ok := s.endpoints[endpoint]
	if !ok || b.Unavailable {
		return b, false
	}
	if b.CallerNumber == "" && strings.HasPrefix(endpoint, "PJSIP/") {
		res := strings.TrimPrefix(endpoint, "PJSIP/")
		b.CallerName, b.CallerNumber = "Agent "+res, res
	}
	return b, true
}

func resource(endpoint string) string {
	_, res, _ := strings.Cut(endpoint, "/")
	return res
}

func isLocal(endpoint string) bool { return strings.HasPrefix(endpoint, "Local/") }

// parseCallerID reads `"Name" <number>`, `Name <number>` or a bare number.
func parseCallerID(v string) (name, number string) {
	v = strings.TrimSpace(v)
	if i := strings.LastIndex(v, "<"); i >= 0 && strings.HasSuffix(v, ">") {
		return strings.Trim(strings.TrimSpace(v[:i]), `"`), v[i+1 : len(v)-1]
	}
	return "", v
}

func parseTimeout(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < -1 {
		return 0, fail(http.StatusBadRequest, "Invalid timeout "+strconv.Quote(v))
	}
	return n, nil
}

func validEndpoint(ep string) error {
	tech, res, ok := strings.Cut(ep, "/")
	if ep == "" {
		return fail(http.StatusBadRequest, "Endpoint must be specified")
	}
	if !ok || tech == "" || res == "" {
		return fail(http.StatusBadRequest, "Invalid endpoint "+strconv.Quote(ep))
	}
	return nil
}

func (s *Server) restOriginate(r *http.Request, _ []string) (int, any, error) {
	q, vars, err := params(r)
	if err != nil {
		return 0, nil, err
	}
	ep := q.Get("endpoint")
	if err := validEndpoint(ep); err != nil {
		return 0, nil, err
	}
	appName := q.Get("app")
	if appName == "" {
		return 0, nil, fail(http.StatusBadRequest, "Application or extension must be specified")
	}
	timeout, err := parseTimeout(q.Get("timeout"), 30)
	if err != nil {
		return 0, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := q.Get("channelId"); id != "" && s.channels[id] != nil {
		return 0, nil, fail(http.StatusConflict, "Channel with given unique ID already exists")
	}
	b, ok := s.behaviorLocked(ep)
	if !ok {
		return 0, nil, fail(http.StatusInternalServerError, "Allocation failed")
	}
	// The channel is born with the endpoint's own identity (traces 07 and 10: ChannelCreated
	// shows "Agent 1003" <1003>); the originate's callerId replaces it a moment later.
	ch := s.newChannelLocked(ChannelSpec{Endpoint: ep, ID: q.Get("channelId"), CallerName: b.CallerName,
		CallerNumber: b.CallerNumber, State: "Down"})
	ch.snap.Dialplan.AppName, ch.snap.Dialplan.AppData = "AppDial2", "(Outgoing Line)"
	s.chanEventLocked(ari.EventChannelCreated, ch, nil)
	for _, k := range sortedKeys(vars) {
		s.setVarLocked(ch, k, vars[k])
	}
	s.chanEventLocked(ari.EventChannelDialplan, ch, fields{"dialplan_app": "AppDial2", "dialplan_app_data": "(Outgoing Line)"})
	if cid := q.Get("callerId"); cid != "" {
		ch.snap.Caller.Name, ch.snap.Caller.Number = parseCallerID(cid)
	}
	s.chanEventLocked(ari.EventChannelCallerID, ch, fields{"caller_presentation": 0, "caller_presentation_txt": "Presentation Allowed, Not Screened"})
	ch.snap.Connected = ch.snap.Caller
	s.chanEventLocked(ari.EventChannelConnectedLine, ch, nil)
	// Only now does the app subscribe: it never sees ChannelCreated of its own originate.
	ch.subs[appName] = true
	var args []string
	if a := q.Get("appArgs"); a != "" {
		args = strings.Split(a, ",")
	}
	reply := ch.snapshot()
	s.startAriDialLocked(ch, b, time.Duration(timeout)*time.Second, func() {
		s.enterStasisLocked(ch, appName, args, false)
	})
	return http.StatusOK, reply, nil
}

func (s *Server) enterStasisLocked(ch *channel, appName string, args []string, dialplanEvent bool) {
	ch.stasisApp = appName
	ch.subs[appName] = true
	s.ledger.channelInApp(ch.snap.ID, appName)
	ch.args = args
	data := strings.Join(append([]string{appName}, args...), ",")
	ch.snap.Dialplan.AppName, ch.snap.Dialplan.AppData = "Stasis", data
	if dialplanEvent {
		s.chanEventLocked(ari.EventChannelDialplan, ch, fields{"dialplan_app": "Stasis", "dialplan_app_data": data})
	}
	s.varsetLocked(ch, "STASISSTATUS", "")
	if args == nil {
		args = []string{}
	}
	s.emitLocked(ari.EventStasisStart, fields{"args": args, "channel": ch.snapshot()}, []string{appName})
}

func (s *Server) restCreate(r *http.Request, _ []string) (int, any, error) {
	q, vars, err := params(r)
	if err != nil {
		return 0, nil, err
	}
	ep := q.Get("endpoint")
	if err := validEndpoint(ep); err != nil {
		return 0, nil, err
	}
	appName := q.Get("app")
	if appName == "" {
		return 0, nil, fail(http.StatusBadRequest, "Application must be specified")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := q.Get("channelId"); id != "" && s.channels[id] != nil {
		return 0, nil, fail(http.StatusConflict, "Channel with given unique ID already exists")
	}
	b, ok := s.behaviorLocked(ep)
	if !ok {
		return 0, nil, fail(http.StatusInternalServerError, "Allocation failed")
	}
	// As with originate, a created channel starts with the endpoint's own caller id (trace 07:
	// ChannelCreated <2001>) until CALLERID() variables overwrite it.
	ch := s.newChannelLocked(ChannelSpec{Endpoint: ep, ID: q.Get("channelId"), CallerName: b.CallerName,
		CallerNumber: b.CallerNumber, State: "Down"})
	s.chanEventLocked(ari.EventChannelCreated, ch, nil)
	ch.subs[appName] = true
	for _, k := range sortedKeys(vars) {
		s.setVarLocked(ch, k, vars[k])
	}
	var args []string
	if a := q.Get("appArgs"); a != "" {
		args = strings.Split(a, ",")
	}
	reply := ch.snapshot()
	reply.Dialplan.AppName, reply.Dialplan.AppData = "", ""
	s.enterStasisLocked(ch, appName, args, true)
	return http.StatusOK, reply, nil
}

func (s *Server) restDial(r *http.Request, m []string) (int, any, error) {
	q, _, err := params(r)
	if err != nil {
		return 0, nil, err
	}
	timeout, err := parseTimeout(q.Get("timeout"), 0)
	if err != nil {
		return 0, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.controlLocked(m[0])
	if err != nil {
		return 0, nil, err
	}
	if ch.dialing || (ch.snap.State != "Down" && ch.snap.State != "Rsrvd") {
		return 0, nil, fail(http.StatusConflict, "Channel is not in the 'Down' state")
	}
	// As ast_ari_channels_dial does: the callee is shown the caller's id, over whatever
	// CONNECTEDLINE was set when the channel was created. A caller that does not exist is
	// ignored, not an error.
	if caller := s.channels[q.Get("caller")]; caller != nil {
		ch.snap.Connected = caller.snap.Caller
		s.chanEventLocked(ari.EventChannelConnectedLine, ch, nil)
	}
	b, ok := s.behaviorLocked(ch.endpoint)
	if !ok {
		s.destroyLocked(ch, []hangupRequest{{cause: intp(3)}}, 3, nil, nil)
		return http.StatusNoContent, nil, nil
	}
	s.startAriDialLocked(ch, b, time.Duration(timeout)*time.Second, nil)
	return http.StatusNoContent, nil, nil
}

func (s *Server) dialEventLocked(ch *channel, status, dialstring string) {
	s.emitLocked(ari.EventDial, fields{"dialstatus": status, "forward": "", "dialstring": dialstring, "peer": ch.snapshot()},
		s.chanTargetsLocked(ch))
}

// startAriDialLocked rings an ARI leg (originate or /dial). As recorded, a failed ARI leg gets
// no final Dial event: only the hang-up request (busy) and ChannelDestroyed.
func (s *Server) startAriDialLocked(ch *channel, b Behavior, timeout time.Duration, onAnswer func()) {
	ch.dialing = true
	local := isLocal(ch.endpoint)
	s.dialEventLocked(ch, "", resource(ch.endpoint))
	if local && b.Busy {
		s.destroyLocked(ch, []hangupRequest{{cause: intp(17)}}, 17, nil, nil)
		return
	}
	s.setStateLocked(ch, "Ringing")
	s.dialEventLocked(ch, "RINGING", "")
	epoch := s.epoch
	originate := onAnswer != nil
	s.goScriptLocked(func() {
		type outcome int
		const (
			answer outcome = iota
			busy
			noAnswer
		)
		wait, what := time.Duration(-1), noAnswer
		switch {
		case b.Answer:
			wait, what = b.AnswerAfter, answer
		case b.Busy:
			wait, what = b.BusyAfter, busy
		}
		if timeout > 0 && (wait < 0 || wait >= timeout) {
			wait, what = timeout, noAnswer
		}
		if wait < 0 {
			<-ch.gone
			return
		}
		if s.sleep(epoch, wait, ch.gone) != nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, alive := s.channels[ch.snap.ID]; !alive {
			return
		}
		ch.dialing = false
		var tech *int
		switch what {
		case answer:
			s.setStateLocked(ch, "Up")
			s.dialEventLocked(ch, "ANSWER", "")
			if onAnswer != nil {
				onAnswer()
			}
			if b.Digits != "" {
				s.pressDigitsLocked(ch, epoch, b.DigitsAfter, b.Digits)
			}
			if b.HangupAfter > 0 {
				s.goScriptLocked(func() {
					if s.sleep(epoch, b.HangupAfter, ch.gone) != nil {
						return
					}
					s.mu.Lock()
					defer s.mu.Unlock()
					s.destroyLocked(ch, []hangupRequest{{cause: intp(16)}}, 16, nil, nil)
				})
			}
		case busy:
			if !local {
				tech = intp(486)
			}
			s.destroyLocked(ch, []hangupRequest{{cause: intp(17), tech: tech}}, 17, tech, nil)
		case noAnswer:
			if !local {
				tech = intp(480)
			}
			if originate {
				// Trace 10: an unanswered originate is destroyed without a hang-up request.
				s.destroyLocked(ch, nil, 19, tech, nil)
				return
			}
			s.destroyLocked(ch, []hangupRequest{{cause: intp(32), soft: true}}, 19, tech, nil)
		}
	})
}

// ---- DTMF ----

// pressDigitsLocked makes the far end of ch key digits: the first after wait, the rest
// digitGap apart. It stops when the channel goes or the server restarts.
func (s *Server) pressDigitsLocked(ch *channel, epoch int, wait time.Duration, digits string) {
	s.goScriptLocked(func() {
		for _, d := range digits {
			if s.sleep(epoch, wait, ch.gone) != nil {
				return
			}
			s.mu.Lock()
			if s.channels[ch.snap.ID] != ch {
				s.mu.Unlock()
				return
			}
			s.dtmfLocked(ch, string(d))
			s.mu.Unlock()
			wait = digitGap
		}
	})
}

func (s *Server) dtmfLocked(ch *channel, digit string) {
	s.chanEventLocked(ari.EventChannelDtmfReceived, ch, fields{"digit": digit, "duration_ms": dtmfDurationMs})
}

// SendDTMF makes the far end of a channel key digits now: one ChannelDtmfReceived per digit,
// in order, to every app that gets the channel's events. Unknown ids are ignored.
func (s *Server) SendDTMF(channelID, digits string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[channelID]
	if ch == nil {
		return
	}
	for _, d := range digits {
		s.dtmfLocked(ch, string(d))
	}
}

// ---- playback ----

func mediaDuration(uri string) time.Duration {
	scheme, v, _ := strings.Cut(uri, ":")
	switch scheme {
	case "digits", "number", "characters":
		return time.Duration(len(v)) * 700 * time.Millisecond
	case "tone":
		return time.Second
	}
	switch v {
	case "beep":
		return 400 * time.Millisecond
	case "vm-nobodyavail":
		return 2 * time.Second
	}
	return time.Second
}

var mediaSchemes = map[string]bool{"sound": true, "recording": true, "number": true, "digits": true, "characters": true, "tone": true}

func (s *Server) restPlay(r *http.Request, m []string) (int, any, error) {
	q, _, err := params(r)
	if err != nil {
		return 0, nil, err
	}
	var media []string
	for _, list := range q["media"] {
		for _, item := range strings.Split(list, ",") {
			scheme, v, ok := strings.Cut(item, ":")
			if !ok || v == "" || !mediaSchemes[scheme] {
				return 0, nil, fail(http.StatusBadRequest, "Invalid media URI "+strconv.Quote(item))
			}
			media = append(media, item)
		}
	}
	if len(media) == 0 {
		return 0, nil, fail(http.StatusBadRequest, "Missing parameter media")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.controlLocked(m[0])
	if err != nil {
		return 0, nil, err
	}
	id := q.Get("playbackId")
	if id == "" {
		s.idSeq++
		id = fmt.Sprintf("pb-%d", s.idSeq)
	}
	pb := func(i int, state string) map[string]any {
		p := map[string]any{"id": id, "media_uri": media[i], "target_uri": "channel:" + ch.snap.ID,
			"language": "en", "state": state}
		if i+1 < len(media) && state != ari.PlaybackDone {
			p["next_media_uri"] = media[i+1]
		}
		return p
	}
	reply := pb(0, ari.PlaybackQueued)
	live := &playback{channel: ch.snap.ID, json: pb(0, ari.PlaybackPlaying)}
	s.playbacks[id] = live
	s.emitLocked(ari.EventPlaybackStarted, fields{"playback": live.json}, s.chanTargetsLocked(ch))
	epoch := s.epoch
	s.goScriptLocked(func() {
		for i := range media {
			err := s.sleep(epoch, mediaDuration(media[i]), ch.gone)
			if err == errStopped {
				return
			}
			s.mu.Lock()
			if err != nil {
				s.endPlaybackLocked(id, live)
				s.emitLocked(ari.EventPlaybackFinished, fields{"playback": pb(i, ari.PlaybackFailed)}, s.chanTargetsLocked(ch))
				s.mu.Unlock()
				return
			}
			if i+1 == len(media) {
				s.endPlaybackLocked(id, live)
				s.emitLocked(ari.EventPlaybackFinished, fields{"playback": pb(i, ari.PlaybackDone)}, s.chanTargetsLocked(ch))
			} else {
				s.emitLocked(ari.EventPlaybackContinuing, fields{"playback": pb(i, ari.PlaybackContinuing)}, s.chanTargetsLocked(ch))
				live.json = pb(i+1, ari.PlaybackPlaying)
				s.emitLocked(ari.EventPlaybackStarted, fields{"playback": live.json}, s.chanTargetsLocked(ch))
			}
			s.mu.Unlock()
		}
	})
	return http.StatusCreated, reply, nil
}

// playback is one playback Asterisk still holds: res_stasis_playback links it into its
// container when POST …/play makes it and unlinks it (remove_from_playbacks) once its play
// command is done with — the media finished or failed, or the channel left — so GET
// /playbacks/{id} finds it only meanwhile.
type playback struct {
	channel string
	json    map[string]any // as GET /playbacks/{id} answers it now
}

// endPlaybackLocked takes a playback out of the registry, unless a newer one took its id.
func (s *Server) endPlaybackLocked(id string, p *playback) {
	if s.playbacks[id] == p {
		delete(s.playbacks, id)
	}
}

// dropPlaybacksLocked forgets the playbacks of a channel that is going: Asterisk drops the
// channel's queued commands, and each drop unlinks its playback.
func (s *Server) dropPlaybacksLocked(channelID string) {
	for id, p := range s.playbacks {
		if p.channel == channelID {
			delete(s.playbacks, id)
		}
	}
}

var errPlaybackNotFound = fail(http.StatusNotFound, "Playback not found")

func (s *Server) restGetPlayback(_ *http.Request, m []string) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.playbacks[m[0]]
	if p == nil {
		return 0, nil, errPlaybackNotFound
	}
	return http.StatusOK, p.json, nil
}

// Playbacks lists the playbacks the fake still holds (GET /playbacks/{id} finds them), by id.
func (s *Server) Playbacks() []ari.Playback {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.playbacks))
	for id := range s.playbacks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]ari.Playback, 0, len(ids))
	for _, id := range ids {
		j := s.playbacks[id].json
		text := func(k string) string { v, _ := j[k].(string); return v }
		out = append(out, ari.Playback{ID: id, MediaURI: text("media_uri"), State: text("state"),
			TargetURI: text("target_uri"), Language: text("language")})
	}
	return out
}
