package ari

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	ariv5 "github.com/CyCoreSystems/ari/v5"
)

// DefaultRequestTimeout bounds every REST call whose ClientOptions leave RequestTimeout zero.
// Asterisk answers REST in milliseconds; a call that takes seconds means a wedged PBX, and the
// dialer must find out rather than hold an agent reserved.
const DefaultRequestTimeout = 5 * time.Second

// maxBody caps what we read of a REST reply: GET /channels on a busy PBX is large, but never
// this large, and an unbounded read would let a broken proxy exhaust memory.
const maxBody = 32 << 20

// ClientOptions configure a Client.
type ClientOptions struct {
	// URL is the ARI base, "http://host:8088/ari"; a URL without a path gets "/ari".
	// It must not carry credentials: they would end up in every error and log line.
	URL                string
	Username, Password string
	// RequestTimeout bounds each REST call; default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// HTTPClient defaults to a fresh client; its own Timeout is not relied on.
	HTTPClient *http.Client
	// Metrics, when set, counts requests by method and status.
	Metrics *Metrics
}

// Client is the ARI REST API of one Asterisk. It is safe for concurrent use.
type Client struct {
	base     *url.URL // never carries userinfo
	username string
	password string
	timeout  time.Duration
	hc       *http.Client
	metrics  *Metrics
}

// NewClient checks opts and returns a Client. It makes no request.
func NewClient(opts ClientOptions) (*Client, error) {
	base, err := parseBaseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.Username == "" {
		return nil, errors.New("ari: client: username is empty")
	}
	if opts.RequestTimeout < 0 {
		return nil, fmt.Errorf("ari: client: request timeout %v is negative", opts.RequestTimeout)
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: base, username: opts.Username, password: opts.Password,
		timeout: opts.RequestTimeout, hc: hc, metrics: opts.Metrics}, nil
}

func parseBaseURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("ari: URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the input, which may hold a password: say only what is wrong.
		return nil, errors.New("ari: URL does not parse; want http://host:8088/ari")
	}
	if u.User != nil {
		return nil, errors.New("ari: URL must not contain a username or password; set them separately")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("ari: URL scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("ari: URL has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("ari: URL must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if u.Path == "" {
		u.Path = "/ari"
	}
	u.RawPath = ""
	return u, nil
}

// BaseURL is the ARI base URL, free of credentials, for logs.
func (c *Client) BaseURL() string { return c.base.String() }

// HTTPError is a non-2xx reply from ARI.
type HTTPError struct {
	// Op says what was being done: "originate PJSIP/1001".
	Op     string
	Method string
	// Path is relative to the ARI base, without query: "/channels".
	Path    string
	Status  int
	Message string
}

func (e *HTTPError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("ari: %s: %d %s", e.Op, e.Status, msg)
}

// StatusOf returns the HTTP status of an *HTTPError in err's chain, or 0.
func StatusOf(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// call is one REST request. op names it for errors; body, when not nil, is sent as JSON; out,
// when not nil, receives the JSON reply.
type call struct {
	op     string
	method string
	path   string
	query  url.Values
	body   any
	out    any
}

func (c *Client) do(ctx context.Context, rc call) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// rc.path is already escaped segment by segment (seg), so it is appended as text: going
	// through url.URL.Path would escape the escapes.
	u := c.base.String() + rc.path
	if len(rc.query) > 0 {
		u += "?" + rc.query.Encode()
	}
	var body io.Reader
	if rc.body != nil {
		data, err := json.Marshal(rc.body)
		if err != nil {
			return fmt.Errorf("ari: %s: encoding request: %w", rc.op, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, rc.method, u, body)
	if err != nil {
		return fmt.Errorf("ari: %s: building request: %w", rc.op, err)
	}
	req.SetBasicAuth(c.username, c.password)
	req.Header.Set("Accept", "application/json")
	if rc.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.metrics.restRequest(rc.method, "error")
		// *url.Error names the URL, which never carries credentials (see parseBaseURL).
		return fmt.Errorf("ari: %s: %w", rc.op, err)
	}
	defer resp.Body.Close()
	c.metrics.restRequest(rc.method, strconv.Itoa(resp.StatusCode))
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("ari: %s: reading reply: %w", rc.op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &HTTPError{Op: rc.op, Method: rc.method, Path: rc.path, Status: resp.StatusCode,
			Message: errorMessage(data)}
	}
	if rc.out == nil {
		return nil
	}
	if err := json.Unmarshal(data, rc.out); err != nil {
		return fmt.Errorf("ari: %s: decoding reply: %w", rc.op, err)
	}
	return nil
}

// errorMessage pulls ARI's explanation out of an error body: {"message": ...} from the REST
// layer, {"error": ...} from some handlers (originate's "Allocation failed").
func errorMessage(data []byte) string {
	var body struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil {
		if body.Message != "" {
			return body.Message
		}
		if body.Error != "" {
			return body.Error
		}
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// seg escapes one path segment. '+' is escaped too: Asterisk decodes a path segment the legacy
// way, reading a bare '+' as a space.
func seg(s string) string { return strings.ReplaceAll(url.PathEscape(s), "+", "%2B") }

func need(op string, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.TrimSpace(pairs[i+1]) == "" {
			return fmt.Errorf("ari: %s: %s is empty", op, pairs[i])
		}
	}
	return nil
}

// AsteriskInfo is the part of GET /asterisk/info that tells one Asterisk, and one run of it,
// from another.
type AsteriskInfo struct {
	EntityID    string
	Version     string
	StartupTime time.Time
}

// Info reads /asterisk/info.
func (c *Client) Info(ctx context.Context) (AsteriskInfo, error) {
	var raw struct {
		System struct {
			EntityID string `json:"entity_id"`
			Version  string `json:"version"`
		} `json:"system"`
		Status struct {
			StartupTime string `json:"startup_time"`
		} `json:"status"`
	}
	if err := c.do(ctx, call{op: "asterisk info", method: http.MethodGet, path: "/asterisk/info", out: &raw}); err != nil {
		return AsteriskInfo{}, err
	}
	if raw.System.EntityID == "" {
		return AsteriskInfo{}, errors.New("ari: asterisk info: reply has no system.entity_id")
	}
	t, err := time.Parse(TimeLayout, raw.Status.StartupTime)
	if err != nil {
		return AsteriskInfo{}, fmt.Errorf("ari: asterisk info: status.startup_time %q: %w", raw.Status.StartupTime, err)
	}
	return AsteriskInfo{EntityID: raw.System.EntityID, Version: raw.System.Version, StartupTime: t}, nil
}

// Channels lists every channel Asterisk has, with the channelvars ari.conf exports.
func (c *Client) Channels(ctx context.Context) ([]Channel, error) {
	var out []Channel
	err := c.do(ctx, call{op: "list channels", method: http.MethodGet, path: "/channels", out: &out})
	return out, err
}

// Channel reads one channel.
func (c *Client) Channel(ctx context.Context, id string) (Channel, error) {
	op := "get channel " + id
	if err := need(op, "channel id", id); err != nil {
		return Channel{}, err
	}
	var out Channel
	err := c.do(ctx, call{op: op, method: http.MethodGet, path: "/channels/" + seg(id), out: &out})
	return out, err
}

// Bridges lists every bridge, dialplan bridges included.
func (c *Client) Bridges(ctx context.Context) ([]Bridge, error) {
	var out []Bridge
	err := c.do(ctx, call{op: "list bridges", method: http.MethodGet, path: "/bridges", out: &out})
	return out, err
}

// Endpoints lists every endpoint.
func (c *Client) Endpoints(ctx context.Context) ([]Endpoint, error) {
	var out []Endpoint
	err := c.do(ctx, call{op: "list endpoints", method: http.MethodGet, path: "/endpoints", out: &out})
	return out, err
}

// DeviceStates lists the device states ARI controls (Stasis:...).
func (c *Client) DeviceStates(ctx context.Context) ([]DeviceState, error) {
	var out []DeviceState
	err := c.do(ctx, call{op: "list device states", method: http.MethodGet, path: "/deviceStates", out: &out})
	return out, err
}

// DeviceState reads the state of any device, "PJSIP/1001" included.
func (c *Client) DeviceState(ctx context.Context, name string) (DeviceState, error) {
	op := "get device state " + name
	if err := need(op, "device name", name); err != nil {
		return DeviceState{}, err
	}
	var out DeviceState
	err := c.do(ctx, call{op: op, method: http.MethodGet, path: "/deviceStates/" + seg(name), out: &out})
	return out, err
}

// eventSourceKinds are the prefixes POST /applications/{app}/subscription accepts.
var eventSourceKinds = []string{"channel:", "bridge:", "endpoint:", "deviceState:"}

// Subscribe adds event sources ("channel:ID", "bridge:ID", "endpoint:PJSIP/1001",
// "deviceState:PJSIP/1001") to app.
func (c *Client) Subscribe(ctx context.Context, app string, sources ...string) error {
	op := "subscribe " + app
	if err := need(op, "application", app); err != nil {
		return err
	}
	if len(sources) == 0 {
		return fmt.Errorf("ari: %s: no event source given", op)
	}
	for _, src := range sources {
		ok := false
		for _, k := range eventSourceKinds {
			if strings.HasPrefix(src, k) && len(src) > len(k) {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("ari: %s: event source %q is not channel:, bridge:, endpoint: or deviceState: followed by a name", op, src)
		}
	}
	return c.do(ctx, call{op: op, method: http.MethodPost, path: "/applications/" + seg(app) + "/subscription",
		query: url.Values{"eventSource": {strings.Join(sources, ",")}}})
}

// SetEventFilter makes app receive only the event types in allowed; an empty list lets
// everything through. Asterisk forgets the filter when the app's socket goes, so it is set
// again after every reconnect.
func (c *Client) SetEventFilter(ctx context.Context, app string, allowed []EventType) error {
	op := "set event filter of " + app
	if err := need(op, "application", app); err != nil {
		return err
	}
	type typ struct {
		Type EventType `json:"type"`
	}
	body := struct {
		Allowed []typ `json:"allowed"`
	}{Allowed: []typ{}}
	for _, t := range allowed {
		if strings.TrimSpace(string(t)) == "" {
			return fmt.Errorf("ari: %s: empty event type in allowed list", op)
		}
		body.Allowed = append(body.Allowed, typ{Type: t})
	}
	return c.do(ctx, call{op: op, method: http.MethodPut, path: "/applications/" + seg(app) + "/eventFilter", body: body})
}

// OriginateRequest is POST /channels: v5's struct already has every field ARI accepts.
type OriginateRequest = ariv5.OriginateRequest

// Originate creates a channel and dials it; the reply comes at once, StasisStart when the
// far end answers. Asterisk answers 500 when it cannot even allocate the channel.
func (c *Client) Originate(ctx context.Context, req OriginateRequest) (Channel, error) {
	op := "originate " + req.Endpoint
	if err := need(op, "endpoint", req.Endpoint); err != nil {
		return Channel{}, err
	}
	if req.App == "" && req.Extension == "" {
		return Channel{}, fmt.Errorf("ari: %s: neither app nor extension given", op)
	}
	if req.App != "" && req.Extension != "" {
		return Channel{}, fmt.Errorf("ari: %s: both app %q and extension %q given; ARI takes one", op, req.App, req.Extension)
	}
	if req.Timeout < 0 {
		return Channel{}, fmt.Errorf("ari: %s: timeout %d is negative", op, req.Timeout)
	}
	var out Channel
	err := c.do(ctx, call{op: op, method: http.MethodPost, path: "/channels", body: req, out: &out})
	return out, err
}

// ChannelCreateRequest is the query part of POST /channels/create.
type ChannelCreateRequest = ariv5.ChannelCreateRequest

// CreateRequest is POST /channels/create: v5's request plus the variables ARI accepts in the
// body (v5's struct lacks them; CALLERID and CONNECTEDLINE must be set this way).
type CreateRequest struct {
	ariv5.ChannelCreateRequest
	Variables map[string]string `json:"variables,omitempty"`
}

// CreateChannel creates a channel in app without dialling it (Dial does that), so it can be
// put in a bridge first.
func (c *Client) CreateChannel(ctx context.Context, req CreateRequest) (Channel, error) {
	op := "create channel " + req.Endpoint
	if err := need(op, "endpoint", req.Endpoint, "app", req.App); err != nil {
		return Channel{}, err
	}
	var out Channel
	err := c.do(ctx, call{op: op, method: http.MethodPost, path: "/channels/create", body: req, out: &out})
	return out, err
}

// Dial dials a created channel. caller is the channel it is dialled for ("" for none);
// timeout 0 leaves Asterisk's default, otherwise it is rounded up to whole seconds.
func (c *Client) Dial(ctx context.Context, id, caller string, timeout time.Duration) error {
	op := "dial channel " + id
	if err := need(op, "channel id", id); err != nil {
		return err
	}
	if timeout < 0 {
		return fmt.Errorf("ari: %s: timeout %v is negative", op, timeout)
	}
	q := url.Values{}
	if caller != "" {
		q.Set("caller", caller)
	}
	if timeout > 0 {
		q.Set("timeout", strconv.FormatInt(int64((timeout+time.Second-1)/time.Second), 10))
	}
	return c.do(ctx, call{op: op, method: http.MethodPost, path: "/channels/" + seg(id) + "/dial", query: q})
}

// Hangup hangs a channel up; reason is ARI's ("normal", "busy", "no_answer", ...) or "".
func (c *Client) Hangup(ctx context.Context, id, reason string) error {
	op := "hang up channel " + id
	if err := need(op, "channel id", id); err != nil {
		return err
	}
	q := url.Values{}
	if reason != "" {
		q.Set("reason", reason)
	}
	return c.do(ctx, call{op: op, method: http.MethodDelete, path: "/channels/" + seg(id), query: q})
}

// Play plays media URIs ("sound:...", "digits:...", "number:...") in order on a channel.
// playbackID may be "" to let Asterisk choose.
func (c *Client) Play(ctx context.Context, channelID, playbackID string, media []string) (Playback, error) {
	op := "play on channel " + channelID
	if err := need(op, "channel id", channelID); err != nil {
		return Playback{}, err
	}
	if len(media) == 0 {
		return Playback{}, fmt.Errorf("ari: %s: no media given", op)
	}
	for _, m := range media {
		if scheme, v, ok := strings.Cut(m, ":"); !ok || scheme == "" || v == "" || strings.Contains(m, ",") {
			return Playback{}, fmt.Errorf("ari: %s: media %q is not scheme:value", op, m)
		}
	}
	q := url.Values{"media": {strings.Join(media, ",")}}
	if playbackID != "" {
		q.Set("playbackId", playbackID)
	}
	var out Playback
	err := c.do(ctx, call{op: op, method: http.MethodPost, path: "/channels/" + seg(channelID) + "/play", query: q, out: &out})
	return out, err
}

// Playback reads a playback Asterisk still holds: from the play request until its media
// finished or its channel left. After that Asterisk answers 404 (StatusOf), which is how a
// client that missed PlaybackFinished in a socket gap learns the playback is over.
func (c *Client) Playback(ctx context.Context, id string) (Playback, error) {
	op := "get playback " + id
	if err := need(op, "playback id", id); err != nil {
		return Playback{}, err
	}
	var out Playback
	err := c.do(ctx, call{op: op, method: http.MethodGet, path: "/playbacks/" + seg(id), out: &out})
	return out, err
}

// SetVar sets a channel variable or function (CALLERID(num), CONNECTEDLINE(name), ...).
func (c *Client) SetVar(ctx context.Context, id, name, value string) error {
	op := "set " + name + " on channel " + id
	if err := need(op, "channel id", id, "variable name", name); err != nil {
		return err
	}
	return c.do(ctx, call{op: op, method: http.MethodPost, path: "/channels/" + seg(id) + "/variable",
		query: url.Values{"variable": {name}, "value": {value}}})
}

// GetVar reads a channel variable or function.
func (c *Client) GetVar(ctx context.Context, id, name string) (string, error) {
	op := "get " + name + " of channel " + id
	if err := need(op, "channel id", id, "variable name", name); err != nil {
		return "", err
	}
	var out struct {
		Value string `json:"value"`
	}
	err := c.do(ctx, call{op: op, method: http.MethodGet, path: "/channels/" + seg(id) + "/variable",
		query: url.Values{"variable": {name}}, out: &out})
	return out.Value, err
}

// CreateBridge creates (or, with an existing id, returns) a bridge; typ is ARI's comma list,
// "mixing" when empty.
func (c *Client) CreateBridge(ctx context.Context, id, typ string) (Bridge, error) {
	op := "create bridge " + id
	if typ == "" {
		typ = "mixing"
	}
	q := url.Values{"type": {typ}}
	if id != "" {
		q.Set("bridgeId", id)
	}
	var out Bridge
	err := c.do(ctx, call{op: strings.TrimSpace(op), method: http.MethodPost, path: "/bridges", query: q, out: &out})
	return out, err
}

// AddChannel puts a channel (in Stasis) into a bridge.
func (c *Client) AddChannel(ctx context.Context, bridgeID, channelID string) error {
	op := "add channel " + channelID + " to bridge " + bridgeID
	if err := need(op, "bridge id", bridgeID, "channel id", channelID); err != nil {
		return err
	}
	return c.do(ctx, call{op: op, method: http.MethodPost, path: "/bridges/" + seg(bridgeID) + "/addChannel",
		query: url.Values{"channel": {channelID}}})
}

// RemoveChannel takes a channel out of a bridge.
func (c *Client) RemoveChannel(ctx context.Context, bridgeID, channelID string) error {
	op := "remove channel " + channelID + " from bridge " + bridgeID
	if err := need(op, "bridge id", bridgeID, "channel id", channelID); err != nil {
		return err
	}
	return c.do(ctx, call{op: op, method: http.MethodPost, path: "/bridges/" + seg(bridgeID) + "/removeChannel",
		query: url.Values{"channel": {channelID}}})
}

// DestroyBridge destroys a bridge; its channels stay up (ARI bridges never hang anyone up).
func (c *Client) DestroyBridge(ctx context.Context, id string) error {
	op := "destroy bridge " + id
	if err := need(op, "bridge id", id); err != nil {
		return err
	}
	return c.do(ctx, call{op: op, method: http.MethodDelete, path: "/bridges/" + seg(id)})
}
