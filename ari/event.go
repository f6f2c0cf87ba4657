// Package ari is callbackd's side of the Asterisk REST Interface: the event model, the
// connection manager (WebSocket reader, reconnect, resync) and the REST client.
//
// The event model is our own, not github.com/CyCoreSystems/ari/v5's, because of what v5.3.1
// makes of the real Asterisk 22 recordings in testdata (ariv5_test.go names each difference):
// its ChannelData drops the dialplan app_name and app_data the detector reads, and language and
// protocol_id; its hang-up events drop tech_cause, by which the dialer tells a rejected call
// (486) from an unanswered one (480), and turn a missing cause into cause 0; its BridgeData
// drops creationtime and video_mode; and its DecodeEvent refuses any type it does not list
// (ChannelTransfer, ChannelToneDetected...), where ours decodes any JSON object with a "type"
// so that the connection can count and skip what it does not know. Its DeviceStateData,
// EndpointData and CallerID decode what Asterisk sends but encode it otherwise ("key": null,
// empty name and number left out), and aritest encodes ours as the fake PBX's wire format. Its
// transfer events do keep is_external and the attended-transfer destination; their channels are
// still its ChannelData. What matches is taken from v5.3.1: Playback here, the originate and
// create requests in client.go.
package ari

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	ariv5 "github.com/CyCoreSystems/ari/v5"
)

// TimeLayout is how ARI writes timestamps: "2026-08-06T15:45:49.123+0000".
const TimeLayout = "2006-01-02T15:04:05.000-0700"

// LinkedIDVar is the channel variable that carries the linkedid when ari.conf has
// `channelvars = CHANNEL(linkedid)`; ARI snapshots have no linkedid field of their own.
const LinkedIDVar = "CHANNEL(linkedid)"

// CallerID is a name and number pair as ARI sends it.
type CallerID struct {
	Name   string `json:"name"`
	Number string `json:"number"`
}

// Dialplan is a channel's position in the dialplan.
type Dialplan struct {
	Context  string `json:"context"`
	Exten    string `json:"exten"`
	Priority int64  `json:"priority"`
	AppName  string `json:"app_name"`
	AppData  string `json:"app_data"`
}

// Channel is a channel snapshot.
type Channel struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	State        string            `json:"state"`
	ProtocolID   string            `json:"protocol_id,omitempty"`
	Caller       CallerID          `json:"caller"`
	Connected    CallerID          `json:"connected"`
	AccountCode  string            `json:"accountcode"`
	Dialplan     Dialplan          `json:"dialplan"`
	CreationTime string            `json:"creationtime"`
	Language     string            `json:"language"`
	CallerRDNIS  string            `json:"caller_rdnis,omitempty"`
	ChannelVars  map[string]string `json:"channelvars,omitempty"`
	TenantID     string            `json:"tenantid,omitempty"`
}

// LinkedID returns the channel's linkedid from channelvars, or "" when ari.conf does not
// export it.
func (c *Channel) LinkedID() string {
	if c == nil {
		return ""
	}
	return c.ChannelVars[LinkedIDVar]
}

// Bridge is a bridge snapshot.
type Bridge struct {
	ID           string   `json:"id"`
	Technology   string   `json:"technology"`
	BridgeType   string   `json:"bridge_type"`
	BridgeClass  string   `json:"bridge_class"`
	Creator      string   `json:"creator"`
	Name         string   `json:"name"`
	Channels     []string `json:"channels"`
	CreationTime string   `json:"creationtime,omitempty"`
	VideoMode    string   `json:"video_mode,omitempty"`
}

// Endpoint is an endpoint snapshot (EndpointStateChange).
type Endpoint struct {
	Technology string   `json:"technology"`
	Resource   string   `json:"resource"`
	State      string   `json:"state"`
	ChannelIDs []string `json:"channel_ids"`
}

// DeviceState is a device state snapshot (DeviceStateChanged).
type DeviceState struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// Playback is a playback snapshot. v5.3.1's PlaybackData decodes every value of the recorded
// playbacks we read (it too skips next_media_uri); its extra Key stays nil.
type Playback = ariv5.PlaybackData

// A playback's states as ARI reports them (res_stasis_playback.c, state_to_string): stopped,
// complete and canceled all read "done".
const (
	PlaybackQueued     = "queued"
	PlaybackPlaying    = "playing"
	PlaybackContinuing = "continuing"
	PlaybackDone       = "done"
	PlaybackFailed     = "failed"
)

// Event is one ARI event. Fields that a type does not carry stay zero. Raw keeps the bytes
// as received, for replay files and for fields nothing here reads yet.
type Event struct {
	Type        EventType `json:"type"`
	Timestamp   string    `json:"timestamp"`
	Application string    `json:"application"`
	AsteriskID  string    `json:"asterisk_id"`

	Channel *Channel `json:"channel,omitempty"`
	Bridge  *Bridge  `json:"bridge,omitempty"`

	// Dial
	Caller     *Channel `json:"caller,omitempty"`
	Peer       *Channel `json:"peer,omitempty"`
	Forwarded  *Channel `json:"forwarded,omitempty"`
	DialStatus string   `json:"dialstatus,omitempty"`
	DialString string   `json:"dialstring,omitempty"`
	Forward    string   `json:"forward,omitempty"`

	// ChannelVarset
	Variable string `json:"variable,omitempty"`
	Value    string `json:"value,omitempty"`

	// ChannelDialplan
	DialplanApp     string `json:"dialplan_app,omitempty"`
	DialplanAppData string `json:"dialplan_app_data,omitempty"`

	// ChannelHangupRequest / ChannelDestroyed. Cause is a pointer because the first hang-up
	// request of a remote BYE may carry no cause at all, which is not the same as cause 0.
	Cause     *int   `json:"cause,omitempty"`
	CauseTxt  string `json:"cause_txt,omitempty"`
	TechCause *int   `json:"tech_cause,omitempty"`
	Soft      bool   `json:"soft,omitempty"`

	// StasisStart
	Args           []string `json:"args,omitempty"`
	ReplaceChannel *Channel `json:"replace_channel,omitempty"`

	// BridgeBlindTransfer / BridgeAttendedTransfer
	Transferee                 *Channel `json:"transferee,omitempty"`
	Exten                      string   `json:"exten,omitempty"`
	Context                    string   `json:"context,omitempty"`
	Result                     string   `json:"result,omitempty"`
	IsExternal                 bool     `json:"is_external,omitempty"`
	TransfererFirstLeg         *Channel `json:"transferer_first_leg,omitempty"`
	TransfererFirstLegBridge   *Bridge  `json:"transferer_first_leg_bridge,omitempty"`
	TransfererSecondLeg        *Channel `json:"transferer_second_leg,omitempty"`
	TransfererSecondLegBridge  *Bridge  `json:"transferer_second_leg_bridge,omitempty"`
	TransferTarget             *Channel `json:"transfer_target,omitempty"`
	DestinationType            string   `json:"destination_type,omitempty"`
	DestinationBridge          string   `json:"destination_bridge,omitempty"`
	DestinationApplication     string   `json:"destination_application,omitempty"`
	DestinationLinkFirstLeg    *Channel `json:"destination_link_first_leg,omitempty"`
	DestinationLinkSecondLeg   *Channel `json:"destination_link_second_leg,omitempty"`
	DestinationThreewayChannel *Channel `json:"destination_threeway_channel,omitempty"`
	DestinationThreewayBridge  *Bridge  `json:"destination_threeway_bridge,omitempty"`

	// ChannelUserevent
	EventName string          `json:"eventname,omitempty"`
	UserEvent json.RawMessage `json:"userevent,omitempty"`

	// ChannelDtmfReceived: the digit (0-9, A-D, * or #) and how long it was held.
	Digit      string `json:"digit,omitempty"`
	DurationMs int    `json:"duration_ms,omitempty"`

	Endpoint    *Endpoint    `json:"endpoint,omitempty"`
	DeviceState *DeviceState `json:"device_state,omitempty"`
	Playback    *Playback    `json:"playback,omitempty"`

	Raw json.RawMessage `json:"-"`
}

// ErrMalformed is wrapped by every decoding failure.
var ErrMalformed = errors.New("malformed ARI event")

// Decode parses one ARI event. It fails only when data is not a JSON object with a non-empty
// string "type"; unknown types decode fine and are the caller's to count and skip.
func Decode(data []byte) (*Event, error) {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if ev.Type == "" {
		return nil, fmt.Errorf("%w: no \"type\"", ErrMalformed)
	}
	ev.Raw = append(json.RawMessage(nil), data...)
	return &ev, nil
}

// Time parses the event's timestamp.
func (e *Event) Time() (time.Time, error) {
	t, err := time.Parse(TimeLayout, e.Timestamp)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp %q: %v", ErrMalformed, e.Timestamp, err)
	}
	return t, nil
}
