package ari

// EventType is the "type" of an ARI event. The constants below are the one vocabulary of event
// types in callbackd: the connection, the detector, the dialer and the fake Asterisk all spell
// a type through them, so a typo is a compile error instead of an event silently never matched. The spelling is Asterisk's (rest-api/api-docs/events.json), byte for
// byte, because it is compared with what arrives on the wire; Asterisk's own irregularities
// (ChannelCallerId, ChannelUserevent, CallBrokenEvent) are kept.
//
// Event.Type stays an open set: a type Asterisk adds later decodes like any other and is the
// consumer's to count and skip (see KnownEventType).
type EventType string

// The event types of Asterisk 22's events.json.
const (
	EventApplicationMoveFailed   EventType = "ApplicationMoveFailed"
	EventApplicationRegistered   EventType = "ApplicationRegistered"
	EventApplicationReplaced     EventType = "ApplicationReplaced"
	EventApplicationUnregistered EventType = "ApplicationUnregistered"

	EventBridgeAttendedTransfer   EventType = "BridgeAttendedTransfer"
	EventBridgeBlindTransfer      EventType = "BridgeBlindTransfer"
	EventBridgeCreated            EventType = "BridgeCreated"
	EventBridgeDestroyed          EventType = "BridgeDestroyed"
	EventBridgeMerged             EventType = "BridgeMerged"
	EventBridgeVideoSourceChanged EventType = "BridgeVideoSourceChanged"

	EventCallBroken EventType = "CallBrokenEvent"

	EventChannelCallerID        EventType = "ChannelCallerId"
	EventChannelConnectedLine   EventType = "ChannelConnectedLine"
	EventChannelCreated         EventType = "ChannelCreated"
	EventChannelDestroyed       EventType = "ChannelDestroyed"
	EventChannelDialplan        EventType = "ChannelDialplan"
	EventChannelDtmfReceived    EventType = "ChannelDtmfReceived"
	EventChannelEnteredBridge   EventType = "ChannelEnteredBridge"
	EventChannelHangupRequest   EventType = "ChannelHangupRequest"
	EventChannelHold            EventType = "ChannelHold"
	EventChannelLeftBridge      EventType = "ChannelLeftBridge"
	EventChannelStateChange     EventType = "ChannelStateChange"
	EventChannelTalkingFinished EventType = "ChannelTalkingFinished"
	EventChannelTalkingStarted  EventType = "ChannelTalkingStarted"
	EventChannelToneDetected    EventType = "ChannelToneDetected"
	EventChannelTransfer        EventType = "ChannelTransfer"
	EventChannelUnhold          EventType = "ChannelUnhold"
	EventChannelUserevent       EventType = "ChannelUserevent"
	EventChannelVarset          EventType = "ChannelVarset"
	EventContactStatusChange    EventType = "ContactStatusChange"
	EventDeviceStateChanged     EventType = "DeviceStateChanged"
	EventDial                   EventType = "Dial"
	EventEndpointStateChange    EventType = "EndpointStateChange"
	EventPeerStatusChange       EventType = "PeerStatusChange"
	EventPlaybackContinuing     EventType = "PlaybackContinuing"
	EventPlaybackFinished       EventType = "PlaybackFinished"
	EventPlaybackStarted        EventType = "PlaybackStarted"
	EventRecordingFailed        EventType = "RecordingFailed"
	EventRecordingFinished      EventType = "RecordingFinished"
	EventRecordingStarted       EventType = "RecordingStarted"
	EventStasisEnd              EventType = "StasisEnd"
	EventStasisStart            EventType = "StasisStart"
	EventTextMessageReceived    EventType = "TextMessageReceived"
)

// EventMissingParams is the error message Asterisk sends on the events socket when a request
// lacks parameters. events.json makes it a Message, not an Event (it has no application or
// timestamp), so the connection does not deliver it; the detector still names it as known.
const EventMissingParams EventType = "MissingParams"

// knownEventTypes are the types the connection hands to Handlers: a type outside the list is
// counted and skipped, because nothing in callbackd can act on it and a type label per unknown
// name would let a PBX upgrade blow up metric cardinality.
var knownEventTypes = map[EventType]bool{
	EventApplicationMoveFailed:    true,
	EventApplicationRegistered:    true,
	EventApplicationReplaced:      true,
	EventApplicationUnregistered:  true,
	EventBridgeAttendedTransfer:   true,
	EventBridgeBlindTransfer:      true,
	EventBridgeCreated:            true,
	EventBridgeDestroyed:          true,
	EventBridgeMerged:             true,
	EventBridgeVideoSourceChanged: true,
	EventCallBroken:               true,
	EventChannelCallerID:          true,
	EventChannelConnectedLine:     true,
	EventChannelCreated:           true,
	EventChannelDestroyed:         true,
	EventChannelDialplan:          true,
	EventChannelDtmfReceived:      true,
	EventChannelEnteredBridge:     true,
	EventChannelHangupRequest:     true,
	EventChannelHold:              true,
	EventChannelLeftBridge:        true,
	EventChannelStateChange:       true,
	EventChannelTalkingFinished:   true,
	EventChannelTalkingStarted:    true,
	EventChannelToneDetected:      true,
	EventChannelTransfer:          true,
	EventChannelUnhold:            true,
	EventChannelUserevent:         true,
	EventChannelVarset:            true,
	EventContactStatusChange:      true,
	EventDeviceStateChanged:       true,
	EventDial:                     true,
	EventEndpointStateChange:      true,
	EventPeerStatusChange:         true,
	EventPlaybackContinuing:       true,
	EventPlaybackFinished:         true,
	EventPlaybackStarted:          true,
	EventRecordingFailed:          true,
	EventRecordingFinished:        true,
	EventRecordingStarted:         true,
	EventStasisEnd:                true,
	EventStasisStart:              true,
	EventTextMessageReceived:      true,
}

// KnownEventType reports whether typ is an ARI event type the connection delivers.
func KnownEventType(typ EventType) bool { return knownEventTypes[typ] }

// DefaultMonitorEvents is the event filter of the monitor app: what the detector and the
// agent-availability tracker read. Everything else (RTP, DTMF, talking detection, playbacks of
// other applications) is noise on a busy PBX, and the filter stops it before the socket.
var DefaultMonitorEvents = []EventType{
	EventChannelCreated, EventChannelDestroyed, EventChannelStateChange, EventChannelDialplan,
	EventChannelVarset, EventChannelHangupRequest, EventChannelCallerID, EventChannelConnectedLine,
	EventChannelEnteredBridge, EventChannelLeftBridge, EventChannelUserevent, EventChannelHold,
	EventChannelUnhold, EventChannelTransfer,
	EventBridgeCreated, EventBridgeDestroyed, EventBridgeMerged, EventBridgeBlindTransfer,
	EventBridgeAttendedTransfer,
	EventDial, EventStasisStart, EventStasisEnd, EventApplicationReplaced,
	EventEndpointStateChange, EventDeviceStateChanged, EventPeerStatusChange, EventContactStatusChange,
}
